package v1alpha1

import (
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NotReadyAt is whether the step's Ready condition is False for the given
// generation. A step not yet evaluated (or evaluated for an older
// generation) is not reported as not ready, so that a Chain created
// together with its steps does not flap.
func (s *StepStatus) NotReadyAt(generation int64) bool {
	c := apimeta.FindStatusCondition(s.Conditions, string(ConditionReady))
	return c != nil && c.Status == metav1.ConditionFalse && c.ObservedGeneration == generation
}
