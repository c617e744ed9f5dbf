package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ChainSpec defines a pipeline: the Redis lists it drains, the Links each
// vCon goes through in order, the Storages it is written to and the lists
// it is pushed to when done. It is the conserver `chains:` entry as an object.
// +kubebuilder:validation:XValidation:rule="!has(self.egressLists) || self.egressLists.all(e, !(e in self.ingressLists))",messageExpression="'egress list ' + self.egressLists.filter(e, e in self.ingressLists)[0] + ' is also an ingress list of this chain: every vCon would go round the chain forever'"
// +kubebuilder:validation:XValidation:rule="!has(self.followers) || self.followers.all(f, !has(f.ingressList) || f.ingressList in self.ingressLists)",message="a follower's ingressList must be one of the ingressLists of this chain (or empty, for the first)"
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
	// StorageFailure is what happens to a vCon whose write to one of its
	// storages still fails after that write's own retries.
	// DeadLetterVcon (the default): the whole vCon is retried as retry
	// says, then dead-lettered to DLQ:{ingress} with reason storage_error,
	// and it is not pushed to the egress lists. DeadLetterStorage
	// (conserver's behaviour since its PR #197): the uuid goes to
	// DLQ:storage:{storage name}, the body's TTL is raised to the DLQ
	// expiry, the other storages are still written and the vCon is still
	// pushed to the egress lists; replaying that list re-runs only that
	// storage's write.
	// +kubebuilder:default=DeadLetterVcon
	// +optional
	StorageFailure StorageFailurePolicy `json:"storageFailure,omitempty"`
	// Redis the chain's lists live in. Empty means the operator's default.
	// +optional
	Redis RedisConnection `json:"redis,omitempty"`
	// Workers sizes and scales the worker Deployment.
	// +kubebuilder:default={}
	// +optional
	Workers WorkerSpec `json:"workers,omitempty"`
	// Followers pull vCons from the egress lists of other conserver APIs
	// into this chain, as conserver's followers: section does. One worker
	// of the chain polls for each (a Redis lease), so a chain with
	// followers keeps at least one worker unless a schedule allows none.
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=name
	// +optional
	Followers []ChainFollower `json:"followers,omitempty"`
}

// ChainFollower pulls another conserver API's egress list: every
// pullingInterval it pops up to fetchVconLimit uuids from GET
// {url}/vcon/egress, fetches each vCon and queues it on ingressList. What
// it pops is recorded in Redis first, so a crash or an upstream outage
// loses nothing (docs/migrating-from-conserver.md).
type ChainFollower struct {
	// Name identifies the follower in metrics and logs.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
	// URL is the base URL of the upstream API, such as
	// https://upstream.example.com/api.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^https?://[^/?#@]+([/?#].*)?$')",message="url must be the http(s) base URL of the conserver API to follow, such as https://upstream.example.com/api, without credentials: put the token in authTokenSecretRef"
	URL string `json:"url"`
	// EgressList is the upstream list to pull.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="!self.matches('[[:space:]]')",message="a list name cannot contain spaces, tabs or line breaks"
	EgressList string `json:"egressList"`
	// IngressList is the list of this chain the vCons are queued on; the
	// first of ingressLists when empty.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	IngressList string `json:"ingressList,omitempty"`
	// AuthTokenSecretRef is the key of a Secret holding the upstream API
	// token, sent in the CONSERVER_HEADER_NAME header. Empty sends none.
	// +optional
	AuthTokenSecretRef *corev1.SecretKeySelector `json:"authTokenSecretRef,omitempty"`
	// PullingInterval is the time between polls.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) > duration('0s')",message="pullingInterval must be a positive duration with a unit, such as 30s or 1m"
	// +kubebuilder:default="60s"
	// +optional
	PullingInterval *metav1.Duration `json:"pullingInterval,omitempty"`
	// FetchVconLimit is how many vCons one poll pops at most.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +kubebuilder:default=10
	// +optional
	FetchVconLimit *int32 `json:"fetchVconLimit,omitempty"`
}

// StorageFailurePolicy is what a chain does with a vCon whose storage
// write failed: DeadLetterVcon or DeadLetterStorage.
// +kubebuilder:validation:Enum=DeadLetterVcon;DeadLetterStorage
type StorageFailurePolicy string

const (
	// StorageFailureDeadLetterVcon retries the whole vCon, then
	// dead-letters it to DLQ:{ingress} before egress.
	StorageFailureDeadLetterVcon StorageFailurePolicy = "DeadLetterVcon"
	// StorageFailureDeadLetterStorage dead-letters the failed write alone
	// to DLQ:storage:{name} and lets the vCon go on to egress.
	StorageFailureDeadLetterStorage StorageFailurePolicy = "DeadLetterStorage"
)

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
	// ActivationQueueDepth is how many vCons must be queued before a first
	// worker starts for a chain at zero; 0 starts one for any vCon. It only
	// holds a chain at zero: once a worker runs, replicas follow
	// targetQueueDepth, and scale-down to zero follows scaleDownDelay as
	// ever. In-flight vCons and a minReplicas above 0 start workers
	// whatever it says.
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +optional
	ActivationQueueDepth int64 `json:"activationQueueDepth"`
	// ActivationDelay starts a first worker anyway once the oldest queued
	// vCon has waited this long, however few are queued, so that a trickle
	// below activationQueueDepth is not kept waiting for ever. Unset, only
	// activationQueueDepth activates.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$')",message="activationDelay must be a duration with a unit, such as 30s, 5m or 1h30m"
	// +optional
	ActivationDelay *metav1.Duration `json:"activationDelay,omitempty"`
	// Schedules give other replica bounds to windows of time, such as more
	// workers during business hours or fewer at night. While schedules are
	// active their minReplicas and maxReplicas replace the chain's (the
	// highest of each among those active); outside every schedule the
	// chain's apply.
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	Schedules []WorkerSchedule `json:"schedules,omitempty"`
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

	// WorkerPod places the worker pods and gives them an identity.
	WorkerPod `json:",inline"`
	// PodDisruptionBudget, when set, limits how many worker pods a
	// voluntary disruption (a node drain) may take at once. The operator
	// owns it: removing this field deletes it.
	// +optional
	PodDisruptionBudget *WorkerDisruptionBudget `json:"podDisruptionBudget,omitempty"`
}

// WorkerSchedule is a window of time with its own replica bounds. It opens
// when start fires and closes when end fires, both five-field cron
// expressions read in timeZone: {start: "0 9 * * 1-5", end: "0 17 * * 1-5",
// timeZone: Europe/Berlin} is business hours on Berlin's wall clock, DST
// included. Two crons rather than a cron and a duration, as in KEDA's cron
// scaler: a window across midnight or a weekend is written as it is said.
// +kubebuilder:validation:XValidation:rule="self.minReplicas <= self.maxReplicas",message="a schedule's maxReplicas must be at least its minReplicas"
type WorkerSchedule struct {
	// Start opens the window: minute hour day-of-month month day-of-week,
	// such as "0 9 * * 1-5". The window is open from the minute start
	// fires until the minute end fires; a start in the hour a DST change
	// skips does not fire that day.
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9A-Za-z*,/?-]+( +[0-9A-Za-z*,/?-]+){4}$')",message="start must be a cron expression of five fields (minute hour day-of-month month day-of-week), such as '0 9 * * 1-5', with no seconds, @descriptor or CRON_TZ"
	Start string `json:"start"`
	// End closes the window, in the same form as start, such as
	// "0 17 * * 1-5".
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9A-Za-z*,/?-]+( +[0-9A-Za-z*,/?-]+){4}$')",message="end must be a cron expression of five fields (minute hour day-of-month month day-of-week), such as '0 17 * * 1-5', with no seconds, @descriptor or CRON_TZ"
	End string `json:"end"`
	// TimeZone is the IANA time zone start and end are read in, such as
	// Europe/Berlin, America/New_York or UTC. An unknown zone makes the
	// Chain Ready=False with reason InvalidSchedule.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$')",message="timeZone must be an IANA time zone name such as Europe/Berlin or UTC"
	TimeZone string `json:"timeZone"`
	// MinReplicas kept while the window is open.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	MinReplicas int32 `json:"minReplicas"`
	// MaxReplicas allowed while the window is open.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	MaxReplicas int32 `json:"maxReplicas"`
}

// WorkerPod is the part of the worker pod template a Chain may set: where
// the pods run, under which service account, pulled with which Secrets,
// with which extra labels, annotations and settings. It has no field that
// could weaken the pod's hardening (privileged, host namespaces or paths,
// root, capabilities), and its rules refuse what could sneak in through
// the fields it has.
type WorkerPod struct {
	// NodeSelector must match a node's labels for a worker to run there.
	// Empty takes the operator's default (the chart's
	// workers.defaults.nodeSelector).
	// +kubebuilder:validation:MaxProperties=64
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// Tolerations let workers run on tainted nodes. Empty takes the
	// operator's default.
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	// +optional
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
	// Affinity of the worker pods to nodes and to other pods. Empty takes
	// the operator's default.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`
	// TopologySpreadConstraints spread the workers across zones or nodes.
	// Their labelSelector is the user's to write; the worker pods carry
	// vcon.dev/chain: <chain name>. Empty takes the operator's default.
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints,omitempty"`
	// PriorityClassName of the worker pods. Empty takes the operator's
	// default.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')",message="priorityClassName must be the name of a PriorityClass: lower-case letters, digits, '-' and '.'"
	// +optional
	PriorityClassName string `json:"priorityClassName,omitempty"`
	// ServiceAccountName runs the workers as this ServiceAccount of the
	// Chain's namespace, with its token mounted, for cloud identities
	// (EKS IRSA, GKE Workload Identity, Azure Workload Identity) that
	// storages and links authenticate with. Empty runs them as the
	// namespace's default account with no token mounted: the workers never
	// talk to the Kubernetes API.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')",message="serviceAccountName must be the name of a ServiceAccount: lower-case letters, digits, '-' and '.'"
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// ImagePullSecrets pull the worker image (and container steps'
	// images) from a private registry. Empty takes the operator's default.
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`
	// PodLabels are added to the worker pods' labels. The operator's own
	// (app.kubernetes.io/name, instance, component, managed-by and every
	// vcon.dev/ key) select the pods and are refused here.
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="self.all(k, !(k in ['app.kubernetes.io/name', 'app.kubernetes.io/instance', 'app.kubernetes.io/component', 'app.kubernetes.io/managed-by']) && !k.startsWith('vcon.dev/'))",messageExpression="'podLabels cannot set ' + self.filter(k, k in ['app.kubernetes.io/name', 'app.kubernetes.io/instance', 'app.kubernetes.io/component', 'app.kubernetes.io/managed-by'] || k.startsWith('vcon.dev/'))[0] + ': app.kubernetes.io/name, instance, component, managed-by and vcon.dev/ labels belong to the operator, which selects the pods of the Chain by them; use another key'"
	// +optional
	PodLabels map[string]string `json:"podLabels,omitempty"`
	// PodAnnotations are added to the worker pods' annotations. vcon.dev/
	// keys are the operator's (vcon.dev/config-hash rolls the workers), and
	// the legacy seccomp and AppArmor annotations would loosen the pod's
	// profiles: both are refused.
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.startsWith('vcon.dev/'))",messageExpression="'podAnnotations cannot set ' + self.filter(k, k.startsWith('vcon.dev/'))[0] + ': vcon.dev/ annotations belong to the operator (vcon.dev/config-hash rolls the workers); use another key'"
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.startsWith('seccomp.security.alpha.kubernetes.io/') && !k.startsWith('container.seccomp.security.alpha.kubernetes.io/') && !k.startsWith('container.apparmor.security.beta.kubernetes.io/'))",messageExpression="'podAnnotations cannot set ' + self.filter(k, k.startsWith('seccomp.security.alpha.kubernetes.io/') || k.startsWith('container.seccomp.security.alpha.kubernetes.io/') || k.startsWith('container.apparmor.security.beta.kubernetes.io/'))[0] + ': the worker pods run with the default seccomp and AppArmor profiles of the runtime, which a Chain cannot loosen'"
	// +optional
	PodAnnotations map[string]string `json:"podAnnotations,omitempty"`
	// Env adds settings to the worker container's environment, e.g.
	// AWS_REGION or OTEL_EXPORTER_OTLP_ENDPOINT. The variables the operator
	// sets cannot be overridden: REDIS_URL, VCON_QUEUED_RETENTION and the
	// VCON_LINK<n>_, VCON_STORAGE<n>_ and VCON_STEP_ variables that carry
	// steps' Secrets are refused.
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=name
	// +optional
	Env []WorkerEnvVar `json:"env,omitempty"`
	// EnvFrom adds every key of ConfigMaps or Secrets to the worker
	// container's environment. A key that is also a variable the operator
	// sets does not override it (Kubernetes gives env precedence over
	// envFrom, and the operator's envFrom come after these); a prefix in
	// the operator's names is refused.
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	EnvFrom []WorkerEnvFromSource `json:"envFrom,omitempty"`
}

// WorkerEnvVar is one variable of the worker's environment: a value, or a
// reference to a Secret or ConfigMap key, a field of the pod or a
// resource of the container.
// +kubebuilder:validation:XValidation:rule="has(self.value) != has(self.valueFrom)",message="an env variable has a value or a valueFrom, not both and not neither"
type WorkerEnvVar struct {
	// Name of the variable.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z_][A-Za-z0-9_.-]*$')",message="an env name is letters, digits, _, '.' and '-', not starting with a digit, e.g. AWS_REGION"
	// +kubebuilder:validation:XValidation:rule="!(self in ['REDIS_URL', 'VCON_QUEUED_RETENTION']) && !self.matches('^VCON_(LINK|STORAGE)[0-9]') && !self.startsWith('VCON_STEP_')",messageExpression="'env ' + self + ' is set by the operator (REDIS_URL, VCON_QUEUED_RETENTION, and VCON_LINK<n>_, VCON_STORAGE<n>_ and VCON_STEP_ variables carrying the Secrets of steps): set spec.redis or the env of the step instead, or use another name'"
	Name string `json:"name"`
	// Value of the variable.
	// +kubebuilder:validation:MaxLength=32768
	// +optional
	Value *string `json:"value,omitempty"`
	// ValueFrom takes the value from elsewhere.
	// +optional
	ValueFrom *WorkerEnvVarSource `json:"valueFrom,omitempty"`
}

// WorkerEnvVarSource is where a variable's value comes from: exactly one
// of a Secret key, a ConfigMap key, a pod field or a container resource.
// +kubebuilder:validation:XValidation:rule="[has(self.secretKeyRef), has(self.configMapKeyRef), has(self.fieldRef), has(self.resourceFieldRef)].filter(x, x).size() == 1",message="valueFrom takes exactly one of secretKeyRef, configMapKeyRef, fieldRef or resourceFieldRef"
type WorkerEnvVarSource struct {
	// +optional
	SecretKeyRef *corev1.SecretKeySelector `json:"secretKeyRef,omitempty"`
	// +optional
	ConfigMapKeyRef *corev1.ConfigMapKeySelector `json:"configMapKeyRef,omitempty"`
	// FieldRef selects a field of the pod, e.g. metadata.name or
	// spec.nodeName.
	// +optional
	FieldRef *corev1.ObjectFieldSelector `json:"fieldRef,omitempty"`
	// ResourceFieldRef selects a limit or request of the worker container.
	// +optional
	ResourceFieldRef *corev1.ResourceFieldSelector `json:"resourceFieldRef,omitempty"`
}

// WorkerEnvFromSource adds the keys of one ConfigMap or Secret to the
// worker's environment.
// +kubebuilder:validation:XValidation:rule="has(self.configMapRef) != has(self.secretRef)",message="envFrom takes exactly one of configMapRef or secretRef"
type WorkerEnvFromSource struct {
	// Prefix is put before every key.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('REDIS_URL') && !self.matches('^VCON_(LINK|STORAGE)[0-9]') && !self.startsWith('VCON_STEP_')",message="envFrom prefix is in the operator's names (REDIS_URL, VCON_LINK<n>_, VCON_STORAGE<n>_, VCON_STEP_): use another prefix"
	// +optional
	Prefix string `json:"prefix,omitempty"`
	// +optional
	ConfigMapRef *corev1.ConfigMapEnvSource `json:"configMapRef,omitempty"`
	// +optional
	SecretRef *corev1.SecretEnvSource `json:"secretRef,omitempty"`
}

// WorkerDisruptionBudget is the worker PodDisruptionBudget: at most
// maxUnavailable or at least minAvailable worker pods (a number, or a
// percentage of the pods the Chain runs at the time).
// +kubebuilder:validation:XValidation:rule="has(self.minAvailable) != has(self.maxUnavailable)",message="podDisruptionBudget takes exactly one of minAvailable or maxUnavailable"
type WorkerDisruptionBudget struct {
	// MinAvailable is how many worker pods (or what percentage, "50%") must
	// stay up during a voluntary disruption such as a node drain.
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 0 : self.matches('^[0-9]+%$')",message="minAvailable is a number of pods or a percentage, e.g. 1 or 50%"
	// +optional
	MinAvailable *intstr.IntOrString `json:"minAvailable,omitempty"`
	// MaxUnavailable is how many worker pods (or what percentage, "25%")
	// a voluntary disruption may take down at once.
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 0 : self.matches('^[0-9]+%$')",message="maxUnavailable is a number of pods or a percentage, e.g. 1 or 25%"
	// +optional
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`
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
	// StorageDLQ is the total length of the DLQ:storage:{name} lists of
	// the chain's storages: failed writes waiting for a replay (see
	// storageFailure). A storage's list is shared by every chain on the
	// Redis that writes to a storage of that name.
	// +optional
	StorageDLQ int64 `json:"storageDLQ,omitempty"`
	// Retry counts the vCons waiting for a delayed retry (they hold no
	// worker).
	// +optional
	Retry int64 `json:"retry"`
	// NextRetryAt is when the first vCon waiting for a retry is due.
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
