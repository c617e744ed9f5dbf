package controllers

import (
	"errors"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/autoscale"
	"github.com/vcon-operator/vcon-operator/internal/observer"
	"github.com/vcon-operator/vcon-operator/internal/workload"
)

// applyMode is how much of the Chain's objects a reconcile writes.
type applyMode int

const (
	// applyNothing: a Chain whose references are broken or refused, or
	// that is paused, keeps its current workers (if any) running on their
	// last good config.
	applyNothing applyMode = iota
	// applyReplicas: only the existing Deployment's replicas change, as
	// for a Chain that lost its ingress list to an earlier one.
	applyReplicas
	// applyAll: the ConfigMap, the Redis Secret and the Deployment, as
	// rendered.
	applyAll
)

// chainPlan is what one reconcile does to a Chain's objects and why.
type chainPlan struct {
	mode applyMode
	// paused: the Chain carries vcon.dev/paused: "true"; nothing is
	// written but its status.
	paused bool
	// problem is why the Chain cannot run as specified: resolve's, or the
	// render's; nil when it can.
	problem *notReady
	// The rendered objects, for applyAll. redisSecret is the projected
	// Redis Secret, nil when the Chain names its own; dropProjectedRedis
	// removes a projected copy its workers no longer use.
	configMap          *corev1.ConfigMap
	redisSecret        *corev1.Secret
	deployment         *appsv1.Deployment
	dropProjectedRedis bool
	// pdb is the worker PodDisruptionBudget, nil when the Chain asks for
	// none; dropPDB is the one it had and no longer asks for.
	pdb     *policyv1.PodDisruptionBudget
	dropPDB *policyv1.PodDisruptionBudget
	// replicas is what the Deployment runs once the plan is applied.
	replicas int32
	decision autoscale.Decision
	// scaling is the autoscaler's state to keep, once applyAll succeeded.
	scaling autoscale.State
	// requeueAfter is when to look again though nothing may wake the
	// Chain; 0 is never.
	requeueAfter time.Duration
}

// plan decides what to do with a resolved Chain at now, given the
// autoscaler's state from the previous reconcile. It reads nothing and
// writes nothing: rendering and the autoscaling decision are pure.
func (r *ChainReconciler) plan(chain *vconv1.Chain, res resolved, scaling autoscale.State, now time.Time) chainPlan {
	current := replicasOf(res.deployment)
	p := chainPlan{problem: res.problem, replicas: current}
	policy, err := scalingPolicy(chain)
	policy.Links = linkLimits(chain, res.in.Links)
	if err != nil && p.problem == nil {
		// The workers keep what they have: a typo in a schedule should not
		// scale a chain to its bounds outside every schedule.
		p.problem = &notReady{vconv1.ReasonInvalidSchedule, err.Error() + "; fix spec.workers.schedules"}
	}
	var rendered *workload.Rendered
	if p.problem == nil {
		rendered, p.problem = render(res.in)
	}
	p.decision, p.scaling = autoscale.Decide(policy, res.observation, now, current, scaling)
	if chain.IsPaused() {
		// Frozen where it is: replicas, config and spec edits wait for the
		// annotation to go, whose removal reconciles the Chain at once.
		p.paused = true
		return p
	}

	switch {
	case p.problem == nil:
		p.mode = applyAll
		p.replicas = p.decision.Replicas
		p.configMap = workload.ConfigMap(chain, rendered)
		p.deployment = workload.Deployment(res.in, rendered, p.replicas)
		p.pdb = workload.PodDisruptionBudget(chain)
		if p.pdb == nil {
			p.dropPDB = res.pdb
		}
		if res.in.RedisSecret == nil {
			p.redisSecret = workload.RedisSecret(chain, res.in.RedisURL)
		} else {
			// A Chain that switched to its own Secret has the projected copy
			// removed, so the operator's URL does not linger in the
			// namespace.
			p.dropProjectedRedis = res.deployment != nil && referencesProjectedRedis(res.deployment, chain.Name)
		}
	case p.problem.reason == vconv1.ReasonIngressConflict:
		p.mode = applyReplicas
		p.replicas = 0 // the earlier Chain owns the list
	}

	switch {
	case p.decision.Reason == autoscale.ReasonScaleDownDelayed:
		p.requeueAfter = r.PollInterval
	case p.decision.Reason == autoscale.ReasonBelowActivation && policy.ActivationDelay > 0:
		// The oldest vCon's wait grows with no figure changing.
		p.requeueAfter = r.PollInterval
	case p.problem != nil && p.problem.reason == vconv1.ReasonRedisSecretNotFound:
		// Nothing else would wake this Chain: without a Redis it is not
		// observed, and the Secret is not watched.
		p.requeueAfter = r.secretRecheck()
	}
	if next := policy.NextScheduleChange(now); !next.IsZero() {
		// A schedule opening at 09:00 scales at 09:00, not at the next
		// change of the queue.
		p.requeueAfter = earliestRequeue(p.requeueAfter, next.Sub(now))
	}
	return p
}

// earliestRequeue is the sooner of two requeues, 0 meaning never.
func earliestRequeue(a, b time.Duration) time.Duration {
	if a == 0 || (b > 0 && b < a) {
		return b
	}
	return a
}

// refusedByAPIServer is the plan once the API server refused an object
// built from the Chain (a toleration or an affinity the CRD's schema lets
// through and Kubernetes' own validation does not): the Chain is
// InvalidChain in the server's words, its workers at the replicas they
// have.
func (p *chainPlan) refusedByAPIServer(current *appsv1.Deployment, err error) {
	p.problem = &notReady{vconv1.ReasonInvalidChain, "the API server refused an object built from the Chain's spec.workers: " + err.Error()}
	p.replicas = replicasOf(current)
}

// render builds the worker config, or says why the Chain cannot have one.
func render(in workload.Inputs) (*workload.Rendered, *notReady) {
	rendered, err := workload.Render(in)
	var forbidden *workload.ForbiddenReference
	switch {
	case errors.As(err, &forbidden):
		return nil, &notReady{vconv1.ReasonEnvReferenceNotAllowed, err.Error()}
	case err != nil:
		return nil, &notReady{vconv1.ReasonInvalidChain, err.Error()}
	}
	return rendered, nil
}

// scalingPolicy is the Chain's workers spec as the autoscaler reads it.
// A schedule it cannot read is an error, and the policy has none of the
// schedules then.
func scalingPolicy(chain *vconv1.Chain) (autoscale.Policy, error) {
	w := chain.Spec.Workers
	p := autoscale.Policy{
		Enabled:              chain.IsEnabled(),
		MinReplicas:          w.MinReplicas,
		MaxReplicas:          w.MaxReplicas,
		TargetQueueDepth:     w.TargetQueueDepth,
		Concurrency:          w.Concurrency,
		ActivationQueueDepth: w.ActivationQueueDepth,
	}
	if w.ScaleDownDelay != nil {
		p.ScaleDownDelay = w.ScaleDownDelay.Duration
	}
	if w.ActivationDelay != nil {
		p.ActivationDelay = w.ActivationDelay.Duration
	}
	schedules := make([]autoscale.Schedule, 0, len(w.Schedules))
	var problems []string
	for i, s := range w.Schedules {
		parsed, err := autoscale.ParseSchedule(s.Start, s.End, s.TimeZone, s.MinReplicas, s.MaxReplicas)
		if err != nil {
			problems = append(problems, fmt.Sprintf("workers.schedules[%d]: %v", i, err))
			continue
		}
		schedules = append(schedules, parsed)
	}
	if len(problems) > 0 {
		return p, errors.New(strings.Join(problems, "; "))
	}
	p.Schedules = schedules
	if len(chain.Spec.Followers) > 0 {
		// A follower runs in a worker, and nothing else brings its vCons
		// here: at zero workers nobody polls, the ingress stays empty, and
		// the chain never wakes. One worker stays, unless a schedule allows
		// none at all.
		p.MinReplicas = min(max(p.MinReplicas, 1), p.MaxReplicas)
		for i := range p.Schedules {
			p.Schedules[i].MinReplicas = min(max(p.Schedules[i].MinReplicas, 1), p.Schedules[i].MaxReplicas)
		}
	}
	return p, nil
}

// linkLimits are the limits of the Chain's links that have them, as the
// Links say now: a raised limit is scaled for before the workers roll.
func linkLimits(chain *vconv1.Chain, links map[string]*vconv1.Link) []autoscale.LinkLimit {
	var out []autoscale.LinkLimit
	for _, name := range limitedLinks(chain, links) {
		lim := links[name].Spec.Limits
		out = append(out, autoscale.LinkLimit{Link: name, RequestsPerMinute: lim.RequestsPerMinute, TokensPerMinute: lim.TokensPerMinute, MaxConcurrent: lim.MaxConcurrent})
	}
	return out
}

// linkBudgets are the Redis budgets of the Chain's links that have limits,
// for the observer to read with the queues.
func linkBudgets(chain *vconv1.Chain, links map[string]*vconv1.Link) []observer.LinkBudget {
	var out []observer.LinkBudget
	for _, name := range limitedLinks(chain, links) {
		out = append(out, observer.LinkBudget{Link: name, Budget: workload.LimitBudget(links[name])})
	}
	return out
}

// limitedLinks are the names of the Chain's links that have limits, in
// the Chain's order, each once.
func limitedLinks(chain *vconv1.Chain, links map[string]*vconv1.Link) []string {
	var out []string
	seen := map[string]bool{}
	for _, name := range chain.Spec.Links {
		if l := links[name]; l != nil && l.Spec.Limits != nil && !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	return out
}

// replicasOf is what a Deployment is set to run; none runs nothing.
func replicasOf(d *appsv1.Deployment) int32 {
	if d == nil || d.Spec.Replicas == nil {
		return 0
	}
	return *d.Spec.Replicas
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
