package controllers

import (
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
)

// condition is a condition stamped with the generation it describes.
func condition(generation int64, typ vconv1.ConditionType, status metav1.ConditionStatus, reason, message string) metav1.Condition {
	return metav1.Condition{Type: string(typ), Status: status, Reason: reason, Message: message, ObservedGeneration: generation}
}

// setConditions sets each of next in conds. meta.SetStatusCondition keeps
// lastTransitionTime unless the status really changes, so a condition
// re-asserted every reconcile stays stable.
func setConditions(conds *[]metav1.Condition, next []metav1.Condition) {
	for _, c := range next {
		apimeta.SetStatusCondition(conds, c)
	}
}
