package controllers

import (
	"context"
	"fmt"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/modules"
	"github.com/vcon-operator/vcon-operator/internal/workload"
)

// StepReconciler says whether each Link and Storage can run: its module is
// one the worker has, and its options keep credentials in Secrets and
// reference only its own env. (The CRD schema already checked its shape.)
// The two kinds differ only in what their module may be, so one
// reconciler serves both, as one controller per kind.
type StepReconciler struct{ client.Client }

// SetupWithManager registers a controller for Links and one for Storages.
func (r *StepReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := setupStep(mgr, &stepReconciler[*vconv1.Link]{Client: r.Client, kind: linkKind}); err != nil {
		return fmt.Errorf("link controller: %w", err)
	}
	if err := setupStep(mgr, &stepReconciler[*vconv1.Storage]{Client: r.Client, kind: storageKind}); err != nil {
		return fmt.Errorf("storage controller: %w", err)
	}
	return nil
}

func setupStep[T client.Object](mgr ctrl.Manager, r *stepReconciler[T]) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(r.kind.new(), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Complete(r)
}

// stepKind is what the step reconciler needs to know of a kind.
type stepKind[T client.Object] struct {
	new    func() T
	status func(T) *vconv1.StepStatus
	// module says why the step's module is not one the worker has, "" when
	// it is; valid is the Ready message otherwise.
	module     func(T) string
	valid      string
	options    func(T) *apiextensionsv1.JSON
	references func(T) *workload.ForbiddenReference
}

var linkKind = stepKind[*vconv1.Link]{
	new:    func() *vconv1.Link { return &vconv1.Link{} },
	status: func(l *vconv1.Link) *vconv1.StepStatus { return &l.Status },
	module: func(l *vconv1.Link) string {
		// A Link without a module is an HTTP or container step.
		if l.Spec.Module == "" || modules.IsLink(l.Spec.Module) {
			return ""
		}
		return unknownModule(l.Spec.Module, modules.Links())
	},
	valid:      "the worker runs this step",
	options:    func(l *vconv1.Link) *apiextensionsv1.JSON { return l.Spec.Options },
	references: workload.LinkReferences,
}

var storageKind = stepKind[*vconv1.Storage]{
	new:    func() *vconv1.Storage { return &vconv1.Storage{} },
	status: func(s *vconv1.Storage) *vconv1.StepStatus { return &s.Status },
	module: func(s *vconv1.Storage) string {
		if modules.IsStorage(s.Spec.Module) {
			return ""
		}
		return unknownModule(s.Spec.Module, modules.Storages())
	},
	valid:      "the worker has this storage",
	options:    func(s *vconv1.Storage) *apiextensionsv1.JSON { return s.Spec.Options },
	references: workload.StorageReferences,
}

func unknownModule(module string, known []string) string {
	return fmt.Sprintf("module %q is not built into the worker (known: %s)", module, strings.Join(known, ", "))
}

type stepReconciler[T client.Object] struct {
	client.Client
	kind stepKind[T]
}

// Reconcile implements reconcile.Reconciler: fetch, compute the
// conditions, write them when they changed.
func (r *stepReconciler[T]) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	obj := r.kind.new()
	if err := r.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	current := r.kind.status(obj)
	next := current.DeepCopy()
	next.ObservedGeneration = obj.GetGeneration()
	setConditions(&next.Conditions, stepConditions(obj.GetGeneration(), r.kind.module(obj), r.kind.valid, r.kind.options(obj), r.kind.references(obj)))
	if apiequality.Semantic.DeepEqual(current, next) {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, applyStatus(ctx, r.Client, obj, next)
}

// stepConditions are a Link's or Storage's conditions for its generation
// (pure): Ready, from unknownModule ("" when the worker has the module;
// valid is the message then), and what its options hold and reference.
func stepConditions(generation int64, unknownModule, valid string, options *apiextensionsv1.JSON, forbidden *workload.ForbiddenReference) []metav1.Condition {
	ready := condition(generation, vconv1.ConditionReady, metav1.ConditionTrue, vconv1.ReasonValid, valid)
	if unknownModule != "" {
		ready = condition(generation, vconv1.ConditionReady, metav1.ConditionFalse, vconv1.ReasonUnknownModule, unknownModule)
	}
	creds := condition(generation, vconv1.ConditionCredentialsInSecrets, metav1.ConditionTrue, vconv1.ReasonNoLiteralCredentials, "no option holds a credential in plain text")
	if literal, err := workload.LiteralCredentials(options); err == nil && len(literal) > 0 {
		creds = condition(generation, vconv1.ConditionCredentialsInSecrets, metav1.ConditionFalse, vconv1.ReasonLiteralCredential,
			fmt.Sprintf("options %s hold credentials in plain text, which end up in a ConfigMap: move them to a Secret and write ${VAR} with env", strings.Join(literal, ", ")))
	}
	own := condition(generation, vconv1.ConditionEnvReferencesOwn, metav1.ConditionTrue, vconv1.ReasonOwnVariablesOnly, "options reference only the step's own env variables")
	if forbidden != nil {
		own = condition(generation, vconv1.ConditionEnvReferencesOwn, metav1.ConditionFalse, vconv1.ReasonEnvReferenceNotAllowed, forbidden.Error())
	}
	return []metav1.Condition{ready, creds, own}
}
