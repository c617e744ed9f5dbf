package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LinkSpec defines one processing step. Exactly one of module, http and
// container says how the step runs.
// +kubebuilder:validation:XValidation:rule="[has(self.module), has(self.http), has(self.container)].filter(x, x).size() == 1",message="a Link runs in exactly one way: set one of module, http or container"
// +kubebuilder:validation:XValidation:rule="!has(self.options) || has(self.module)",message="options are only for module links; http and container steps take their settings from their own fields"
type LinkSpec struct {
	// Module is a conserver link module built into the worker, e.g. links.tag.
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('storage.')",message="storage modules do not run as Links: create a Storage with this module and list it in the Chain's storages"
	// +kubebuilder:validation:XValidation:rule="self.startsWith('storage.') || self.matches('^links[.][a-z0-9_]+$')",message="module must be a link module name: links. followed by lower-case letters, digits or _, e.g. links.tag"
	// +optional
	Module string `json:"module,omitempty"`
	// Options are the module's options, as in a conserver config file.
	// Values may reference environment variables as ${NAME}.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	// +optional
	Options *apiextensionsv1.JSON `json:"options,omitempty"`
	// HTTP calls a step service over HTTP (see docs/steps.md for the contract).
	// +optional
	HTTP *HTTPStep `json:"http,omitempty"`
	// Container runs the step service as a sidecar of every worker pod; the
	// worker calls it on localhost with the HTTP step contract.
	// +optional
	Container *ContainerStep `json:"container,omitempty"`
	// Limits bound the calls the step makes to its vendor (every attempt
	// of every HTTP call), for every worker of every Chain that uses this
	// Link together: one budget in the Chain's Redis. The autoscaler stops
	// adding workers a binding limit could not use (ScalingLimited).
	// +optional
	Limits *LinkLimits `json:"limits,omitempty"`
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

// LinkLimits are a vendor's limits, as its account states them. A limit
// left out is not enforced.
// +kubebuilder:validation:MinProperties=1
type LinkLimits struct {
	// RequestsPerMinute bounds the calls sent per minute, spaced evenly.
	// +kubebuilder:validation:Minimum=1
	// +optional
	RequestsPerMinute int64 `json:"requestsPerMinute,omitempty"`
	// TokensPerMinute bounds the tokens LLM calls use per minute, counted
	// from the vendor's usage figures: estimated before each call and
	// corrected after it.
	// +kubebuilder:validation:Minimum=1
	// +optional
	TokensPerMinute int64 `json:"tokensPerMinute,omitempty"`
	// MaxConcurrent bounds the calls in progress at once.
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxConcurrent int64 `json:"maxConcurrent,omitempty"`
}

// HTTPStep is a step service reachable over HTTP.
type HTTPStep struct {
	// URL the vCon is POSTed to.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^https?://[^/?#]+')",message="http.url must be an absolute http:// or https:// URL, e.g. http://sentiment.steps.svc:8080/analyze"
	URL string `json:"url"`
	// Timeout of one call.
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$')",message="http.timeout must be a duration with a unit, such as 30s, 5m or 1h30m"
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// Headers added to every call, their values from Secrets.
	// +kubebuilder:validation:MaxItems=32
	// +optional
	// +listType=map
	// +listMapKey=name
	Headers []SecretHeader `json:"headers,omitempty"`
}

// SecretHeader is an HTTP header whose value comes from a Secret key.
type SecretHeader struct {
	// Name of the header.
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9-]+$')",message="a header name is letters, digits and '-', e.g. Authorization or X-Api-Key"
	Name string `json:"name"`
	// ValueFrom selects the Secret key holding the value.
	ValueFrom corev1.SecretKeySelector `json:"valueFrom"`
}

// ContainerStep runs a step service image beside the worker.
type ContainerStep struct {
	// Image of the step service.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Image string `json:"image"`
	// Port the step service listens on, on localhost.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`
	// Path the vCon is POSTed to.
	// +kubebuilder:default="/"
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="self.startsWith('/')",message="container.path must start with /, e.g. /analyze"
	// +optional
	Path string `json:"path,omitempty"`
	// Timeout of one call.
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$')",message="container.timeout must be a duration with a unit, such as 30s, 5m or 1h30m"
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// Resources of the sidecar.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=vlink,categories=vcon
// +kubebuilder:printcolumn:name="Module",type=string,JSONPath=`.spec.module`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// Link is one processing step a Chain can use.
type Link struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   LinkSpec   `json:"spec"`
	Status StepStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// LinkList is a list of Links.
type LinkList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Link `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Link{}, &LinkList{})
}
