package controllers

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/vcon-operator/vcon-operator/internal/workload"
)

// Every write the operator makes is a server-side apply with one field
// manager (workload.FieldOwner), of the fields it owns: objects by apply,
// statuses by applyStatus.

// apply server-side applies an object we own: fields the API server
// defaults are not ours, so an unchanged object is a no-op instead of a
// write.
func apply(ctx context.Context, c client.Client, obj client.Object) error {
	u, err := toApplyConfiguration(obj)
	if err != nil {
		return err
	}
	return c.Apply(ctx, u, client.FieldOwner(workload.FieldOwner), client.ForceOwnership)
}

// toApplyConfiguration turns a built object into an apply configuration,
// without status and creationTimestamp (typed objects always carry them).
func toApplyConfiguration(obj client.Object) (runtime.ApplyConfiguration, error) {
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
	return client.ApplyConfigurationFromUnstructured(&unstructured.Unstructured{Object: m}), nil
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
