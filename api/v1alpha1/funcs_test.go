package v1alpha1

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestChainFuncs(t *testing.T) {
	f, tr := false, true
	t0 := metav1.NewTime(time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC))
	chain := func(ns, name string, created metav1.Time) *Chain {
		return &Chain{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: created}}
	}
	later := metav1.NewTime(t0.Add(time.Second))
	for _, tt := range []struct {
		name string
		got  bool
		want bool
	}{
		{"enabled by default", (&Chain{}).IsEnabled(), true},
		{"enabled: true", (&Chain{Spec: ChainSpec{Enabled: &tr}}).IsEnabled(), true},
		{"enabled: false", (&Chain{Spec: ChainSpec{Enabled: &f}}).IsEnabled(), false},
		{"not paused by default", (&Chain{}).IsPaused(), false},
		{"paused: true", (&Chain{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnotationPaused: "true"}}}).IsPaused(), true},
		{"paused: anything else", (&Chain{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnotationPaused: "True"}}}).IsPaused(), false},
		{"the operator's Redis", (&Chain{}).NamesRedis(), false},
		{"its own url", (&Chain{Spec: ChainSpec{Redis: RedisConnection{URL: "redis://r"}}}).NamesRedis(), true},
		{"its own Secret", (&Chain{Spec: ChainSpec{Redis: RedisConnection{URLSecretRef: &corev1.SecretKeySelector{Key: "url"}}}}).NamesRedis(), true},
		{"older first", chain("b", "b", t0).CreatedBefore(chain("a", "a", later)), true},
		{"younger second", chain("a", "a", later).CreatedBefore(chain("b", "b", t0)), false},
		{"same age: namespace", chain("a", "z", t0).CreatedBefore(chain("b", "a", t0)), true},
		{"same age and namespace: name", chain("a", "b", t0).CreatedBefore(chain("a", "a", t0)), false},
		{"never reported is not behind", (&Chain{ObjectMeta: metav1.ObjectMeta{Generation: 2}}).StatusBehind(), false},
		{"behind", (&Chain{ObjectMeta: metav1.ObjectMeta{Generation: 2}, Status: ChainStatus{ObservedGeneration: 1}}).StatusBehind(), true},
		{"caught up", (&Chain{ObjectMeta: metav1.ObjectMeta{Generation: 2}, Status: ChainStatus{ObservedGeneration: 2}}).StatusBehind(), false},
	} {
		if tt.got != tt.want {
			t.Errorf("%s: got %t, want %t", tt.name, tt.got, tt.want)
		}
	}
}

func TestStepNotReadyAt(t *testing.T) {
	ready := func(s metav1.ConditionStatus, gen int64) StepStatus {
		return StepStatus{Conditions: []metav1.Condition{{Type: "Ready", Status: s, ObservedGeneration: gen}}}
	}
	for _, tt := range []struct {
		name string
		st   StepStatus
		want bool
	}{
		{"not evaluated yet", StepStatus{}, false},
		{"ready", ready(metav1.ConditionTrue, 3), false},
		{"not ready", ready(metav1.ConditionFalse, 3), true},
		{"not ready for an older generation", ready(metav1.ConditionFalse, 2), false},
	} {
		if got := tt.st.NotReadyAt(3); got != tt.want {
			t.Errorf("%s: NotReadyAt = %t, want %t", tt.name, got, tt.want)
		}
	}
}
