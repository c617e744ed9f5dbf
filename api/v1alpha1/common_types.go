package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SecretEnv exposes one key of a Secret to the worker as an environment
// variable, so that options can say `${NAME}` instead of holding credentials.
type SecretEnv struct {
	// Name of the environment variable, referenced from options as ${Name}.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z_][A-Za-z0-9_]*$')",message="an env name is letters, digits and _, not starting with a digit, e.g. PG_PASSWORD"
	Name string `json:"name"`
	// SecretKeyRef selects the key of a Secret in the same namespace.
	SecretKeyRef corev1.SecretKeySelector `json:"secretKeyRef"`
}

// StepStatus is the status shared by Links and Storages.
type StepStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready says whether the step's definition is usable.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}
