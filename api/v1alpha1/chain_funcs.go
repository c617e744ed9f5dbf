package v1alpha1

// AnnotationPaused "true" on a Chain freezes it: the operator writes
// nothing to its Deployment, ConfigMap, Secret or PodDisruptionBudget
// (replicas stay where they are, spec edits wait) and only its status
// moves, with Ready reason Paused. Removing it, or any other value,
// resumes the Chain at once.
const AnnotationPaused = "vcon.dev/paused"

// IsPaused is whether the Chain carries vcon.dev/paused: "true".
func (c *Chain) IsPaused() bool { return c.Annotations[AnnotationPaused] == "true" }

// IsEnabled is spec.enabled, which defaults to true: a disabled Chain runs
// no workers and consumes nothing.
func (c *Chain) IsEnabled() bool { return c.Spec.Enabled == nil || *c.Spec.Enabled }

// NamesRedis is whether the Chain names a Redis of its own (spec.redis.url
// or urlSecretRef) rather than using the operator's default.
func (c *Chain) NamesRedis() bool {
	return c.Spec.Redis.URL != "" || c.Spec.Redis.URLSecretRef != nil
}

// CreatedBefore orders Chains by age, then by namespace and name: of two
// Chains consuming the same ingress list on one Redis, the earlier keeps
// it.
func (c *Chain) CreatedBefore(o *Chain) bool {
	if !c.CreationTimestamp.Equal(&o.CreationTimestamp) {
		return c.CreationTimestamp.Before(&o.CreationTimestamp)
	}
	if c.Namespace != o.Namespace {
		return c.Namespace < o.Namespace
	}
	return c.Name < o.Name
}

// StatusBehind is true when the status describes an older generation than
// the spec: the operator has not caught up (or is not running). A status
// never written is not behind, only absent.
func (c *Chain) StatusBehind() bool {
	return c.Status.ObservedGeneration != 0 && c.Status.ObservedGeneration < c.Generation
}

// DeadLettersStorage is whether a failed storage write dead-letters only
// that write (spec.storageFailure DeadLetterStorage) rather than the
// whole vCon, the default for a Chain that does not say.
func (c *Chain) DeadLettersStorage() bool {
	return c.Spec.StorageFailure == StorageFailureDeadLetterStorage
}
