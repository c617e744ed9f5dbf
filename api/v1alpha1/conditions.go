package v1alpha1

// Conditions are API: scripts, alerts, `kubectl wait --for=condition=...`
// and the kubectl-vcon plugin read these types and reasons, so each is
// spelled once, here, and a change to one is an API change.

// ConditionType is the type of a condition of a Chain, a Link or a
// Storage (metav1.Condition.Type).
type ConditionType string

// Condition types of a Chain.
const (
	// ConditionReady sums the Chain up: True when its workers run as
	// specified, else False with the first thing in the way (a reason
	// below).
	ConditionReady ConditionType = "Ready"
	// ConditionRedisReachable is whether the operator measured the Chain's
	// queues at its last poll; Unknown until the first poll.
	ConditionRedisReachable ConditionType = "RedisReachable"
	// ConditionDLQEmpty is False while the Chain's dead-letter lists hold
	// vCons; Unknown until they have been measured.
	ConditionDLQEmpty ConditionType = "DLQEmpty"
	// ConditionScalingLimited is True while the queues call for more
	// workers than workers.maxReplicas, or than a binding Link limit can
	// use.
	ConditionScalingLimited ConditionType = "ScalingLimited"
)

// Condition types of a Link or a Storage. Ready (ConditionReady) says
// whether the worker runs the step.
const (
	// ConditionCredentialsInSecrets is False when options hold a credential
	// literally: options are rendered into a ConfigMap, so credentials
	// belong in a Secret, referenced as ${VAR} with env. The step still runs
	// (a migration should not stop), but the condition says what to fix.
	ConditionCredentialsInSecrets ConditionType = "CredentialsInSecrets"
	// ConditionEnvReferencesOwn is False when an option references a ${VAR}
	// the step's own env and envFrom do not provide: every Chain naming the
	// step is then refused (ReasonEnvReferenceNotAllowed). Said on the step
	// too, so that its author sees it without a Chain.
	ConditionEnvReferencesOwn ConditionType = "EnvReferencesOwn"
)

// Reasons of a Chain's Ready condition.
const (
	// ReasonRunning: Ready=True, the workers run as specified.
	ReasonRunning = "Running"
	// ReasonPaused: the Chain carries vcon.dev/paused: "true"
	// (AnnotationPaused); the operator changes none of its objects, and
	// its workers run on as they were.
	ReasonPaused = "Paused"
	// ReasonDisabled: the Chain is disabled (enabled: false); its workers
	// are scaled to zero.
	ReasonDisabled = "Disabled"
	// ReasonWorkersFailing: the Chain's worker pods crash or cannot start,
	// or its Deployment cannot make progress. The message quotes what the
	// worker wrote to its termination log (a refused config says which key
	// is wrong) or what the Deployment and the kubelet say.
	ReasonWorkersFailing = "WorkersFailing"
	// ReasonInvalidChain: the Chain cannot be rendered into a worker
	// config; the message says why.
	ReasonInvalidChain = "InvalidChain"
	// ReasonIngressConflict: an earlier Chain consumes one of this Chain's
	// ingress lists on the same Redis; this Chain runs no workers.
	ReasonIngressConflict = "IngressConflict"
	// ReasonReferenceNotFound: a Link or Storage the Chain names does not
	// exist in its namespace.
	ReasonReferenceNotFound = "ReferenceNotFound"
	// ReasonReferenceNotReady: a Link or Storage the Chain names is not
	// Ready for its current generation.
	ReasonReferenceNotReady = "ReferenceNotReady"
	// ReasonNoRedis: the Chain names no Redis and the operator has no
	// default.
	ReasonNoRedis = "NoRedis"
	// ReasonRedisSecretNotFound: the Secret (or its key) holding the
	// Chain's Redis URL does not exist.
	ReasonRedisSecretNotFound = "RedisSecretNotFound"
	// ReasonRedisSecretConflict: a Secret with the name the operator
	// projects the Chain's Redis URL into exists and is not the
	// operator's.
	ReasonRedisSecretConflict = "RedisSecretConflict"
	// ReasonImageNotAllowed: workers.image is outside
	// --allowed-worker-image-prefixes.
	ReasonImageNotAllowed = "ImageNotAllowed"
	// ReasonRedisNotAllowed: the Chain's Redis URL names a host outside
	// --allowed-redis-hosts.
	ReasonRedisNotAllowed = "RedisNotAllowed"
	// ReasonEnvReferenceNotAllowed: a Link's or Storage's option names a
	// ${VAR} its own Secret references do not provide. Also the reason of
	// the step's EnvReferencesOwn=False.
	ReasonEnvReferenceNotAllowed = "EnvReferenceNotAllowed"
	// ReasonInvalidSchedule: a workers.schedules entry has a cron
	// expression or a time zone the operator cannot read; the workers keep
	// the replicas they have until it is fixed.
	ReasonInvalidSchedule = "InvalidSchedule"
	// ReasonRedisUnreachable: the queues could not be measured at the last
	// poll. Also the reason of RedisReachable=False.
	ReasonRedisUnreachable = "RedisUnreachable"
)

// Reasons of a Chain's RedisReachable, DLQEmpty and ScalingLimited
// conditions.
const (
	// ReasonNotMeasured: RedisReachable and DLQEmpty are Unknown until the
	// queues have been measured.
	ReasonNotMeasured = "NotMeasured"
	// ReasonMeasured: RedisReachable=True.
	ReasonMeasured = "Measured"
	// ReasonEmpty: DLQEmpty=True.
	ReasonEmpty = "Empty"
	// ReasonDeadLetters: DLQEmpty=False; the message gives the count.
	ReasonDeadLetters = "DeadLetters"
	// ReasonAtMaxReplicas: ScalingLimited=True, at workers.maxReplicas.
	ReasonAtMaxReplicas = "AtMaxReplicas"
	// ReasonLinkLimit: ScalingLimited=True, a Link's limits bind (its
	// Chain's vCons wait for its permits): the message names the Link,
	// the limit and its rate, and the workers it can use.
	ReasonLinkLimit = "LinkLimit"
	// ReasonWithinLimits: ScalingLimited=False.
	ReasonWithinLimits = "WithinLimits"
)

// Reasons of the conditions of a Link or a Storage.
const (
	// ReasonValid: Ready=True, the worker runs the step.
	ReasonValid = "Valid"
	// ReasonUnknownModule: Ready=False, the step's module is not built into
	// the worker.
	ReasonUnknownModule = "UnknownModule"
	// ReasonLiteralCredential: CredentialsInSecrets=False.
	ReasonLiteralCredential = "LiteralCredential"
	// ReasonNoLiteralCredentials: CredentialsInSecrets=True.
	ReasonNoLiteralCredentials = "NoLiteralCredentials"
	// ReasonOwnVariablesOnly: EnvReferencesOwn=True. (False is
	// ReasonEnvReferenceNotAllowed.)
	ReasonOwnVariablesOnly = "OwnVariablesOnly"
)
