package controllers

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/autoscale"
	"github.com/vcon-operator/vcon-operator/internal/observer"
	"github.com/vcon-operator/vcon-operator/internal/queue"
)

// want is one expected condition: its status, reason and a part of its
// message ("" for any).
type want struct {
	status metav1.ConditionStatus
	reason string
	msg    string
}

func TestChainConditions(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)
	measured := func(dlq int64) observer.Observation {
		return observer.Observation{Depths: queue.Depths{Ingress: 5, DLQ: dlq}, At: t0, Measured: true}
	}
	stale := measured(0)
	stale.Stale, stale.Err = true, "dial tcp 10.0.0.9:6379: connect: connection refused"
	neverReached := observer.Observation{At: t0, Stale: true, Err: "dial tcp: i/o timeout"}
	crashing := []corev1.Pod{pod("w-a", crashed(refused, 1, t0))}
	disabled := func(c *vconv1.Chain) { c.Spec.Enabled = ptr.To(false) }

	tests := []struct {
		name  string
		chain func(*vconv1.Chain)
		facts chainFacts
		// Conditions not listed are not checked.
		want map[vconv1.ConditionType]want
	}{
		{
			name:  "not measured yet is Unknown, not False",
			facts: chainFacts{replicas: 1, deployment: deployment(1)},
			want: map[vconv1.ConditionType]want{
				vconv1.ConditionRedisReachable: {metav1.ConditionUnknown, "NotMeasured", "not been measured"},
				vconv1.ConditionDLQEmpty:       {metav1.ConditionUnknown, "NotMeasured", "not been measured"},
				vconv1.ConditionReady:          {metav1.ConditionTrue, "Running", "0/1 workers ready"},
				vconv1.ConditionScalingLimited: {metav1.ConditionFalse, "WithinLimits", ""},
			},
		},
		{
			name:  "measured and healthy",
			facts: chainFacts{observation: measured(0), replicas: 2, deployment: readyDeployment(2, 2)},
			want: map[vconv1.ConditionType]want{
				vconv1.ConditionRedisReachable: {metav1.ConditionTrue, "Measured", ""},
				vconv1.ConditionDLQEmpty:       {metav1.ConditionTrue, "Empty", ""},
				vconv1.ConditionReady:          {metav1.ConditionTrue, "Running", "2/2 workers ready"},
			},
		},
		{
			name:  "dead letters",
			facts: chainFacts{observation: measured(3)},
			want: map[vconv1.ConditionType]want{
				vconv1.ConditionDLQEmpty: {metav1.ConditionFalse, "DeadLetters", "3 vCons in the dead-letter lists; see kubectl vcon dlq list c"},
				vconv1.ConditionReady:    {metav1.ConditionTrue, "Running", ""},
			},
		},
		{
			name:  "failed storage writes",
			facts: chainFacts{observation: func() observer.Observation { o := measured(0); o.StorageDLQ = 2; return o }()},
			want: map[vconv1.ConditionType]want{
				vconv1.ConditionDLQEmpty: {metav1.ConditionFalse, "DeadLetters", "0 vCons in the dead-letter lists and 2 failed writes in the storage dead-letter lists (DLQ:storage:{name}); see kubectl vcon dlq list c [--storage NAME]"},
				vconv1.ConditionReady:    {metav1.ConditionTrue, "Running", ""},
			},
		},
		{
			name:  "Redis lost keeps the last known dead letters",
			facts: chainFacts{observation: func() observer.Observation { o := measured(4); o.Stale, o.Err = true, "refused"; return o }()},
			want: map[vconv1.ConditionType]want{
				vconv1.ConditionRedisReachable: {metav1.ConditionFalse, "RedisUnreachable", "cannot measure the queues: refused"},
				vconv1.ConditionDLQEmpty:       {metav1.ConditionFalse, "DeadLetters", "4 vCons"},
				vconv1.ConditionReady:          {metav1.ConditionFalse, "RedisUnreachable", "cannot reach the Chain's Redis: refused"},
			},
		},
		{
			name:  "Redis unreachable",
			facts: chainFacts{observation: stale},
			want: map[vconv1.ConditionType]want{
				vconv1.ConditionRedisReachable: {metav1.ConditionFalse, "RedisUnreachable", "connection refused"},
				vconv1.ConditionDLQEmpty:       {metav1.ConditionTrue, "Empty", ""},
				vconv1.ConditionReady:          {metav1.ConditionFalse, "RedisUnreachable", "connection refused"},
			},
		},
		{
			name:  "Redis never reached: its dead letters are unknown",
			facts: chainFacts{observation: neverReached},
			want: map[vconv1.ConditionType]want{
				vconv1.ConditionRedisReachable: {metav1.ConditionFalse, "RedisUnreachable", "i/o timeout"},
				vconv1.ConditionDLQEmpty:       {metav1.ConditionUnknown, "NotMeasured", ""},
				vconv1.ConditionReady:          {metav1.ConditionFalse, "RedisUnreachable", "i/o timeout"},
			},
		},
		{
			name:  "a problem comes first",
			facts: chainFacts{problem: &notReady{"ReferenceNotFound", "Link x"}, observation: stale, deployment: deployment(1), pods: crashing},
			want: map[vconv1.ConditionType]want{
				vconv1.ConditionReady:          {metav1.ConditionFalse, "ReferenceNotFound", "Link x"},
				vconv1.ConditionRedisReachable: {metav1.ConditionFalse, "RedisUnreachable", ""},
			},
		},
		{
			name:  "paused before everything else",
			facts: chainFacts{paused: true, problem: &notReady{"ReferenceNotFound", "Link x"}, observation: stale, deployment: deployment(3), pods: crashing, replicas: 3},
			want: map[vconv1.ConditionType]want{
				vconv1.ConditionReady:          {metav1.ConditionFalse, vconv1.ReasonPaused, `paused (vcon.dev/paused: "true"): the operator changes none of its objects and its workers stay at 3`},
				vconv1.ConditionRedisReachable: {metav1.ConditionFalse, "RedisUnreachable", ""},
			},
		},
		{
			name:  "disabled before failing workers",
			chain: disabled,
			facts: chainFacts{observation: measured(0), deployment: deployment(1), pods: crashing},
			want:  map[vconv1.ConditionType]want{vconv1.ConditionReady: {metav1.ConditionFalse, "Disabled", "enabled: false"}},
		},
		{
			name:  "failing workers, in their own words",
			facts: chainFacts{observation: stale, deployment: deployment(1), pods: crashing},
			want: map[vconv1.ConditionType]want{
				vconv1.ConditionReady: {metav1.ConditionFalse, "WorkersFailing", "pod w-a container worker is in CrashLoopBackOff, exit code 1: conserver: invalid config"},
			},
		},
		{
			name:  "pods without a Deployment are not the Chain's workers",
			facts: chainFacts{observation: measured(0), pods: crashing},
			want:  map[vconv1.ConditionType]want{vconv1.ConditionReady: {metav1.ConditionTrue, "Running", "0/0 workers ready"}},
		},
		{
			name:  "demand over maxReplicas",
			facts: chainFacts{observation: measured(0), decision: autoscale.Decision{Limited: true, Desired: 40}},
			want: map[vconv1.ConditionType]want{
				vconv1.ConditionScalingLimited: {metav1.ConditionTrue, "AtMaxReplicas", "the queue wants 40 workers; workers.maxReplicas is 10"},
			},
		},
		{
			name:  "demand over an open schedule's maxReplicas",
			facts: chainFacts{observation: measured(0), decision: autoscale.Decision{Limited: true, Desired: 40, MaxReplicas: 2}},
			want: map[vconv1.ConditionType]want{
				vconv1.ConditionScalingLimited: {metav1.ConditionTrue, "AtMaxReplicas", "the queue wants 40 workers; the open workers.schedules allow 2"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chain := &vconv1.Chain{Spec: vconv1.ChainSpec{Workers: vconv1.WorkerSpec{MaxReplicas: 10}}}
			chain.Name, chain.Generation = "c", 4
			if tt.chain != nil {
				tt.chain(chain)
			}
			got := chainConditions(chain, tt.facts)
			if len(got) != 4 {
				t.Fatalf("%d conditions, want Ready, RedisReachable, DLQEmpty and ScalingLimited: %+v", len(got), got)
			}
			byType := map[vconv1.ConditionType]metav1.Condition{}
			for _, c := range got {
				if c.ObservedGeneration != 4 {
					t.Errorf("%s observedGeneration %d, want 4", c.Type, c.ObservedGeneration)
				}
				if c.Message == "" {
					t.Errorf("%s has no message", c.Type)
				}
				byType[vconv1.ConditionType(c.Type)] = c
			}
			for typ, w := range tt.want {
				c, ok := byType[typ]
				if !ok {
					t.Errorf("no %s condition", typ)
					continue
				}
				if c.Status != w.status || c.Reason != w.reason || !strings.Contains(c.Message, w.msg) {
					t.Errorf("%s = %s/%s %q, want %s/%s containing %q", typ, c.Status, c.Reason, c.Message, w.status, w.reason, w.msg)
				}
			}
		})
	}
}

func TestQueueStatus(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 7, 0, 0, 500, time.UTC)
	at := &metav1.Time{Time: t0.Truncate(time.Second)}
	earlier := &metav1.Time{Time: t0.Add(-time.Minute).Truncate(time.Second)}
	fresh := observer.Observation{Depths: queue.Depths{Ingress: 3, InFlight: 1, DLQ: 2, Egress: 4}, At: t0, Measured: true}
	tests := []struct {
		name string
		prev vconv1.QueueStatus
		obs  observer.Observation
		want vconv1.QueueStatus
	}{
		{"not measured keeps the status", vconv1.QueueStatus{Ingress: 9, ObservedAt: earlier}, observer.Observation{}, vconv1.QueueStatus{Ingress: 9, ObservedAt: earlier}},
		{"first measurement", vconv1.QueueStatus{}, fresh, vconv1.QueueStatus{Ingress: 3, InFlight: 1, DLQ: 2, Egress: 4, ObservedAt: at}},
		{"same figures keep observedAt", vconv1.QueueStatus{Ingress: 3, InFlight: 1, DLQ: 2, Egress: 4, ObservedAt: earlier}, fresh,
			vconv1.QueueStatus{Ingress: 3, InFlight: 1, DLQ: 2, Egress: 4, ObservedAt: earlier}},
		{"a changed figure moves observedAt", vconv1.QueueStatus{Ingress: 7, InFlight: 1, DLQ: 2, Egress: 4, ObservedAt: earlier}, fresh,
			vconv1.QueueStatus{Ingress: 3, InFlight: 1, DLQ: 2, Egress: 4, ObservedAt: at}},
		{"stale before any measurement", vconv1.QueueStatus{}, observer.Observation{At: t0, Stale: true}, vconv1.QueueStatus{Stale: true, ObservedAt: at}},
		{"failed storage writes", vconv1.QueueStatus{}, observer.Observation{Depths: queue.Depths{StorageDLQ: 5}, At: t0, Measured: true},
			vconv1.QueueStatus{StorageDLQ: 5, ObservedAt: at}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := queueStatus(tt.prev, tt.obs)
			if got.Ingress != tt.want.Ingress || got.InFlight != tt.want.InFlight || got.DLQ != tt.want.DLQ || got.Egress != tt.want.Egress || got.Stale != tt.want.Stale ||
				got.StorageDLQ != tt.want.StorageDLQ ||
				(got.ObservedAt == nil) != (tt.want.ObservedAt == nil) || (got.ObservedAt != nil && !got.ObservedAt.Equal(tt.want.ObservedAt)) {
				t.Errorf("queueStatus = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func readyDeployment(replicas, ready int32) *appsv1.Deployment {
	d := deployment(replicas)
	d.Status.ReadyReplicas = ready
	return d
}
