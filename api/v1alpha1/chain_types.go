package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ChainSpec defines a pipeline: the Redis lists it drains, the Links each
// vCon goes through in order, the Storages it is written to and the lists
// it is pushed to when done. It is the conserver `chains:` entry as an object.
// +kubebuilder:validation:XValidation:rule="!has(self.egressLists) || self.egressLists.all(e, !(e in self.ingressLists))",messageExpression="'egress list ' + self.egressLists.filter(e, e in self.ingressLists)[0] + ' is also an ingress list of this chain: every vCon would go round the chain forever'"
type ChainSpec struct {
	// IngressLists are the Redis lists producers RPUSH vCon uuids onto.
	// At least one; each name once.
	// +kubebuilder:validation:XValidation:rule="size(self) > 0",message="ingressLists must name at least one Redis list: the list producers push vCon uuids onto, e.g. [default]"
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=512
	// +kubebuilder:validation:items:XValidation:rule="self != ''",message="a list name cannot be empty"
	// +kubebuilder:validation:items:XValidation:rule="!self.matches('[[:space:]]')",message="a list name cannot contain spaces, tabs or line breaks"
	// +kubebuilder:validation:items:XValidation:rule="self != 'vcons' && !['vcon:', 'context:', 'tel:', 'mailto:', 'name:', 'vcon-operator:'].exists(p, self.startsWith(p))",message="this name holds vCon data, not a queue: vcons is the vCon index, and keys starting with vcon:, context:, tel:, mailto:, name: or vcon-operator: are bodies, trace contexts, party indexes and the operator's own keys; use another list name"
	// +listType=set
	IngressLists []string `json:"ingressLists"`
	// Links are the names of Link objects in this namespace, run in order.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')",message="links must be names of Link objects: lower-case letters, digits, '-' and '.'"
	// +optional
	Links []string `json:"links,omitempty"`
	// Storages are the names of Storage objects in this namespace; every one
	// is written before the vCon is pushed to the egress lists.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')",message="storages must be names of Storage objects: lower-case letters, digits, '-' and '.'"
	// +listType=set
	// +optional
	Storages []string `json:"storages,omitempty"`
	// EgressLists receive the uuid of every vCon that finished the chain.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=512
	// +kubebuilder:validation:items:XValidation:rule="self != ''",message="a list name cannot be empty"
	// +kubebuilder:validation:items:XValidation:rule="!self.matches('[[:space:]]')",message="a list name cannot contain spaces, tabs or line breaks"
	// +kubebuilder:validation:items:XValidation:rule="self != 'vcons' && !['vcon:', 'context:', 'tel:', 'mailto:', 'name:', 'vcon-operator:'].exists(p, self.startsWith(p))",message="this name holds vCon data, not a queue: vcons is the vCon index, and keys starting with vcon:, context:, tel:, mailto:, name: or vcon-operator: are bodies, trace contexts, party indexes and the operator's own keys; use another list name"
	// +listType=set
	// +optional
	EgressLists []string `json:"egressLists,omitempty"`
	// Enabled false stops the chain: its workers scale to zero and nothing
	// is consumed (conserver ignores this setting; we honour it).
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
	// Timeout bounds the whole chain for one vCon; a vCon that takes longer
	// is dead-lettered with reason "timeout". Empty means no limit.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$')",message="timeout must be a duration with a unit, such as 30s, 5m or 1h30m"
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// Retry is when a vCon that failed for a reason that may pass (a
	// vendor's 5xx or 429, a timeout, a refused connection, a storage
	// write) runs again later instead of being dead-lettered at once.
	// While it waits it holds no worker. attempts: 1 dead-letters at the
	// first failure, as conserver does.
	// +kubebuilder:default={}
	// +optional
	Retry RetryPolicy `json:"retry,omitempty"`
	// Redis the chain's lists live in. Empty means the operator's default.
	// +optional
	Redis RedisConnection `json:"redis,omitempty"`
	// Workers sizes and scales the worker Deployment.
	// +kubebuilder:default={}
	// +optional
	Workers WorkerSpec `json:"workers,omitempty"`
}

// RetryPolicy spaces the attempts of a vCon whose failure may pass: the
// wait before attempt n+1 is initialBackoff * 2^(n-1), at most maxBackoff,
// spread by ± jitterPercent.
// +kubebuilder:validation:XValidation:rule="!has(self.initialBackoff) || !has(self.maxBackoff) || duration(self.initialBackoff) <= duration(self.maxBackoff)",message="retry.initialBackoff must not be longer than retry.maxBackoff"
type RetryPolicy struct {
	// Attempts is the number of runs in all, the first included.
	// +kubebuilder:default=5
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	Attempts *int32 `json:"attempts,omitempty"`
	// InitialBackoff is the wait before the second attempt.
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$')",message="retry.initialBackoff must be a duration with a unit, such as 30s or 5m"
	// +optional
	InitialBackoff *metav1.Duration `json:"initialBackoff,omitempty"`
	// MaxBackoff caps the wait between two attempts.
	// +kubebuilder:default="10m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$')",message="retry.maxBackoff must be a duration with a unit, such as 10m or 1h"
	// +optional
	MaxBackoff *metav1.Duration `json:"maxBackoff,omitempty"`
	// JitterPercent spreads each wait by up to ± this share, so that a
	// backlog failed by one outage does not come due in one instant.
	// +kubebuilder:default=20
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	JitterPercent *int32 `json:"jitterPercent,omitempty"`
}

// RedisConnection says which Redis to use: a URL, or a Secret holding one.
// The worker accepts redis:// and rediss:// (TLS), unix://,
// redis+cluster://host1:port?addr=host2:port and
// redis+sentinel://host1:port,host2:port?master=NAME (rediss+ for TLS).
// +kubebuilder:validation:XValidation:rule="!(has(self.url) && has(self.urlSecretRef))",message="set redis.url or redis.urlSecretRef, not both"
type RedisConnection struct {
	// URL of the Redis server, e.g. redis://redis:6379/0. Put credentials in
	// urlSecretRef instead.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^(rediss?([+](cluster|sentinel))?|unix)://.+')",message="redis.url must be a Redis URL starting with redis://, rediss://, unix://, redis+cluster:// or redis+sentinel://, e.g. redis://redis:6379/0"
	// +optional
	URL string `json:"url,omitempty"`
	// URLSecretRef selects a Secret key holding the Redis URL.
	// +optional
	URLSecretRef *corev1.SecretKeySelector `json:"urlSecretRef,omitempty"`
}

// WorkerSpec sizes the worker Deployment and drives the autoscaler.
// +kubebuilder:validation:XValidation:rule="!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",message="workers.minReplicas must not be greater than workers.maxReplicas (which is 10 when not set)"
type WorkerSpec struct {
	// MinReplicas kept while idle; 0 lets an idle chain use no pods.
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +optional
	MinReplicas int32 `json:"minReplicas"`
	// MaxReplicas is the most workers the autoscaler will run.
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	MaxReplicas int32 `json:"maxReplicas"`
	// TargetQueueDepth is the queued plus in-flight vCons one replica is
	// expected to handle; replicas = ceil(work / targetQueueDepth).
	// +kubebuilder:default=100
	// +kubebuilder:validation:Minimum=1
	// +optional
	TargetQueueDepth int64 `json:"targetQueueDepth"`
	// MaxDeliveries: a vCon taken this many times by a worker that then
	// died (killed, out of memory, its heartbeat lost) is a poison pill:
	// when taken again it is dead-lettered with reason redelivery_limit
	// instead of taking down the next worker.
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	MaxDeliveries *int32 `json:"maxDeliveries,omitempty"`
	// Concurrency is how many vCons one pod processes at once.
	// +kubebuilder:default=4
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1024
	// +optional
	Concurrency int32 `json:"concurrency"`
	// ScaleDownDelay is how long demand must stay lower before workers are removed.
	// +kubebuilder:default="60s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$')",message="scaleDownDelay must be a duration with a unit, such as 30s, 5m or 1h30m"
	// +optional
	ScaleDownDelay *metav1.Duration `json:"scaleDownDelay,omitempty"`
	// Resources of the worker container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
	// Image overrides the operator's worker image for this chain.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Image string `json:"image,omitempty"`
	// Volumes are mounted into every worker pod, e.g. a PersistentVolumeClaim
	// for storage.file: the worker's root filesystem is read-only.
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=name
	// +optional
	Volumes []WorkerVolume `json:"volumes,omitempty"`
}

// WorkerVolume is a volume mounted into the worker container: a
// PersistentVolumeClaim, or an emptyDir when no claim is named.
type WorkerVolume struct {
	// Name of the volume.
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// MountPath in the worker container, e.g. /data/vcons.
	// +kubebuilder:validation:Pattern=`^/.*`
	// +kubebuilder:validation:MaxLength=1024
	MountPath string `json:"mountPath"`
	// ClaimName of a PersistentVolumeClaim in the Chain's namespace; empty
	// means an emptyDir that lives as long as the pod.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	ClaimName string `json:"claimName,omitempty"`
	// ReadOnly mounts the volume read-only.
	// +optional
	ReadOnly bool `json:"readOnly,omitempty"`
}

// QueueStatus is where the chain's vCons are, as last measured in Redis.
type QueueStatus struct {
	// Ingress is the total length of the ingress lists.
	Ingress int64 `json:"ingress"`
	// InFlight is the number of vCons workers have taken and not finished.
	InFlight int64 `json:"inFlight"`
	// DLQ is the total length of the DLQ:{ingress} lists.
	DLQ int64 `json:"dlq"`
	// Egress is the total length of the egress lists.
	Egress int64 `json:"egress"`
	// Retry counts the vCons waiting for a delayed retry (they hold no
	// worker); NextRetryAt is when the first of them is due.
	// +optional
	Retry int64 `json:"retry"`
	// +optional
	NextRetryAt *metav1.Time `json:"nextRetryAt,omitempty"`
	// OldestQueuedSince is about when the oldest vCon waiting on an
	// ingress list was queued (no later than this; empty when none waits):
	// its wait is the queue's age, exported as
	// vcon_queue_oldest_age_seconds.
	// +optional
	OldestQueuedSince *metav1.Time `json:"oldestQueuedSince,omitempty"`
	// ObservedAt is when these figures were measured.
	// +optional
	ObservedAt *metav1.Time `json:"observedAt,omitempty"`
	// Stale is true when Redis could not be reached and the figures are the last known ones.
	// +optional
	Stale bool `json:"stale,omitempty"`
}

// ChainStatus is the observed state of a Chain.
type ChainStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, RedisReachable, DLQEmpty, ScalingLimited.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Replicas is the number of workers the operator asked for.
	// +optional
	Replicas int32 `json:"replicas"`
	// ReadyReplicas is the number of workers ready to process.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas"`
	// Workers is "ready/desired", for kubectl get.
	// +optional
	Workers string `json:"workers,omitempty"`
	// Queue is where the chain's vCons are.
	// +optional
	Queue QueueStatus `json:"queue,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=vchain,categories=vcon
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Workers",type=string,JSONPath=`.status.workers`
// +kubebuilder:printcolumn:name="Ingress",type=integer,JSONPath=`.status.queue.ingress`
// +kubebuilder:printcolumn:name="In-Flight",type=integer,JSONPath=`.status.queue.inFlight`
// +kubebuilder:printcolumn:name="Retry",type=integer,JSONPath=`.status.queue.retry`
// +kubebuilder:printcolumn:name="DLQ",type=integer,JSONPath=`.status.queue.dlq`
// +kubebuilder:printcolumn:name="Egress",type=integer,JSONPath=`.status.queue.egress`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// Chain is a vCon processing pipeline run by an autoscaled worker Deployment.
type Chain struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ChainSpec   `json:"spec"`
	Status ChainStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// ChainList is a list of Chains.
type ChainList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Chain `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Chain{}, &ChainList{})
}
