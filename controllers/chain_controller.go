// Package controllers holds the reconcilers. A Chain's reconcile reads as
// its plan, one file per step: resolve what it references and owns
// (chain_resolve.go), plan what to write (chain_plan.go, no I/O), apply
// the plan (apply.go), write the status (chain_status.go). Decisions live
// elsewhere: the autoscaling policy in internal/autoscale, the queue
// measurements in internal/observer, the objects in internal/workload;
// condition types and reasons in api/v1alpha1.
package controllers

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/autoscale"
	"github.com/vcon-operator/vcon-operator/internal/observer"
	"github.com/vcon-operator/vcon-operator/internal/workload"
)

// Field indexes: which Chains name a Link or Storage, so that one appearing
// reconciles its Chains at once.
const (
	indexLinks    = ".spec.links"
	indexStorages = ".spec.storages"
	indexIngress  = ".spec.ingressLists"
)

// ChainReconciler turns a Chain into a ConfigMap and an autoscaled worker
// Deployment, and reports where the Chain's vCons are.
type ChainReconciler struct {
	client.Client
	// APIReader reads Secrets holding Redis URLs without caching every
	// Secret of the cluster.
	APIReader client.Reader
	Recorder  record.EventRecorder
	Observer  *observer.Observer
	// DefaultRedisURL is used by Chains that name no Redis.
	DefaultRedisURL string
	WorkerImage     string
	// QueuedRetention is the least TTL workers keep on queued bodies
	// (VCON_QUEUED_RETENTION on their pods); 0 leaves theirs.
	QueuedRetention time.Duration
	// PodDefaults place the worker pods of Chains that set no placement
	// of their own (--worker-pod-defaults).
	PodDefaults workload.PodDefaults
	// AllowedWorkerImagePrefixes are the registry or repository prefixes a
	// Chain's workers.image may name (policy.ImageAllowed); none means a
	// Chain always runs WorkerImage. The image decides what code gets the
	// Chain's Secrets and Redis, so it is the operator's call, not the
	// Chain author's.
	AllowedWorkerImagePrefixes []string
	// AllowedRedisHosts are the host or host:port patterns a Chain's own
	// Redis URL may name (policy.RedisRefused); none means any.
	AllowedRedisHosts []string
	// PollInterval is the observer's; a delayed scale-down is re-checked then.
	PollInterval time.Duration
	// SecretRecheck is how often a Chain whose Redis Secret is missing
	// looks again (default 30s). Secrets are read, not watched: watching
	// would cache every Secret of the cluster and need list and watch on
	// them.
	SecretRecheck time.Duration

	scaling sync.Map // types.NamespacedName -> autoscale.State
	written sync.Map // types.NamespacedName -> *childWrites
}

// +kubebuilder:rbac:groups=vcon.dev,resources=chains;links;storages,verbs=get;list;watch
// +kubebuilder:rbac:groups=vcon.dev,resources=chains/status;links/status;storages/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=vcon.dev,resources=chains/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch;delete
// Secrets: get reads the Redis URL Secrets Chains name, past the cache (no
// list or watch: that would cache every Secret of the cluster); create,
// patch, update and delete manage the one Secret per Chain the operator
// projects its Redis URL into (workload.RedisSecret).
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;create;patch;update;delete
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete

// Reconcile implements reconcile.Reconciler. It reads as its plan:
// resolve what the Chain references and owns, plan what to write, apply
// the plan, write the status.
func (r *ChainReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var chain vconv1.Chain
	if err := r.Get(ctx, req.NamespacedName, &chain); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	res, err := r.resolve(ctx, &chain)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("resolve chain %s: %w", req.NamespacedName, err)
	}
	plan := r.plan(&chain, res, r.scalingState(req.NamespacedName), time.Now())
	if err := r.applyPlan(ctx, &chain, res, plan); err != nil {
		if !apierrors.IsInvalid(err) {
			return ctrl.Result{}, fmt.Errorf("apply chain %s: %w", req.NamespacedName, err)
		}
		// Retrying cannot help until the Chain changes: say why in the
		// status instead of only in the operator's log.
		plan.refusedByAPIServer(res.deployment, err)
	}
	if err := r.writeStatus(ctx, &chain, chainStatus(&chain, res, plan)); err != nil {
		return ctrl.Result{}, fmt.Errorf("status of chain %s: %w", req.NamespacedName, err)
	}
	return ctrl.Result{RequeueAfter: plan.requeueAfter}, nil
}

// forget drops what the operator keeps of a deleted Chain beyond its
// children, which go with their owner references.
func (r *ChainReconciler) forget(key types.NamespacedName) {
	r.Observer.Forget(key)
	r.scaling.Delete(key)
	r.written.Delete(key)
	forgetChainMetrics(key.Namespace, key.Name)
}

// scalingState is the autoscaler's state kept from the Chain's last
// applied decision; zero for a Chain not seen before.
func (r *ChainReconciler) scalingState(key types.NamespacedName) autoscale.State {
	if v, ok := r.scaling.Load(key); ok {
		return v.(autoscale.State)
	}
	return autoscale.State{}
}

func (r *ChainReconciler) secretRecheck() time.Duration {
	if r.SecretRecheck > 0 {
		return r.SecretRecheck
	}
	return 30 * time.Second
}

// SetupWithManager registers the controller, its watches and indexes.
func (r *ChainReconciler) SetupWithManager(mgr ctrl.Manager) error {
	ctx := context.Background()
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &vconv1.Chain{}, indexLinks, func(o client.Object) []string {
		return o.(*vconv1.Chain).Spec.Links
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &vconv1.Chain{}, indexStorages, func(o client.Object) []string {
		return o.(*vconv1.Chain).Spec.Storages
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &vconv1.Chain{}, indexIngress, func(o client.Object) []string {
		return o.(*vconv1.Chain).Spec.IngressLists
	}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		// Annotations too: vcon.dev/paused is one, and its removal must
		// resume the Chain at once.
		For(&vconv1.Chain{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.ConfigMap{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		// Worker pods belong to a ReplicaSet, not to the Chain: mapped by
		// label. Their crashes reach the Ready condition this way.
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(chainOfPod), builder.WithPredicates(podFailureChanged)).
		Watches(&vconv1.Link{}, handler.EnqueueRequestsFromMapFunc(r.chainsUsing(indexLinks))).
		Watches(&vconv1.Storage{}, handler.EnqueueRequestsFromMapFunc(r.chainsOfStorage)).
		// A Chain that appears, changes or goes away can start or end an
		// ingress conflict with other Chains.
		Watches(&vconv1.Chain{}, handler.EnqueueRequestsFromMapFunc(r.chainsSharingIngress)).
		WatchesRawSource(source.Channel(r.Observer.Events(), &handler.EnqueueRequestForObject{})).
		Complete(r)
}

func (r *ChainReconciler) chainsUsing(index string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var chains vconv1.ChainList
		if err := r.List(ctx, &chains, client.InNamespace(o.GetNamespace()), client.MatchingFields{index: o.GetName()}); err != nil {
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(chains.Items))
		for _, c := range chains.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: c.Namespace, Name: c.Name}})
		}
		return reqs
	}
}

// chainsOfStorage maps a Storage to the Chains that name it and to those
// whose links.redact Links keep unredacted originals in it
// (workload.OriginalStorages): it is in their rendered config too.
func (r *ChainReconciler) chainsOfStorage(ctx context.Context, o client.Object) []reconcile.Request {
	reqs := r.chainsUsing(indexStorages)(ctx, o)
	var links vconv1.LinkList
	if err := r.List(ctx, &links, client.InNamespace(o.GetNamespace())); err != nil {
		return reqs
	}
	for i := range links.Items {
		if slices.Contains(workload.LinkOriginalStorages(&links.Items[i]), o.GetName()) {
			reqs = append(reqs, r.chainsUsing(indexLinks)(ctx, &links.Items[i])...)
		}
	}
	return reqs
}

// chainsSharingIngress maps a Chain to the other Chains consuming one of its
// ingress lists, whose IngressConflict condition may change with it.
func (r *ChainReconciler) chainsSharingIngress(ctx context.Context, o client.Object) []reconcile.Request {
	changed, ok := o.(*vconv1.Chain)
	if !ok {
		return nil
	}
	others, err := r.chainsConsuming(ctx, changed.Spec.IngressLists)
	if err != nil {
		// A map function cannot return an error; the Chains it missed
		// still see the change at their next reconcile.
		log.FromContext(ctx).Error(err, "cannot map a Chain to those sharing its ingress lists", "chain", client.ObjectKeyFromObject(changed))
		return nil
	}
	var reqs []reconcile.Request
	for _, c := range others {
		if c.UID != changed.UID {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: c.Namespace, Name: c.Name}})
		}
	}
	return reqs
}
