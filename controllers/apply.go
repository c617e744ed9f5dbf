package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/autoscale"
	"github.com/vcon-operator/vcon-operator/internal/workload"
)

// Every write the operator makes is a server-side apply with one field
// manager (workload.FieldOwner), of the fields it owns: objects by apply,
// statuses by applyStatus.

// apply server-side applies an object we own: fields the API server
// defaults are not ours, so an unchanged object is a no-op instead of a
// write.
func apply(ctx context.Context, c client.Client, obj client.Object) error {
	u, err := toUnstructured(obj)
	if err != nil {
		return err
	}
	return c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(workload.FieldOwner), client.ForceOwnership)
}

// applyChild applies one of the Chain's cached children (ConfigMap,
// Deployment, PodDisruptionBudget) unless the cluster holds exactly what
// the last apply of it wrote: the same configuration, and the cached copy
// still at the resourceVersion that apply answered (current, "" when
// there is none). An unchanged apply is a no-op for the API server but
// still a request, and a reconcile made three of them; skipping them
// leaves a wave of new Chains fewer requests to wait on
// (docs/benchmarks.md). Anything else, a hand edit, a deletion, an
// operator restart, shows as another resourceVersion or none, and the
// object is applied as before: the watch on owned objects brings the
// Chain back as soon as its cached copy changes.
func (r *ChainReconciler) applyChild(ctx context.Context, chain *vconv1.Chain, obj client.Object, current string) error {
	u, err := toUnstructured(obj)
	if err != nil {
		return err
	}
	b, err := json.Marshal(u.Object)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	kind := u.GetKind()
	written := r.writtenFor(chain)
	if last, ok := written.byKind[kind]; ok && last.hash == sum && current != "" && current == last.resourceVersion {
		return nil
	}
	delete(written.byKind, kind)
	// The API server's answer lands in u.
	if err := r.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(workload.FieldOwner), client.ForceOwnership); err != nil {
		return err
	}
	written.byKind[kind] = lastApply{hash: sum, resourceVersion: u.GetResourceVersion()}
	return nil
}

// lastApply is what the operator last wrote to one child of a Chain.
type lastApply struct {
	hash            [sha256.Size]byte // of the applied configuration
	resourceVersion string            // the API server's answer
}

// childWrites are a Chain's last applies, by kind. Reconciles of one
// Chain never run at once (the workqueue hands a key to one worker at a
// time), so they need no lock of their own.
type childWrites struct {
	uid    types.UID
	byKind map[string]lastApply
}

// writtenFor is the Chain's last applies; a Chain deleted and created
// again under its name (another UID) starts with none.
func (r *ChainReconciler) writtenFor(chain *vconv1.Chain) *childWrites {
	key := client.ObjectKeyFromObject(chain)
	if v, ok := r.written.Load(key); ok && v.(*childWrites).uid == chain.UID {
		return v.(*childWrites)
	}
	w := &childWrites{uid: chain.UID, byKind: map[string]lastApply{}}
	r.written.Store(key, w)
	return w
}

// versionOf is a cached object's resourceVersion, "" when there is none.
func versionOf[T any, P interface {
	*T
	client.Object
}](o P) string {
	if o == nil {
		return ""
	}
	return o.GetResourceVersion()
}

// toUnstructured turns a built object into what is applied, without
// status and creationTimestamp (typed objects always carry them).
func toUnstructured(obj client.Object) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	if tmpl, ok, _ := unstructured.NestedMap(m, "spec", "template", "metadata"); ok {
		delete(tmpl, "creationTimestamp")
		_ = unstructured.SetNestedMap(m, tmpl, "spec", "template", "metadata")
	}
	return &unstructured.Unstructured{Object: m}, nil
}

// applyStatus is the one status writer, for Chains, Links and Storages:
// it writes status, the whole of it, to obj's status subresource by
// server-side apply. Every field is sent, zeros included, and one we stop
// sending (queue.stale, queue.observedAt) is removed. A JSON merge patch
// against the cached object left out the zeros the server had never
// stored (a Chain's first status has no queue), so the next patch sent
// queue.observedAt alone and the API server refused the incomplete queue:
// the figures never reached the status. An object deleted meanwhile has
// no status to write.
func applyStatus(ctx context.Context, c client.Client, obj client.Object, status any) error {
	gvk, err := apiutil.GVKForObject(obj, c.Scheme())
	if err != nil {
		return err
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(status)
	if err != nil {
		return fmt.Errorf("status of %s %s: %w", gvk.Kind, obj.GetName(), err)
	}
	u := &unstructured.Unstructured{Object: map[string]any{"status": m}}
	u.SetGroupVersionKind(gvk)
	u.SetNamespace(obj.GetNamespace())
	u.SetName(obj.GetName())
	err = c.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(workload.FieldOwner), client.ForceOwnership)
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// applyPlan writes what the plan says to the Chain's objects, and keeps
// the autoscaler's state once its decision is applied (a failed write
// decides again from the previous state).
func (r *ChainReconciler) applyPlan(ctx context.Context, chain *vconv1.Chain, res resolved, p chainPlan) error {
	current := res.deployment
	switch p.mode {
	case applyNothing:
		return nil
	case applyAll:
		if err := r.applyChild(ctx, chain, p.configMap, versionOf(res.configMap)); err != nil {
			return fmt.Errorf("apply configmap: %w", err)
		}
		// Before the Deployment: its pods reference the Secret.
		if err := r.applyRedisSecret(ctx, chain, p); err != nil {
			return fmt.Errorf("apply redis secret: %w", err)
		}
		if err := r.applyChild(ctx, chain, p.deployment, versionOf(res.deployment)); err != nil {
			return fmt.Errorf("apply deployment: %w", err)
		}
		if err := r.applyPDB(ctx, chain, res, p); err != nil {
			return fmt.Errorf("apply poddisruptionbudget: %w", err)
		}
		r.scaling.Store(client.ObjectKeyFromObject(chain), p.scaling)
	case applyReplicas:
		if current != nil && replicasOf(current) != p.replicas {
			d := current.DeepCopy()
			patch := client.MergeFrom(current)
			d.Spec.Replicas = &p.replicas
			if err := r.Patch(ctx, d, patch); err != nil {
				return fmt.Errorf("scale deployment: %w", err)
			}
		}
	}
	r.recordScaling(chain, replicasOf(current), p.replicas, p.decision)
	return nil
}

// applyRedisSecret gives the workers their Redis URL through a Secret:
// the projected one when the Chain names no Secret of its own, else it
// removes a projected copy the plan found left over.
func (r *ChainReconciler) applyRedisSecret(ctx context.Context, chain *vconv1.Chain, p chainPlan) error {
	if p.redisSecret != nil {
		return apply(ctx, r.Client, p.redisSecret)
	}
	if !p.dropProjectedRedis {
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

// applyPDB gives the workers the PodDisruptionBudget the Chain asks for,
// or deletes the one it no longer asks for (resolve found it and checked
// it is the Chain's).
func (r *ChainReconciler) applyPDB(ctx context.Context, chain *vconv1.Chain, res resolved, p chainPlan) error {
	if p.pdb != nil {
		return r.applyChild(ctx, chain, p.pdb, versionOf(res.pdb))
	}
	if p.dropPDB == nil {
		return nil
	}
	err := r.Delete(ctx, p.dropPDB, client.Preconditions{UID: &p.dropPDB.UID})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// recordScaling emits events for replica changes worth a human's eye.
func (r *ChainReconciler) recordScaling(chain *vconv1.Chain, from, to int32, d autoscale.Decision) {
	if from != to || d.Reason == autoscale.ReasonDLQStorm {
		reason := d.Reason
		if from != to && to == 0 && reason == "" {
			reason = "ScaledToZero"
		}
		scalingDecisions.WithLabelValues(chain.Name, chain.Namespace, reason).Inc()
	}
	switch {
	case from == to:
		if d.Reason == autoscale.ReasonDLQStorm {
			r.Recorder.Event(chain, corev1.EventTypeWarning, "DLQStorm", d.Message)
		}
		return
	case from == 0:
		r.Recorder.Eventf(chain, corev1.EventTypeNormal, "ScaledFromZero", "scaled workers from 0 to %d: %s", to, d.Message)
	case to > from:
		r.Recorder.Eventf(chain, corev1.EventTypeNormal, "ScaledUp", "scaled workers from %d to %d: %s", from, to, d.Message)
	default:
		r.Recorder.Eventf(chain, corev1.EventTypeNormal, "ScaledDown", "scaled workers from %d to %d: %s", from, to, d.Message)
	}
}
