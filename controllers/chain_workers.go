package controllers

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/workload"
)

// maxWorkersMessage bounds the part of the Ready message that quotes the
// workers: enough for the worker's first error line, short enough for
// `kubectl get chain -o wide` and for the condition not to grow the
// status.
const maxWorkersMessage = 300

// Pods: list and watch a Chain's worker pods, through the cache (which
// CacheOptions restricts to worker pods), to quote why they fail.
// +kubebuilder:rbac:groups="",resources=pods,verbs=list;watch

// workerPods returns the Chain's worker pods from the cache.
func (r *ChainReconciler) workerPods(ctx context.Context, chain *vconv1.Chain) ([]corev1.Pod, error) {
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(chain.Namespace), client.MatchingLabels(workload.SelectorLabels(chain.Name))); err != nil {
		return nil, fmt.Errorf("list worker pods: %w", err)
	}
	return pods.Items, nil
}

// chainOfPod maps a worker pod to its Chain: a pod's container statuses
// change without its Deployment's status changing (a crash loop), and the
// Chain must learn of them.
func chainOfPod(_ context.Context, o client.Object) []reconcile.Request {
	name := o.GetLabels()[workload.LabelChain]
	if name == "" || o.GetLabels()[workload.LabelName] != workload.WorkerName {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
}

// podFailureChanged lets through the pod events that can change what the
// Chain's Ready condition says, not every readiness flip of a scale-up.
var podFailureChanged = predicate.Funcs{
	CreateFunc:  func(e event.CreateEvent) bool { return failureOf(e.Object) != "" },
	UpdateFunc:  func(e event.UpdateEvent) bool { return failureOf(e.ObjectOld) != failureOf(e.ObjectNew) },
	DeleteFunc:  func(e event.DeleteEvent) bool { return failureOf(e.Object) != "" },
	GenericFunc: func(event.GenericEvent) bool { return false },
}

func failureOf(o client.Object) string {
	p, ok := o.(*corev1.Pod)
	if !ok {
		return ""
	}
	return podFailure([]corev1.Pod{*p})
}

// workersFailing says why a Chain's workers do not run, from its
// Deployment's conditions and its pods' container statuses, in at most
// maxWorkersMessage bytes; "" when nothing is wrong. Pods starting up,
// or a Deployment still rolling out in time, are not failing; the
// worker's own words come first, then the Deployment's.
func workersFailing(d *appsv1.Deployment, pods []corev1.Pod) string {
	var parts []string
	if p := podFailure(pods); p != "" {
		parts = append(parts, p)
	}
	// Conditions describe the Deployment's last observed spec, and a
	// Deployment scaled to zero has no workers to fail.
	if d != nil && d.Status.ObservedGeneration >= d.Generation && (d.Spec.Replicas == nil || *d.Spec.Replicas > 0) {
		for _, c := range d.Status.Conditions {
			switch {
			case c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue,
				c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded":
				parts = append(parts, fmt.Sprintf("Deployment %s: %s", c.Type, oneLine(c.Message)))
			}
		}
		if len(parts) > 0 {
			for _, c := range d.Status.Conditions {
				if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionFalse {
					parts = append(parts, fmt.Sprintf("Deployment not Available: %s", oneLine(c.Message)))
				}
			}
		}
	}
	return truncate(strings.Join(parts, "; "), maxWorkersMessage)
}

// podFailure describes the most recent failure among the pods'
// containers (the worker and its step sidecars), or "". A container
// waiting to restart after a crash, or one that cannot start (a bad
// image, a missing Secret), fails; one being created does not.
func podFailure(pods []corev1.Pod) string {
	var (
		best     string
		bestTime int64 = -1
	)
	for i := range pods {
		p := &pods[i]
		for _, cs := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
			msg, at := containerFailure(cs)
			if msg == "" || at <= bestTime {
				continue
			}
			best, bestTime = fmt.Sprintf("pod %s container %s %s", p.Name, cs.Name, msg), at
		}
	}
	return best
}

// containerFailure describes one container's failure and when it ended
// (Unix seconds; 0 when unknown), or "".
func containerFailure(cs corev1.ContainerStatus) (string, int64) {
	term := cs.State.Terminated
	if term == nil || term.ExitCode == 0 {
		term = cs.LastTerminationState.Terminated
	}
	var state string
	switch w := cs.State.Waiting; {
	case w != nil && w.Reason == "CrashLoopBackOff":
		state = "is in CrashLoopBackOff"
	case w != nil && w.Reason != "" && w.Reason != "ContainerCreating" && w.Reason != "PodInitializing":
		// ErrImagePull, ImagePullBackOff, CreateContainerConfigError, ...:
		// the kubelet's message says what is missing.
		return strings.TrimSpace(fmt.Sprintf("cannot start: %s %s", w.Reason, oneLine(w.Message))), 0
	case cs.State.Terminated != nil && cs.State.Terminated.ExitCode != 0:
		state = "terminated"
	default:
		return "", 0
	}
	if term == nil || term.ExitCode == 0 {
		return state, 0
	}
	msg := fmt.Sprintf("%s, exit code %d", state, term.ExitCode)
	if m := oneLine(term.Message); m != "" {
		msg += ": " + m
	} else if term.Reason != "" && term.Reason != "Error" {
		msg += " (" + term.Reason + ")" // OOMKilled
	}
	return msg, term.FinishedAt.Unix()
}

// oneLine folds a multi-line message (the worker lists each refused key
// on a line of its own) into one.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// truncate cuts s to at most limit bytes on a rune boundary, ending in
// "…" when cut.
func truncate(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	const mark = "…"
	cut := limit - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
