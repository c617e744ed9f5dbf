package controllers

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/log"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/autoscale"
	"github.com/vcon-operator/vcon-operator/internal/observer"
)

// writeStatus writes the Chain's status when it changed, and says so when
// dead letters start to pile up.
func (r *ChainReconciler) writeStatus(ctx context.Context, chain *vconv1.Chain, next *vconv1.ChainStatus) error {
	if apiequality.Semantic.DeepEqual(&chain.Status, next) {
		return nil
	}
	if err := applyStatus(ctx, r.Client, chain, next); err != nil {
		return fmt.Errorf("apply status: %w", err)
	}
	log.FromContext(ctx).V(1).Info("status updated", "workers", next.Workers, "ingress", next.Queue.Ingress)
	wasPaused, paused := readyReason(chain.Status.Conditions) == vconv1.ReasonPaused, readyReason(next.Conditions) == vconv1.ReasonPaused
	switch {
	case paused && !wasPaused:
		r.Recorder.Eventf(chain, corev1.EventTypeNormal, vconv1.ReasonPaused, "paused (%s: \"true\"): the operator changes none of the Chain's objects until the annotation goes", vconv1.AnnotationPaused)
	case wasPaused && !paused:
		r.Recorder.Event(chain, corev1.EventTypeNormal, "Resumed", "resumed: the Chain's objects are applied again")
	}
	wasFilling := apimeta.IsStatusConditionFalse(chain.Status.Conditions, string(vconv1.ConditionDLQEmpty))
	if !wasFilling && apimeta.IsStatusConditionFalse(next.Conditions, string(vconv1.ConditionDLQEmpty)) {
		if next.Queue.StorageDLQ > 0 {
			r.Recorder.Eventf(chain, corev1.EventTypeWarning, "DLQFilling", "%d vCons dead-lettered, %d failed storage writes dead-lettered", next.Queue.DLQ, next.Queue.StorageDLQ)
		} else {
			r.Recorder.Eventf(chain, corev1.EventTypeWarning, "DLQFilling", "%d vCons dead-lettered", next.Queue.DLQ)
		}
	}
	return nil
}

func readyReason(conds []metav1.Condition) string {
	if c := apimeta.FindStatusCondition(conds, string(vconv1.ConditionReady)); c != nil {
		return c.Reason
	}
	return ""
}

// chainStatus is the Chain's status once the plan is applied (pure).
func chainStatus(chain *vconv1.Chain, res resolved, p chainPlan) *vconv1.ChainStatus {
	st := chain.Status.DeepCopy()
	st.ObservedGeneration = chain.Generation
	st.Replicas = p.replicas
	st.ReadyReplicas = 0
	if res.deployment != nil {
		st.ReadyReplicas = res.deployment.Status.ReadyReplicas
	}
	st.Workers = fmt.Sprintf("%d/%d", st.ReadyReplicas, st.Replicas)
	st.Queue = queueStatus(st.Queue, res.observation)
	setConditions(&st.Conditions, chainConditions(chain, chainFacts{
		paused:      p.paused,
		problem:     p.problem,
		observation: res.observation,
		decision:    p.decision,
		deployment:  res.deployment,
		pods:        res.pods,
		replicas:    st.Replicas,
	}))
	return st
}

// queueStatus is the measurement as the status shows it. observedAt moves
// only when a figure changes, so an idle Chain's status is not rewritten
// every poll; before the first poll the status keeps what it has.
func queueStatus(prev vconv1.QueueStatus, obs observer.Observation) vconv1.QueueStatus {
	if !obs.Measured && !obs.Stale {
		return prev
	}
	q := vconv1.QueueStatus{Ingress: obs.Ingress, InFlight: obs.InFlight, DLQ: obs.DLQ, Egress: obs.Egress, StorageDLQ: obs.StorageDLQ, Retry: obs.Retry, Stale: obs.Stale}
	if obs.NextRetry >= 0 && obs.Retry > 0 {
		// The due time itself, to the second: the same across polls, so
		// a waiting retry does not rewrite the status at every one.
		q.NextRetryAt = &metav1.Time{Time: obs.At.Add(obs.NextRetry).Truncate(time.Second)}
	}
	if obs.Ingress > 0 && obs.OldestAge > 0 {
		// A fixed instant (the marker's), to the second: stable across
		// polls while the same vCon waits.
		q.OldestQueuedSince = &metav1.Time{Time: obs.At.Add(-obs.OldestAge).Truncate(time.Second)}
	}
	unstamped := prev
	unstamped.ObservedAt = nil
	if apiequality.Semantic.DeepEqual(unstamped, q) && prev.ObservedAt != nil {
		return prev
	}
	q.ObservedAt = &metav1.Time{Time: obs.At.Truncate(1e9)}
	return q
}

// chainFacts is what a Chain's conditions are computed from.
type chainFacts struct {
	// paused: the Chain carries vcon.dev/paused: "true".
	paused bool
	// problem is why the Chain cannot run as specified, nil when it can.
	problem     *notReady
	observation observer.Observation
	decision    autoscale.Decision
	// deployment is the worker Deployment (nil when none), pods its pods.
	deployment *appsv1.Deployment
	pods       []corev1.Pod
	// replicas is what the Deployment runs once the plan is applied.
	replicas int32
}

// chainConditions are the Chain's conditions for its generation (pure):
// RedisReachable and DLQEmpty from the measurement, Unknown until there is
// one; Ready from the first thing in the way of the workers;
// ScalingLimited from the autoscaler's decision.
func chainConditions(chain *vconv1.Chain, f chainFacts) []metav1.Condition {
	gen, obs := chain.Generation, f.observation
	var reachable metav1.Condition
	switch {
	case obs.Stale:
		reachable = condition(gen, vconv1.ConditionRedisReachable, metav1.ConditionFalse, vconv1.ReasonRedisUnreachable, "cannot measure the queues: "+obs.Err)
	case obs.Measured:
		reachable = condition(gen, vconv1.ConditionRedisReachable, metav1.ConditionTrue, vconv1.ReasonMeasured, "queues measured")
	default:
		reachable = condition(gen, vconv1.ConditionRedisReachable, metav1.ConditionUnknown, vconv1.ReasonNotMeasured, "the queues have not been measured yet")
	}

	var dlq metav1.Condition
	switch {
	case !obs.Measured:
		dlq = condition(gen, vconv1.ConditionDLQEmpty, metav1.ConditionUnknown, vconv1.ReasonNotMeasured, "the dead-letter lists have not been measured yet")
	case obs.DLQ == 0 && obs.StorageDLQ == 0:
		dlq = condition(gen, vconv1.ConditionDLQEmpty, metav1.ConditionTrue, vconv1.ReasonEmpty, "no dead-lettered vCons")
	case obs.StorageDLQ == 0:
		dlq = condition(gen, vconv1.ConditionDLQEmpty, metav1.ConditionFalse, vconv1.ReasonDeadLetters,
			fmt.Sprintf("%d vCons in the dead-letter lists; see kubectl vcon dlq list %s", obs.DLQ, chain.Name))
	default:
		// A failed write waits as surely as a failed vCon: the storage
		// lacks it until someone replays it.
		dlq = condition(gen, vconv1.ConditionDLQEmpty, metav1.ConditionFalse, vconv1.ReasonDeadLetters,
			fmt.Sprintf("%d vCons in the dead-letter lists and %d failed writes in the storage dead-letter lists (DLQ:storage:{name}); see kubectl vcon dlq list %s [--storage NAME]", obs.DLQ, obs.StorageDLQ, chain.Name))
	}

	var workers string // why the workers fail, in their own words
	if f.deployment != nil {
		workers = workersFailing(f.deployment, f.pods)
	}
	var ready metav1.Condition
	switch {
	case f.paused:
		ready = condition(gen, vconv1.ConditionReady, metav1.ConditionFalse, vconv1.ReasonPaused,
			fmt.Sprintf("the Chain is paused (%s: \"true\"): the operator changes none of its objects and its workers stay at %d; remove the annotation to resume", vconv1.AnnotationPaused, f.replicas))
	case f.problem != nil:
		ready = condition(gen, vconv1.ConditionReady, metav1.ConditionFalse, f.problem.reason, f.problem.message)
	case !chain.IsEnabled():
		ready = condition(gen, vconv1.ConditionReady, metav1.ConditionFalse, vconv1.ReasonDisabled, "the Chain is disabled (enabled: false): workers scaled to zero, nothing is consumed")
	case workers != "":
		ready = condition(gen, vconv1.ConditionReady, metav1.ConditionFalse, vconv1.ReasonWorkersFailing, workers)
	case obs.Stale:
		ready = condition(gen, vconv1.ConditionReady, metav1.ConditionFalse, vconv1.ReasonRedisUnreachable, "cannot reach the Chain's Redis: "+obs.Err)
	default:
		var readyReplicas int32
		if f.deployment != nil {
			readyReplicas = f.deployment.Status.ReadyReplicas
		}
		ready = condition(gen, vconv1.ConditionReady, metav1.ConditionTrue, vconv1.ReasonRunning, fmt.Sprintf("%d/%d workers ready", readyReplicas, f.replicas))
	}

	limited := condition(gen, vconv1.ConditionScalingLimited, metav1.ConditionFalse, vconv1.ReasonWithinLimits, "demand is within workers.maxReplicas")
	switch b := f.decision.LimitedBy; {
	case b != nil && !f.decision.Limited:
		limited = condition(gen, vconv1.ConditionScalingLimited, metav1.ConditionTrue, vconv1.ReasonLinkLimit,
			fmt.Sprintf("%s binds: it can use %d workers, the queue wants %d; raise the Link's limits to scale further", b.Describe(), b.Replicas, b.Wanted))
	case f.decision.Limited && f.decision.MaxReplicas > 0 && f.decision.MaxReplicas != chain.Spec.Workers.MaxReplicas:
		limited = condition(gen, vconv1.ConditionScalingLimited, metav1.ConditionTrue, vconv1.ReasonAtMaxReplicas,
			fmt.Sprintf("the queue wants %d workers; the open workers.schedules allow %d", f.decision.Desired, f.decision.MaxReplicas))
	case f.decision.Limited:
		limited = condition(gen, vconv1.ConditionScalingLimited, metav1.ConditionTrue, vconv1.ReasonAtMaxReplicas,
			fmt.Sprintf("the queue wants %d workers; workers.maxReplicas is %d", f.decision.Desired, chain.Spec.Workers.MaxReplicas))
	}
	// In the order they were first written, which kubectl vcon status
	// shows.
	return []metav1.Condition{reachable, dlq, ready, limited}
}
