package controllers

import (
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
)

// setCondition sets a condition stamped with the generation it describes.
// meta.SetStatusCondition keeps lastTransitionTime unless the status
// really changes, so a condition re-asserted every reconcile stays stable.
func setCondition(conds *[]metav1.Condition, generation int64, typ vconv1.ConditionType, status bool, reason, message string) {
	s := metav1.ConditionFalse
	if status {
		s = metav1.ConditionTrue
	}
	apimeta.SetStatusCondition(conds, metav1.Condition{
		Type: string(typ), Status: s, Reason: reason, Message: message, ObservedGeneration: generation,
	})
}
