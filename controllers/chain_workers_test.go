package controllers

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

const refused = "conserver: invalid config /etc/vcon/conserver.yml:\nlinks.tagger.module: unknown module \"links.tagg\""

func deployment(replicas int32, conds ...appsv1.DeploymentCondition) *appsv1.Deployment {
	d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: ptr.To(replicas)}}
	d.Generation, d.Status.ObservedGeneration = 2, 2
	d.Status.Conditions = conds
	return d
}

func cond(typ appsv1.DeploymentConditionType, status corev1.ConditionStatus, reason, msg string) appsv1.DeploymentCondition {
	return appsv1.DeploymentCondition{Type: typ, Status: status, Reason: reason, Message: msg}
}

func pod(name string, statuses ...corev1.ContainerStatus) corev1.Pod {
	p := corev1.Pod{Status: corev1.PodStatus{ContainerStatuses: statuses}}
	p.Name = name
	return p
}

func crashed(msg string, exit int32, at time.Time) corev1.ContainerStatus {
	return corev1.ContainerStatus{
		Name:                 "worker",
		State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 40s restarting failed container"}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: exit, Reason: "Error", Message: msg, FinishedAt: metav1.NewTime(at)}},
	}
}

func TestWorkersFailing(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)
	available := cond(appsv1.DeploymentAvailable, corev1.ConditionTrue, "MinimumReplicasAvailable", "Deployment has minimum availability.")
	unavailable := cond(appsv1.DeploymentAvailable, corev1.ConditionFalse, "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
	progressing := cond(appsv1.DeploymentProgressing, corev1.ConditionTrue, "ReplicaSetUpdated", `ReplicaSet "w-1" is progressing.`)
	deadline := cond(appsv1.DeploymentProgressing, corev1.ConditionFalse, "ProgressDeadlineExceeded", `ReplicaSet "w-1" has timed out progressing.`)
	quota := cond(appsv1.DeploymentReplicaFailure, corev1.ConditionTrue, "FailedCreate", `pods "w-1-x" is forbidden: exceeded quota: compute`)
	running := corev1.ContainerStatus{Name: "worker", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
	creating := corev1.ContainerStatus{Name: "worker", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}

	tests := []struct {
		name string
		d    *appsv1.Deployment
		pods []corev1.Pod
		want string // "" for not failing; else the exact message
	}{
		{name: "healthy", d: deployment(2, available, progressing), pods: []corev1.Pod{pod("w-a", running), pod("w-b", running)}},
		{name: "rolling out, pods being created", d: deployment(1, unavailable, progressing), pods: []corev1.Pod{pod("w-a", creating)}},
		{name: "no Deployment yet", d: nil},
		{
			name: "config refused: the worker's own words, one line",
			d:    deployment(1, unavailable, progressing),
			pods: []corev1.Pod{pod("w-a", crashed(refused, 1, t0))},
			want: `pod w-a container worker is in CrashLoopBackOff, exit code 1: conserver: invalid config /etc/vcon/conserver.yml: links.tagger.module: unknown module "links.tagg"; Deployment not Available: Deployment does not have minimum availability.`,
		},
		{
			name: "the most recent crash is quoted",
			d:    deployment(2, progressing),
			pods: []corev1.Pod{pod("w-old", crashed("conserver: old", 1, t0)), pod("w-new", crashed("conserver: new", 2, t0.Add(time.Minute))), pod("w-ok", running)},
			want: "pod w-new container worker is in CrashLoopBackOff, exit code 2: conserver: new",
		},
		{
			name: "terminated now, no message: the reason",
			d:    deployment(1),
			pods: []corev1.Pod{pod("w-a", corev1.ContainerStatus{Name: "worker", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled", FinishedAt: metav1.NewTime(t0)}}})},
			want: "pod w-a container worker terminated, exit code 137 (OOMKilled)",
		},
		{
			name: "a missing Secret: the kubelet's words",
			d:    deployment(1, progressing),
			pods: []corev1.Pod{pod("w-a", corev1.ContainerStatus{Name: "worker", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CreateContainerConfigError", Message: `secret "tok" not found`}}})},
			want: `pod w-a container worker cannot start: CreateContainerConfigError secret "tok" not found`,
		},
		{
			name: "progress deadline exceeded, pods pending",
			d:    deployment(1, unavailable, deadline),
			want: `Deployment Progressing: ReplicaSet "w-1" has timed out progressing.; Deployment not Available: Deployment does not have minimum availability.`,
		},
		{
			name: "replica failure (quota)",
			d:    deployment(1, unavailable, progressing, quota),
			want: `Deployment ReplicaFailure: pods "w-1-x" is forbidden: exceeded quota: compute; Deployment not Available: Deployment does not have minimum availability.`,
		},
		{name: "Available false alone is a rollout, not a failure", d: deployment(3, unavailable, progressing)},
		{name: "scaled to zero: an old deadline is not a failure", d: deployment(0, deadline)},
		{
			name: "conditions of an older spec are not this one's",
			d: func() *appsv1.Deployment {
				d := deployment(1, unavailable, deadline)
				d.Generation = 3
				return d
			}(),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := workersFailing(tc.d, tc.pods)
			wantTrunc := truncate(tc.want, maxWorkersMessage)
			if got != wantTrunc {
				t.Errorf("workersFailing =\n %q\nwant\n %q", got, wantTrunc)
			}
		})
	}
}

func TestWorkersFailingBounded(t *testing.T) {
	long := "conserver: invalid config:\n" + strings.Repeat("links.x.options.y: ünknown option\n", 200)
	got := workersFailing(deployment(1), []corev1.Pod{pod("w-a", crashed(long, 1, time.Now()))})
	if len(got) > maxWorkersMessage || !strings.HasSuffix(got, "…") || !strings.HasPrefix(got, "pod w-a container worker is in CrashLoopBackOff, exit code 1: conserver: invalid config: links.x") {
		t.Fatalf("message of %d bytes: %q", len(got), got)
	}
}
