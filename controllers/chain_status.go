package controllers

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/autoscale"
	"github.com/vcon-operator/vcon-operator/internal/observer"
)

// decide runs the autoscaling policy on the latest observation.
func (r *ChainReconciler) decide(key types.NamespacedName, chain *vconv1.Chain, obs observer.Observation, current int32, problem *notReady) autoscale.Decision {
	w := chain.Spec.Workers
	policy := autoscale.Policy{
		Enabled:          chain.IsEnabled(),
		MinReplicas:      w.MinReplicas,
		MaxReplicas:      w.MaxReplicas,
		TargetQueueDepth: w.TargetQueueDepth,
		Concurrency:      w.Concurrency,
	}
	if w.ScaleDownDelay != nil {
		policy.ScaleDownDelay = w.ScaleDownDelay.Duration
	}
	var st autoscale.State
	if v, ok := r.scaling.Load(key); ok {
		st = v.(autoscale.State)
	}
	d, next := autoscale.Decide(policy, obs, current, st)
	if problem == nil {
		r.scaling.Store(key, next)
	}
	return d
}

// recordScaling emits events for replica changes worth a human's eye.
func (r *ChainReconciler) recordScaling(chain *vconv1.Chain, from, to int32, d autoscale.Decision) {
	if from != to || d.Reason == autoscale.ReasonDLQStorm {
		reason := d.Reason
		if from != to && to == 0 && reason == "" {
			reason = "ScaledToZero"
		}
		scalingDecisions.WithLabelValues(chain.Name, chain.Namespace, reason).Inc()
	}
	switch {
	case from == to:
		if d.Reason == autoscale.ReasonDLQStorm {
			r.Recorder.Event(chain, corev1.EventTypeWarning, "DLQStorm", d.Message)
		}
		return
	case from == 0:
		r.Recorder.Eventf(chain, corev1.EventTypeNormal, "ScaledFromZero", "scaled workers from 0 to %d: %s", to, d.Message)
	case to > from:
		r.Recorder.Eventf(chain, corev1.EventTypeNormal, "ScaledUp", "scaled workers from %d to %d: %s", from, to, d.Message)
	default:
		r.Recorder.Eventf(chain, corev1.EventTypeNormal, "ScaledDown", "scaled workers from %d to %d: %s", from, to, d.Message)
	}
}

// setQueueStatus copies the measurement into the status. observedAt moves
// only when a figure changes, so an idle Chain's status is not rewritten
// every poll.
func (r *ChainReconciler) setQueueStatus(chain *vconv1.Chain, st *vconv1.ChainStatus, obs observer.Observation, measured bool) {
	gen := chain.Generation
	if !measured {
		setCondition(&st.Conditions, gen, vconv1.ConditionRedisReachable, false, vconv1.ReasonNotMeasured, "the queues have not been measured yet")
		return
	}
	q := vconv1.QueueStatus{Ingress: obs.Ingress, InFlight: obs.InFlight, DLQ: obs.DLQ, Egress: obs.Egress, Stale: obs.Stale}
	prev := st.Queue
	prev.ObservedAt = nil
	if prev != q || st.Queue.ObservedAt == nil {
		q.ObservedAt = &metav1.Time{Time: obs.At.Truncate(1e9)}
		st.Queue = q
	}
	if obs.Stale {
		setCondition(&st.Conditions, gen, vconv1.ConditionRedisReachable, false, vconv1.ReasonRedisUnreachable, "cannot measure the queues: "+obs.Err)
	} else {
		setCondition(&st.Conditions, gen, vconv1.ConditionRedisReachable, true, vconv1.ReasonMeasured, "queues measured")
	}
	wasEmpty := apimeta.IsStatusConditionTrue(chain.Status.Conditions, string(vconv1.ConditionDLQEmpty)) || apimeta.FindStatusCondition(chain.Status.Conditions, string(vconv1.ConditionDLQEmpty)) == nil
	if obs.DLQ == 0 {
		setCondition(&st.Conditions, gen, vconv1.ConditionDLQEmpty, true, vconv1.ReasonEmpty, "no dead-lettered vCons")
	} else {
		setCondition(&st.Conditions, gen, vconv1.ConditionDLQEmpty, false, vconv1.ReasonDeadLetters, fmt.Sprintf("%d vCons in the dead-letter lists; see kubectl vcon dlq list %s", obs.DLQ, chain.Name))
		if wasEmpty {
			r.Recorder.Eventf(chain, corev1.EventTypeWarning, "DLQFilling", "%d vCons dead-lettered", obs.DLQ)
		}
	}
}

// setReady sums the Chain up. workers is why its workers fail
// (workersFailing), "" when they do not.
func setReady(st *vconv1.ChainStatus, gen int64, chain *vconv1.Chain, problem *notReady, workers string, obs observer.Observation, measured bool) {
	switch {
	case problem != nil:
		setCondition(&st.Conditions, gen, vconv1.ConditionReady, false, problem.reason, problem.message)
	case !chain.IsEnabled():
		setCondition(&st.Conditions, gen, vconv1.ConditionReady, false, vconv1.ReasonDisabled, "the Chain is disabled (enabled: false): workers scaled to zero, nothing is consumed")
	case workers != "":
		setCondition(&st.Conditions, gen, vconv1.ConditionReady, false, vconv1.ReasonWorkersFailing, workers)
	case measured && obs.Stale:
		setCondition(&st.Conditions, gen, vconv1.ConditionReady, false, vconv1.ReasonRedisUnreachable, "cannot reach the Chain's Redis: "+obs.Err)
	default:
		setCondition(&st.Conditions, gen, vconv1.ConditionReady, true, vconv1.ReasonRunning, fmt.Sprintf("%d/%d workers ready", st.ReadyReplicas, st.Replicas))
	}
}

func limitedReason(d autoscale.Decision) string {
	if d.Limited {
		return vconv1.ReasonAtMaxReplicas
	}
	return vconv1.ReasonWithinLimits
}

func limitedMessage(chain *vconv1.Chain, d autoscale.Decision) string {
	if d.Limited {
		return fmt.Sprintf("the queue wants %d workers; workers.maxReplicas is %d", d.Desired, chain.Spec.Workers.MaxReplicas)
	}
	return "demand is within workers.maxReplicas"
}

// equalStatus ignores nothing: a status is written only when it differs.
func equalStatus(a, b *vconv1.ChainStatus) bool { return apiequality.Semantic.DeepEqual(a, b) }
