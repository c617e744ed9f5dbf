package controllers

import (
	"context"
	"fmt"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/modules"
	"github.com/vcon-operator/vcon-operator/internal/workload"
)

// LinkReconciler says whether a Link can run: its module is one the worker
// has. (The CRD schema already checked its shape.)
type LinkReconciler struct{ client.Client }

// Reconcile implements reconcile.Reconciler.
func (r *LinkReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var l vconv1.Link
	if err := r.Get(ctx, req.NamespacedName, &l); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	ok, reason, msg := true, vconv1.ReasonValid, "the worker runs this step"
	if l.Spec.Module != "" && !modules.IsLink(l.Spec.Module) {
		ok, reason, msg = false, vconv1.ReasonUnknownModule, fmt.Sprintf("module %q is not built into the worker (known: %s)", l.Spec.Module, strings.Join(modules.Links(), ", "))
	}
	return ctrl.Result{}, setStepStatus(ctx, r.Client, &l, &l.Status, ok, reason, msg, l.Spec.Options, workload.LinkReferences(&l))
}

// SetupWithManager registers the controller.
func (r *LinkReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&vconv1.Link{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Complete(r)
}

// StorageReconciler says whether a Storage's module is one the worker has.
type StorageReconciler struct{ client.Client }

// Reconcile implements reconcile.Reconciler.
func (r *StorageReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var s vconv1.Storage
	if err := r.Get(ctx, req.NamespacedName, &s); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	ok, reason, msg := true, vconv1.ReasonValid, "the worker has this storage"
	if !modules.IsStorage(s.Spec.Module) {
		ok, reason, msg = false, vconv1.ReasonUnknownModule, fmt.Sprintf("module %q is not built into the worker (known: %s)", s.Spec.Module, strings.Join(modules.Storages(), ", "))
	}
	return ctrl.Result{}, setStepStatus(ctx, r.Client, &s, &s.Status, ok, reason, msg, s.Spec.Options, workload.StorageReferences(&s))
}

// SetupWithManager registers the controller.
func (r *StorageReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&vconv1.Storage{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Complete(r)
}

func setStepStatus(ctx context.Context, c client.Client, obj client.Object, st *vconv1.StepStatus, ok bool, reason, msg string, options *apiextensionsv1.JSON, forbidden *workload.ForbiddenReference) error {
	before := st.DeepCopy()
	patch := client.MergeFrom(obj.DeepCopyObject().(client.Object))
	st.ObservedGeneration = obj.GetGeneration()
	setCondition(&st.Conditions, obj.GetGeneration(), vconv1.ConditionReady, ok, reason, msg)
	if literal, err := workload.LiteralCredentials(options); err == nil && len(literal) > 0 {
		setCondition(&st.Conditions, obj.GetGeneration(), vconv1.ConditionCredentialsInSecrets, false, vconv1.ReasonLiteralCredential,
			fmt.Sprintf("options %s hold credentials in plain text, which end up in a ConfigMap: move them to a Secret and write ${VAR} with env", strings.Join(literal, ", ")))
	} else {
		setCondition(&st.Conditions, obj.GetGeneration(), vconv1.ConditionCredentialsInSecrets, true, vconv1.ReasonNoLiteralCredentials, "no option holds a credential in plain text")
	}
	if forbidden != nil {
		setCondition(&st.Conditions, obj.GetGeneration(), vconv1.ConditionEnvReferencesOwn, false, vconv1.ReasonEnvReferenceNotAllowed, forbidden.Error())
	} else {
		setCondition(&st.Conditions, obj.GetGeneration(), vconv1.ConditionEnvReferencesOwn, true, vconv1.ReasonOwnVariablesOnly, "options reference only the step's own env variables")
	}
	if equalStepStatus(before, st) {
		return nil
	}
	err := c.Status().Patch(ctx, obj, patch)
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func equalStepStatus(a, b *vconv1.StepStatus) bool {
	if a.ObservedGeneration != b.ObservedGeneration || len(a.Conditions) != len(b.Conditions) {
		return false
	}
	for i := range a.Conditions {
		x, y := a.Conditions[i], b.Conditions[i]
		x.LastTransitionTime, y.LastTransitionTime = metav1.Time{}, metav1.Time{}
		if x != y {
			return false
		}
	}
	return true
}
