package workload

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
)

// RedisSecretKey is the key of the projected Redis Secret holding the URL.
const RedisSecretKey = "url"

// RedisSecretName names the Secret the operator projects a Chain's Redis URL
// into when the Chain does not bring its own (urlSecretRef).
func RedisSecretName(chain string) string { return chain + "-redis" }

// ProjectedRedisRef is the reference the worker's REDIS_URL takes when the
// URL is projected by the operator.
func ProjectedRedisRef(chain string) *corev1.SecretKeySelector {
	return &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: RedisSecretName(chain)}, Key: RedisSecretKey}
}

// RedisSecret is the Secret carrying the Redis URL of a Chain that names
// none of its own (the operator's --redis-url) or names it literally. The
// URL is the operator's credential: written as a literal env value it would
// be readable by anyone allowed to read Deployments (or pods) in the
// namespace, while a Secret is guarded by the RBAC on Secrets. One per
// Chain, owned by it, so it goes with the Chain and a Chain's namespace
// never sees another namespace's copy.
func RedisSecret(ch *vconv1.Chain, url string) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name: RedisSecretName(ch.Name), Namespace: ch.Namespace,
			Labels: Labels(ch.Name), OwnerReferences: owner(ch),
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{RedisSecretKey: []byte(url)},
	}
}
