package controllers

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/workload"
)

// checkProjectedRedisSecret makes sure the name the operator projects the
// Redis URL into (workload.RedisSecretName) is free or already ours: server-
// side apply with ForceOwnership would otherwise take over a user's Secret,
// overwrite its url key and hand it to the garbage collector with the Chain.
//
// The projected Secret is read past the cache, once per reconcile, and not
// watched: watching would need list and watch on every Secret of the
// cluster. The cost is that a projected Secret deleted by hand comes back
// at the Chain's next reconcile (within a queue poll when its queues move,
// else at its next change), not at once.
func (r *ChainReconciler) checkProjectedRedisSecret(ctx context.Context, chain *vconv1.Chain) (*notReady, error) {
	name := workload.RedisSecretName(chain.Name)
	var s corev1.Secret
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: chain.Namespace, Name: name}, &s)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read projected redis secret: %w", err)
	case !metav1.IsControlledBy(&s, chain):
		return &notReady{vconv1.ReasonRedisSecretConflict, fmt.Sprintf(
			"Secret %q exists and is not owned by this Chain; the operator projects the Chain's Redis URL into a Secret of that name: rename or delete that Secret, or set redis.urlSecretRef", name)}, nil
	}
	return nil, nil
}

// applyRedis gives the workers their Redis URL through a Secret: the
// projected one when the Chain names no Secret of its own. A Chain that
// switched to its own Secret has the projected copy removed, so the
// operator's URL does not linger in the namespace.
func (r *ChainReconciler) applyRedis(ctx context.Context, chain *vconv1.Chain, in workload.Inputs, current *appsv1.Deployment) error {
	if in.RedisSecret == nil {
		return apply(ctx, r.Client, workload.RedisSecret(chain, in.RedisURL))
	}
	if current == nil || !referencesProjectedRedis(current, chain.Name) {
		return nil // never projected, or already cleaned up: no read needed
	}
	var s corev1.Secret
	key := types.NamespacedName{Namespace: chain.Namespace, Name: workload.RedisSecretName(chain.Name)}
	if err := r.APIReader.Get(ctx, key, &s); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !metav1.IsControlledBy(&s, chain) {
		return nil
	}
	err := r.Delete(ctx, &s, client.Preconditions{UID: &s.UID})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

func referencesProjectedRedis(d *appsv1.Deployment, chain string) bool {
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, e := range c.Env {
			if e.Name == "REDIS_URL" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == workload.RedisSecretName(chain) {
				return true
			}
		}
	}
	return false
}
