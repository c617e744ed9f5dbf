package controllers

import (
	"context"
	"fmt"
	"slices"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/observer"
	"github.com/vcon-operator/vcon-operator/internal/policy"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/redisconn"
	"github.com/vcon-operator/vcon-operator/internal/workload"
)

// notReady is why a Chain cannot run as specified: the reason and message
// of its Ready=False.
type notReady struct{ reason, message string }

// resolved is everything one reconcile of a Chain decides from, read
// once, before anything is decided: what the Chain references, what it
// owns as it is now, and the latest measurement of its queues.
type resolved struct {
	in workload.Inputs
	// problem is why the Chain cannot run as specified, nil when it can.
	problem *notReady
	// deployment is the worker Deployment as it is, nil when there is
	// none; pods are its pods.
	deployment *appsv1.Deployment
	pods       []corev1.Pod
	// pdb is the Chain's worker PodDisruptionBudget as it is, nil when it
	// has none.
	pdb *policyv1.PodDisruptionBudget
	// configMap is the Chain's rendered config as it is, nil when there
	// is none.
	configMap *corev1.ConfigMap
	// observation is the observer's latest; zero before the first poll.
	observation observer.Observation
}

// resolve reads what the Chain references and owns. A missing or refused
// reference is not an error of the reconcile: it is the resolved problem,
// reported in the status, and the Chain is reconciled again when the
// object appears (field-indexed watches).
func (r *ChainReconciler) resolve(ctx context.Context, chain *vconv1.Chain) (resolved, error) {
	var res resolved
	var err error
	if res.in, res.problem, err = r.references(ctx, chain); err != nil {
		return res, err
	}
	if res.problem == nil {
		if res.problem, err = r.ingressConflict(ctx, chain, res.in.RedisURL); err != nil {
			return res, fmt.Errorf("check ingress lists: %w", err)
		}
	}
	res.observation = r.observe(chain, res.in.RedisURL, res.in.Links, res.problem)
	if res.deployment, err = r.workerDeployment(ctx, chain); err != nil {
		return res, err
	}
	if res.deployment != nil {
		if res.pods, err = r.workerPods(ctx, chain); err != nil {
			return res, err
		}
	}
	if res.pdb, err = r.workerPDB(ctx, chain); err != nil {
		return res, err
	}
	if res.configMap, err = r.workerConfigMap(ctx, chain); err != nil {
		return res, err
	}
	return res, nil
}

// references gathers the image, Redis, Links and Storages the Chain names,
// and the first reason it cannot run with them.
func (r *ChainReconciler) references(ctx context.Context, chain *vconv1.Chain) (workload.Inputs, *notReady, error) {
	in := workload.Inputs{Chain: chain, Links: map[string]*vconv1.Link{}, Storages: map[string]*vconv1.Storage{}, Image: r.WorkerImage, QueuedRetention: r.QueuedRetention, PodDefaults: r.PodDefaults}
	if img := chain.Spec.Workers.Image; img != "" && img != r.WorkerImage {
		if !policy.ImageAllowed(r.AllowedWorkerImagePrefixes, img) {
			// Nothing is applied for a refused Chain: running workers keep
			// their last accepted image, and no Deployment rolls to this one.
			return in, &notReady{vconv1.ReasonImageNotAllowed, imageNotAllowedMessage(img, r.AllowedWorkerImagePrefixes)}, nil
		}
		in.Image = img
	}
	// Redis first: queues can be observed even while a Link is missing.
	url, secret, problem, err := r.redisURL(ctx, chain)
	if problem != nil || err != nil {
		return in, problem, err
	}
	in.RedisURL, in.RedisSecret = url, secret
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
	// The Storages its links.redact Links keep originals in are rendered
	// into the workers' config too.
	for _, name := range append(slices.Clone(chain.Spec.Storages), workload.OriginalStorages(chain, in.Links)...) {
		if _, done := in.Storages[name]; done {
			continue
		}
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

// redisURL is the one place a Chain's Redis URL is resolved, for its own
// reconcile and for the ingress check of other Chains: the key of its
// urlSecretRef (returned as secret), else its spec.redis.url, else the
// operator's default. A missing Secret or key, or no Redis at all, is a
// problem of the Chain, not an error; the Secret is read past the cache.
func (r *ChainReconciler) redisURL(ctx context.Context, chain *vconv1.Chain) (url string, secret *corev1.SecretKeySelector, problem *notReady, err error) {
	switch {
	case chain.Spec.Redis.URLSecretRef != nil:
		secret = chain.Spec.Redis.URLSecretRef
		var s corev1.Secret
		if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: chain.Namespace, Name: secret.Name}, &s); err != nil {
			if apierrors.IsNotFound(err) {
				return "", nil, &notReady{vconv1.ReasonRedisSecretNotFound, fmt.Sprintf("Secret %q holding the Redis URL not found", secret.Name)}, nil
			}
			return "", nil, nil, fmt.Errorf("read redis url secret %s/%s: %w", chain.Namespace, secret.Name, err)
		}
		v, ok := s.Data[secret.Key]
		if !ok {
			return "", nil, &notReady{vconv1.ReasonRedisSecretNotFound, fmt.Sprintf("Secret %q has no key %q", secret.Name, secret.Key)}, nil
		}
		url = string(v)
	case chain.Spec.Redis.URL != "":
		url = chain.Spec.Redis.URL
	default:
		url = r.DefaultRedisURL
	}
	if url == "" {
		return "", nil, &notReady{vconv1.ReasonNoRedis, "the Chain names no Redis and the operator has no --redis-url default"}, nil
	}
	return url, secret, nil, nil
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

// ingressConflict is the IngressConflict problem when an earlier Chain
// consumes one of this Chain's ingress lists on the same Redis, else nil.
// conserver lets the last one silently win; here the earlier one keeps the
// list. A failure to find out is an error: the Chain would otherwise run
// workers on a list another Chain owns.
func (r *ChainReconciler) ingressConflict(ctx context.Context, chain *vconv1.Chain, redisURL string) (*notReady, error) {
	if !chain.IsEnabled() {
		return nil, nil
	}
	mineRedis := redisIdentity(redisURL)
	if mineRedis == "" {
		return nil, nil // its workers cannot consume anything either
	}
	others, err := r.chainsConsuming(ctx, chain.Spec.IngressLists)
	if err != nil {
		return nil, err
	}
	mine := map[string]bool{}
	for _, l := range chain.Spec.IngressLists {
		mine[l] = true
	}
	// The Chain named is the earliest that shares a list, the one whose
	// workers hold it: a later claimant is refused too, and which of them
	// the cache lists first is no answer (the message changed from one
	// reconcile to the next).
	var owner *vconv1.Chain
	ownerList := ""
	for i := range others {
		other := &others[i]
		if other.UID == chain.UID || !other.IsEnabled() || !other.CreatedBefore(chain) {
			continue
		}
		if owner != nil && !other.CreatedBefore(owner) {
			continue
		}
		shared := ""
		for _, l := range other.Spec.IngressLists {
			if mine[l] {
				shared = l
				break
			}
		}
		if shared == "" {
			continue
		}
		// Only a Chain sharing a list is worth learning the Redis of: for
		// one with urlSecretRef that is an uncached Secret read, and asking
		// every Chain cost each reconcile one API call per such Chain.
		// Servers are compared normalised, so that writing the same server
		// differently (redis://H, redis://user:pw@h:6379/0) is no way
		// around the check. A Chain without a Redis consumes nothing.
		url, _, problem, err := r.redisURL(ctx, other)
		if err != nil {
			return nil, fmt.Errorf("redis of chain %s/%s: %w", other.Namespace, other.Name, err)
		}
		if problem != nil || redisIdentity(url) != mineRedis {
			continue
		}
		owner, ownerList = other, shared
	}
	if owner == nil {
		return nil, nil
	}
	// Another namespace's Chain names are not this namespace's business;
	// that some Chain holds the list is.
	who := "a Chain in another namespace"
	if owner.Namespace == chain.Namespace {
		who = "Chain " + owner.Name
	}
	return &notReady{vconv1.ReasonIngressConflict, fmt.Sprintf("ingress list %q is already consumed by %s on the same Redis (%s)", ownerList, who, mineRedis)}, nil
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
			return nil, fmt.Errorf("list chains consuming %q: %w", l, err)
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

// observe tells the observer which Redis, lists and link budgets to
// measure for the Chain, and returns its latest measurement (zero before
// the first).
func (r *ChainReconciler) observe(chain *vconv1.Chain, redisURL string, links map[string]*vconv1.Link, problem *notReady) observer.Observation {
	key := client.ObjectKeyFromObject(chain)
	if problem != nil && problem.reason == vconv1.ReasonRedisNotAllowed {
		r.Observer.Forget(key) // it may have been allowed before
	}
	if redisURL != "" {
		r.Observer.Track(key, redisURL, queue.Target{Ingress: chain.Spec.IngressLists, Egress: chain.Spec.EgressLists, Storages: chain.Spec.Storages}, linkBudgets(chain, links)...)
	}
	obs, _ := r.Observer.Get(key)
	return obs
}

// workerDeployment is the Chain's worker Deployment from the cache, nil
// when there is none.
func (r *ChainReconciler) workerDeployment(ctx context.Context, chain *vconv1.Chain) (*appsv1.Deployment, error) {
	var d appsv1.Deployment
	if err := r.Get(ctx, types.NamespacedName{Namespace: chain.Namespace, Name: workload.DeploymentName(chain.Name)}, &d); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("get worker deployment: %w", err)
	}
	return &d, nil
}

// workerConfigMap is the Chain's rendered config from the cache, nil when
// there is none.
func (r *ChainReconciler) workerConfigMap(ctx context.Context, chain *vconv1.Chain) (*corev1.ConfigMap, error) {
	var cm corev1.ConfigMap
	if err := r.Get(ctx, types.NamespacedName{Namespace: chain.Namespace, Name: workload.ConfigMapName(chain.Name)}, &cm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("get worker configmap: %w", err)
	}
	return &cm, nil
}

// workerPDB is the Chain's worker PodDisruptionBudget from the cache, nil
// when there is none or it is not the Chain's.
func (r *ChainReconciler) workerPDB(ctx context.Context, chain *vconv1.Chain) (*policyv1.PodDisruptionBudget, error) {
	var b policyv1.PodDisruptionBudget
	if err := r.Get(ctx, types.NamespacedName{Namespace: chain.Namespace, Name: workload.PodDisruptionBudgetName(chain.Name)}, &b); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("get worker poddisruptionbudget: %w", err)
	}
	if !metav1.IsControlledBy(&b, chain) {
		return nil, nil
	}
	return &b, nil
}
