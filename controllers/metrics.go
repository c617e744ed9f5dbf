package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// scalingDecisions counts the autoscaler's decisions that changed a
// Chain's replicas, by reason (ScaledUp, ScaledDown, Idle, DLQStorm, ...).
// A deleted Chain's series are removed with it. Reconcile counts and
// durations come from controller-runtime (controller_runtime_reconcile_*).
var scalingDecisions = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "vcon_operator_scaling_decisions_total",
	Help: "Replica changes the operator made to Chain workers, by reason.",
}, []string{"chain", "namespace", "reason"})

func init() {
	crmetrics.Registry.MustRegister(scalingDecisions)
}

func forgetChainMetrics(namespace, name string) {
	scalingDecisions.DeletePartialMatch(prometheus.Labels{"chain": name, "namespace": namespace})
}
