package observer

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/queue"
)

var (
	listLengthDesc = prometheus.NewDesc("redis_list_length",
		"Length of a Redis list a Chain uses; list is the exact Redis key.",
		[]string{"list", "kind", "chain", "namespace"}, nil)
	inflightDesc = prometheus.NewDesc("vcon_chain_inflight",
		"vCons taken by a Chain's workers and not finished.", []string{"chain", "namespace"}, nil)
	desiredDesc = prometheus.NewDesc("vcon_chain_replicas_desired",
		"Workers the operator asked for.", []string{"chain", "namespace"}, nil)
	readyDesc = prometheus.NewDesc("vcon_chain_replicas_ready",
		"Workers ready to process.", []string{"chain", "namespace"}, nil)
	maxDesc = prometheus.NewDesc("vcon_chain_max_replicas",
		"The Chain's workers.maxReplicas.", []string{"chain", "namespace"}, nil)
	chainReadyDesc = prometheus.NewDesc("vcon_chain_ready",
		"1 when the Chain's Ready condition is True.", []string{"chain", "namespace"}, nil)
	redisReachableDesc = prometheus.NewDesc("vcon_chain_redis_reachable",
		"1 when the operator could measure the Chain's queues at the last poll.", []string{"chain", "namespace"}, nil)
	measuredAgeDesc = prometheus.NewDesc("vcon_chain_queue_observation_age_seconds",
		"Seconds since the Chain's queues were last measured successfully.", []string{"chain", "namespace"}, nil)
	oldestAgeDesc = prometheus.NewDesc("vcon_queue_oldest_age_seconds",
		"How long the oldest vCon of an ingress list has waited (a lower bound, short by at most one poll); 0 when the list is empty.",
		[]string{"list", "chain", "namespace"}, nil)
	bodyTTLDesc = prometheus.NewDesc("vcon_queue_body_ttl_seconds",
		"Least TTL of a queued vCon body (VCON_QUEUED_RETENTION): a vCon waiting longer may lose its body.",
		[]string{"chain", "namespace"}, nil)
	retryDueDesc = prometheus.NewDesc("vcon_chain_next_retry_seconds",
		"Seconds until the Chain's next delayed retry is due; absent when none waits.", []string{"chain", "namespace"}, nil)
)

// Collector exports the figures at scrape time from the Chains that exist
// now (read from the manager's cache) and the observer's latest
// measurements, so the series of a deleted Chain disappear with it:
// nothing is left behind in a gauge.
type Collector struct {
	Reader   client.Reader
	Observer *Observer
	// BodyTTL is the operator's queued retention, exported per Chain so
	// an alert can compare the queue's age with it; 0 exports nothing.
	BodyTTL time.Duration
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{listLengthDesc, inflightDesc, desiredDesc, readyDesc, maxDesc, chainReadyDesc, redisReachableDesc, measuredAgeDesc, oldestAgeDesc, bodyTTLDesc, retryDueDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var chains vconv1.ChainList
	if err := c.Reader.List(ctx, &chains); err != nil {
		return
	}
	snapshot := c.Observer.Snapshot()
	now := time.Now()
	for i := range chains.Items {
		chain := &chains.Items[i]
		labels := []string{chain.Name, chain.Namespace}
		gauge := func(d *prometheus.Desc, v float64, extra ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append(extra, labels...)...)
		}
		gauge(desiredDesc, float64(chain.Status.Replicas))
		gauge(readyDesc, float64(chain.Status.ReadyReplicas))
		gauge(maxDesc, float64(chain.Spec.Workers.MaxReplicas))
		gauge(chainReadyDesc, boolFloat(apimeta.IsStatusConditionTrue(chain.Status.Conditions, string(vconv1.ConditionReady))))
		if c.BodyTTL > 0 {
			gauge(bodyTTLDesc, c.BodyTTL.Seconds())
		}

		obs, ok := snapshot[types.NamespacedName{Namespace: chain.Namespace, Name: chain.Name}]
		if !ok || !obs.Measured {
			if ok {
				gauge(redisReachableDesc, 0)
			}
			continue
		}
		gauge(redisReachableDesc, boolFloat(!obs.Stale))
		gauge(measuredAgeDesc, now.Sub(obs.At).Seconds())
		gauge(inflightDesc, float64(obs.InFlight))
		for _, l := range obs.Lists {
			gauge(listLengthDesc, float64(l.Length), l.List, l.Kind)
			if l.Kind == queue.KindIngress {
				gauge(oldestAgeDesc, l.OldestAge.Seconds(), l.List)
			}
		}
		if obs.Retry > 0 && obs.NextRetry >= 0 {
			gauge(retryDueDesc, obs.NextRetry.Seconds())
		}
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
