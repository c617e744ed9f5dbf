package controllers_test

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/workload"
)

// TestWorkersFailingInReady: a worker that refuses its config writes why
// to its termination log; the kubelet puts that into the pod's status,
// and the Chain's Ready condition quotes it, with the Deployment's view.
// No kube-controller-manager or kubelet runs here, so the test writes the
// statuses they would write. When the worker runs again, Ready is back.
func TestWorkersFailingInReady(t *testing.T) {
	op := startOperator(t)
	ctx := context.Background()
	op.create(t, op.chain("crashing", []string{"crashing"}, func(c *vconv1.Chain) { c.Spec.Workers.MinReplicas = 1 }))
	d := op.waitDeployment(t, "crashing", "one worker", replicasAre(1))
	op.waitChain(t, "crashing", "Ready", ready)

	if err := op.c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: op.ns}}); err != nil {
		t.Fatal(err)
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "crashing-worker-1-abcde", Namespace: op.ns, Labels: d.Spec.Template.Labels},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: ptr.To(false),
			Containers:                   []corev1.Container{{Name: "worker", Image: workerImage}},
		},
	}
	if err := op.c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	refused := "conserver: invalid config /etc/vcon/conserver.yml:\nlinks.tagger.module: unknown module \"links.tagg\" (known: links.analyze, links.tag)"
	p.Status = corev1.PodStatus{
		Phase: corev1.PodRunning,
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: "worker", Image: workerImage, RestartCount: 3,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 40s restarting failed container=worker"}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 1, Reason: "Error", Message: refused,
				StartedAt: metav1.NewTime(time.Now().Add(-2 * time.Second)), FinishedAt: metav1.NewTime(time.Now()),
			}},
		}},
	}
	if err := op.c.Status().Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	// Only the pod changed: the pod watch brings it to the Chain.
	const quoted = "pod crashing-worker-1-abcde container worker is in CrashLoopBackOff, exit code 1: conserver: invalid config /etc/vcon/conserver.yml: links.tagger.module: unknown module \"links.tagg\" (known: links.analyze, links.tag)"
	op.waitChain(t, "crashing", "WorkersFailing quoting the worker", hasCondition(vconv1.ConditionReady, metav1.ConditionFalse, vconv1.ReasonWorkersFailing, quoted))

	op.setDeploymentStatus(t, "crashing", appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation, Replicas: 1, UpdatedReplicas: 1, UnavailableReplicas: 1,
		Conditions: []appsv1.DeploymentCondition{
			{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionFalse, Reason: "MinimumReplicasUnavailable", Message: "Deployment does not have minimum availability."},
			{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "ReplicaSetUpdated", Message: `ReplicaSet "crashing-worker-1" is progressing.`},
		},
	})
	op.waitChain(t, "crashing", "WorkersFailing with the Deployment's view", hasCondition(vconv1.ConditionReady, metav1.ConditionFalse, vconv1.ReasonWorkersFailing,
		quoted+"; Deployment not Available: Deployment does not have minimum availability."))

	// The worker is fixed: running, the Deployment available.
	p.Status.ContainerStatuses[0].State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}
	p.Status.ContainerStatuses[0].Ready = true
	if err := op.c.Status().Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	op.setDeploymentStatus(t, "crashing", appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1,
		Conditions: []appsv1.DeploymentCondition{
			{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable", Message: "Deployment has minimum availability."},
			{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable", Message: `ReplicaSet "crashing-worker-1" has successfully progressed.`},
		},
	})
	op.waitChain(t, "crashing", "Ready again", all(ready, hasCondition(vconv1.ConditionReady, metav1.ConditionTrue, "Running", "1/1 workers ready")))
}

// setDeploymentStatus writes the status the Deployment controller would,
// through the status subresource, retrying on conflicts with the
// operator's applies.
func (op *operator) setDeploymentStatus(t *testing.T, chain string, st appsv1.DeploymentStatus) {
	t.Helper()
	eventually(t, waitFor, chain+": write the Deployment's status", func() error {
		var d appsv1.Deployment
		if err := op.c.Get(context.Background(), op.key(workload.DeploymentName(chain)), &d); err != nil {
			return err
		}
		d.Status = st
		return op.c.Status().Update(context.Background(), &d, &client.SubResourceUpdateOptions{})
	})
}
