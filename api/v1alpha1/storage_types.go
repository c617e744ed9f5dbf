package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// StorageSpec defines where finished vCons are written.
type StorageSpec struct {
	// Module is a conserver storage module built into the worker, e.g. storage.postgres.
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('links.')",message="link modules do not run as Storages: create a Link with this module and list it in the Chain's links"
	// +kubebuilder:validation:XValidation:rule="self.startsWith('links.') || self.matches('^storage[.][a-z0-9_]+$')",message="module must be a storage module name: storage. followed by lower-case letters, digits or _, e.g. storage.postgres"
	Module string `json:"module"`
	// Options are the module's options, as in a conserver config file.
	// Values may reference environment variables as ${NAME}.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	// +optional
	Options *apiextensionsv1.JSON `json:"options,omitempty"`
	// Env exposes Secret keys to the worker as environment variables.
	// +kubebuilder:validation:MaxItems=64
	// +optional
	// +listType=map
	// +listMapKey=name
	Env []SecretEnv `json:"env,omitempty"`
	// EnvFrom exposes every key of the named Secrets as environment variables.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	EnvFrom []corev1.SecretEnvSource `json:"envFrom,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=vstorage,categories=vcon
// +kubebuilder:printcolumn:name="Module",type=string,JSONPath=`.spec.module`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// Storage is a place a Chain writes finished vCons to.
type Storage struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   StorageSpec `json:"spec"`
	Status StepStatus  `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// StorageList is a list of Storages.
type StorageList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Storage `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Storage{}, &StorageList{})
}
