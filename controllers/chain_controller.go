// Package controllers holds the reconcilers. Each reads as a checklist:
// fetch, resolve references, build the desired objects with the pure
// builders of internal/workload, apply them, observe, set status. Decisions
// live elsewhere: the autoscaling policy in internal/autoscale, the queue
// measurements in internal/observer.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
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
	"github.com/vcon-operator/vcon-operator/internal/policy"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/redisconn"
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
}

// +kubebuilder:rbac:groups=vcon.dev,resources=chains;links;storages,verbs=get;list;watch
// +kubebuilder:rbac:groups=vcon.dev,resources=chains/status;links/status;storages/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=vcon.dev,resources=chains/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;patch;delete
// Secrets: get reads the Redis URL Secrets Chains name, past the cache (no
// list or watch: that would cache every Secret of the cluster); create,
// patch, update and delete manage the one Secret per Chain the operator
// projects its Redis URL into (workload.RedisSecret).
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;create;patch;update;delete
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete

// Reconcile implements reconcile.Reconciler.
func (r *ChainReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	logger := log.FromContext(ctx)

	// 1. Fetch.
	var chain vconv1.Chain
	if err := r.Get(ctx, req.NamespacedName, &chain); err != nil {
		if apierrors.IsNotFound(err) {
			// Children go with their owner references; forget the rest.
			r.Observer.Forget(req.NamespacedName)
			r.scaling.Delete(req.NamespacedName)
			forgetChainMetrics(req.Namespace, req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	status := chain.Status.DeepCopy()
	gen := chain.Generation

	// 2. Resolve references: Links, Storages, Redis.
	in, problem, err := r.resolve(ctx, &chain)
	if err != nil {
		return ctrl.Result{}, err
	}
	if problem == nil {
		if other := r.ingressConflict(ctx, &chain, in); other != "" {
			problem = &notReady{vconv1.ReasonIngressConflict, other}
		}
	}

	// 3. Build the desired objects.
	var rendered *workload.Rendered
	if problem == nil {
		rendered, err = workload.Render(in)
		var forbidden *workload.ForbiddenReference
		switch {
		case errors.As(err, &forbidden):
			problem = &notReady{vconv1.ReasonEnvReferenceNotAllowed, err.Error()}
		case err != nil:
			problem = &notReady{vconv1.ReasonInvalidChain, err.Error()}
		}
	}

	// 4. Observe the queues (measured by the observer) and decide replicas.
	if problem != nil && problem.reason == vconv1.ReasonRedisNotAllowed {
		r.Observer.Forget(req.NamespacedName) // it may have been allowed before
	}
	if in.RedisURL != "" {
		r.Observer.Track(req.NamespacedName, in.RedisURL, queue.Target{Ingress: chain.Spec.IngressLists, Egress: chain.Spec.EgressLists})
	}
	obs, measured := r.Observer.Get(req.NamespacedName)
	var current appsv1.Deployment
	haveDeployment := true
	if err := r.Get(ctx, types.NamespacedName{Namespace: chain.Namespace, Name: workload.DeploymentName(chain.Name)}, &current); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		haveDeployment = false
	}
	currentReplicas := int32(0)
	if haveDeployment && current.Spec.Replicas != nil {
		currentReplicas = *current.Spec.Replicas
	}
	decision := r.decide(req.NamespacedName, &chain, obs, currentReplicas, problem)

	// 5. Apply. A Chain whose references are broken keeps its current
	// workers (if any) running on their last good config.
	if problem == nil || problem.reason == vconv1.ReasonIngressConflict {
		replicas := decision.Replicas
		if problem != nil {
			replicas = 0 // the earlier Chain owns the list
		}
		if rendered != nil {
			if err := apply(ctx, r.Client, workload.ConfigMap(&chain, rendered)); err != nil {
				return ctrl.Result{}, fmt.Errorf("apply configmap: %w", err)
			}
			var cur *appsv1.Deployment
			if haveDeployment {
				cur = &current
			}
			// Before the Deployment: its pods reference the Secret.
			if err := r.applyRedis(ctx, &chain, in, cur); err != nil {
				return ctrl.Result{}, fmt.Errorf("apply redis secret: %w", err)
			}
			if err := apply(ctx, r.Client, workload.Deployment(in, rendered, replicas)); err != nil {
				return ctrl.Result{}, fmt.Errorf("apply deployment: %w", err)
			}
		} else if haveDeployment && currentReplicas != replicas {
			patch := client.MergeFrom(current.DeepCopy())
			current.Spec.Replicas = &replicas
			if err := r.Patch(ctx, &current, patch); err != nil {
				return ctrl.Result{}, err
			}
		}
		r.recordScaling(&chain, currentReplicas, replicas, decision)
		currentReplicas = replicas
	}

	// 6. Observe the workers: why they fail, in their own words.
	var workers string
	if haveDeployment {
		pods, err := r.workerPods(ctx, &chain)
		if err != nil {
			return ctrl.Result{}, err
		}
		workers = workersFailing(&current, pods)
	}

	// 7. Set status.
	status.ObservedGeneration = gen
	status.Replicas = currentReplicas
	status.ReadyReplicas = current.Status.ReadyReplicas
	status.Workers = fmt.Sprintf("%d/%d", status.ReadyReplicas, status.Replicas)
	r.setQueueStatus(&chain, status, obs, measured)
	setReady(status, gen, &chain, problem, workers, obs, measured)
	setCondition(&status.Conditions, gen, vconv1.ConditionScalingLimited, decision.Limited, limitedReason(decision), limitedMessage(&chain, decision))

	if !equalStatus(&chain.Status, status) {
		if err := applyStatus(ctx, r.Client, &chain, status); err != nil {
			return ctrl.Result{}, fmt.Errorf("apply status: %w", err)
		}
		logger.V(1).Info("status updated", "workers", status.Workers, "ingress", status.Queue.Ingress)
	}

	if decision.Reason == autoscale.ReasonScaleDownDelayed {
		return ctrl.Result{RequeueAfter: r.PollInterval}, nil
	}
	if problem != nil && problem.reason == vconv1.ReasonRedisSecretNotFound {
		// Nothing else would wake this Chain: without a Redis it is not
		// observed, and the Secret is not watched.
		return ctrl.Result{RequeueAfter: r.secretRecheck()}, nil
	}
	return ctrl.Result{}, nil
}

func (r *ChainReconciler) secretRecheck() time.Duration {
	if r.SecretRecheck > 0 {
		return r.SecretRecheck
	}
	return 30 * time.Second
}

// notReady is why a Chain cannot run as specified.
type notReady struct{ reason, message string }

// resolve gathers what the Chain references. A missing reference is not an
// error of the reconcile: it is reported in the status, and the Chain is
// reconciled again when the object appears (field-indexed watches).
func (r *ChainReconciler) resolve(ctx context.Context, chain *vconv1.Chain) (workload.Inputs, *notReady, error) {
	in := workload.Inputs{Chain: chain, Links: map[string]*vconv1.Link{}, Storages: map[string]*vconv1.Storage{}, Image: r.WorkerImage}
	if img := chain.Spec.Workers.Image; img != "" && img != r.WorkerImage {
		if !policy.ImageAllowed(r.AllowedWorkerImagePrefixes, img) {
			// Nothing is applied for a refused Chain: running workers keep
			// their last accepted image, and no Deployment rolls to this one.
			return in, &notReady{vconv1.ReasonImageNotAllowed, imageNotAllowedMessage(img, r.AllowedWorkerImagePrefixes)}, nil
		}
		in.Image = img
	}
	// Redis first: queues can be observed even while a Link is missing.
	switch {
	case chain.Spec.Redis.URLSecretRef != nil:
		ref := chain.Spec.Redis.URLSecretRef
		var s corev1.Secret
		if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: chain.Namespace, Name: ref.Name}, &s); err != nil {
			if apierrors.IsNotFound(err) {
				return in, &notReady{vconv1.ReasonRedisSecretNotFound, fmt.Sprintf("Secret %q holding the Redis URL not found", ref.Name)}, nil
			}
			return in, nil, err
		}
		url, ok := s.Data[ref.Key]
		if !ok {
			return in, &notReady{vconv1.ReasonRedisSecretNotFound, fmt.Sprintf("Secret %q has no key %q", ref.Name, ref.Key)}, nil
		}
		in.RedisURL, in.RedisSecret = string(url), ref
	case chain.Spec.Redis.URL != "":
		in.RedisURL = chain.Spec.Redis.URL
	default:
		in.RedisURL = r.DefaultRedisURL
	}
	if in.RedisURL == "" {
		return in, &notReady{vconv1.ReasonNoRedis, "the Chain names no Redis and the operator has no --redis-url default"}, nil
	}
	if problem := r.redisPolicy(chain, in.RedisURL); problem != nil {
		// Not observed either: the operator must not connect to it.
		in.RedisURL = ""
		return in, problem, nil
	}
	if in.RedisSecret == nil {
		if problem, err := r.checkProjectedRedisSecret(ctx, chain); problem != nil || err != nil {
			return in, problem, err
		}
	}

	var missing []string
	for _, name := range chain.Spec.Links {
		var l vconv1.Link
		if err := r.Get(ctx, types.NamespacedName{Namespace: chain.Namespace, Name: name}, &l); err != nil {
			if apierrors.IsNotFound(err) {
				missing = append(missing, "Link "+name)
				continue
			}
			return in, nil, err
		}
		in.Links[name] = &l
	}
	for _, name := range chain.Spec.Storages {
		var s vconv1.Storage
		if err := r.Get(ctx, types.NamespacedName{Namespace: chain.Namespace, Name: name}, &s); err != nil {
			if apierrors.IsNotFound(err) {
				missing = append(missing, "Storage "+name)
				continue
			}
			return in, nil, err
		}
		in.Storages[name] = &s
	}
	if len(missing) > 0 {
		return in, &notReady{vconv1.ReasonReferenceNotFound, fmt.Sprintf("not found in namespace %s: %v", chain.Namespace, missing)}, nil
	}
	var notReadySteps []string
	for name, l := range in.Links {
		if l.Status.NotReadyAt(l.Generation) {
			notReadySteps = append(notReadySteps, "Link "+name)
		}
	}
	for name, s := range in.Storages {
		if s.Status.NotReadyAt(s.Generation) {
			notReadySteps = append(notReadySteps, "Storage "+name)
		}
	}
	if len(notReadySteps) > 0 {
		sort.Strings(notReadySteps)
		return in, &notReady{vconv1.ReasonReferenceNotReady, fmt.Sprintf("not ready: %v", notReadySteps)}, nil
	}
	return in, nil, nil
}

// ingressConflict returns a message naming the earlier Chain that consumes
// one of this Chain's ingress lists on the same Redis, or "". conserver
// lets the last one silently win; here the earlier one keeps the list.
func (r *ChainReconciler) ingressConflict(ctx context.Context, chain *vconv1.Chain, in workload.Inputs) string {
	if !chain.IsEnabled() {
		return ""
	}
	others, err := r.chainsConsuming(ctx, chain.Spec.IngressLists)
	if err != nil {
		return ""
	}
	mineRedis := redisIdentity(in.RedisURL)
	if mineRedis == "" {
		return "" // its workers cannot consume anything either
	}
	mine := map[string]bool{}
	for _, l := range chain.Spec.IngressLists {
		mine[l] = true
	}
	for i := range others {
		other := &others[i]
		if other.UID == chain.UID || !other.IsEnabled() || !other.CreatedBefore(chain) {
			continue
		}
		shared := ""
		for _, l := range other.Spec.IngressLists {
			if mine[l] {
				shared = l
				break
			}
		}
		// Only a Chain sharing a list is worth learning the Redis of: for
		// one with urlSecretRef that is an uncached Secret read, and asking
		// every Chain cost each reconcile one API call per such Chain.
		// Servers are compared normalised, so that writing the same server
		// differently (redis://H, redis://user:pw@h:6379/0) is no way
		// around the check.
		if shared != "" && r.redisIdentity(ctx, other) == mineRedis {
			// Another namespace's Chain names are not this namespace's
			// business; that some Chain holds the list is.
			who := "a Chain in another namespace"
			if other.Namespace == chain.Namespace {
				who = "Chain " + other.Name
			}
			return fmt.Sprintf("ingress list %q is already consumed by %s on the same Redis (%s)", shared, who, mineRedis)
		}
	}
	return ""
}

// chainsConsuming returns the Chains, in every namespace (they may share a
// Redis), that consume any of lists: one indexed cache lookup per list
// instead of a scan of every Chain.
func (r *ChainReconciler) chainsConsuming(ctx context.Context, lists []string) ([]vconv1.Chain, error) {
	seen := map[types.UID]bool{}
	var out []vconv1.Chain
	for _, l := range lists {
		var found vconv1.ChainList
		if err := r.List(ctx, &found, client.MatchingFields{indexIngress: l}); err != nil {
			return nil, err
		}
		for _, c := range found.Items {
			if !seen[c.UID] {
				seen[c.UID] = true
				out = append(out, c)
			}
		}
	}
	return out, nil
}

// redisIdentity is the normalised identity of the Redis a Chain consumes
// from, "" when it cannot be read.
func (r *ChainReconciler) redisIdentity(ctx context.Context, c *vconv1.Chain) string {
	switch {
	case c.Spec.Redis.URLSecretRef != nil:
		var s corev1.Secret
		if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: c.Spec.Redis.URLSecretRef.Name}, &s); err != nil {
			return ""
		}
		return redisIdentity(string(s.Data[c.Spec.Redis.URLSecretRef.Key]))
	case c.Spec.Redis.URL != "":
		return redisIdentity(c.Spec.Redis.URL)
	}
	return redisIdentity(r.DefaultRedisURL)
}

// redisIdentity of a URL: redisconn.Server's, without credentials. A URL
// that does not parse is nothing the workers could consume from either.
func redisIdentity(url string) string {
	s, err := redisconn.ParseServer(url)
	if err != nil {
		return ""
	}
	return s.String()
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
		For(&vconv1.Chain{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}))).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.ConfigMap{}).
		// Worker pods belong to a ReplicaSet, not to the Chain: mapped by
		// label. Their crashes reach the Ready condition this way.
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(chainOfPod), builder.WithPredicates(podFailureChanged)).
		Watches(&vconv1.Link{}, handler.EnqueueRequestsFromMapFunc(r.chainsUsing(indexLinks))).
		Watches(&vconv1.Storage{}, handler.EnqueueRequestsFromMapFunc(r.chainsUsing(indexStorages))).
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

// chainsSharingIngress maps a Chain to the other Chains consuming one of its
// ingress lists, whose IngressConflict condition may change with it.
func (r *ChainReconciler) chainsSharingIngress(ctx context.Context, o client.Object) []reconcile.Request {
	changed, ok := o.(*vconv1.Chain)
	if !ok {
		return nil
	}
	others, err := r.chainsConsuming(ctx, changed.Spec.IngressLists)
	if err != nil {
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
