package controllers

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/autoscale"
	"github.com/vcon-operator/vcon-operator/internal/observer"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/workload"
)

func TestPlan(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)
	r := &ChainReconciler{PollInterval: 2 * time.Second, SecretRecheck: 7 * time.Second}
	queued := func(n int64) observer.Observation {
		return observer.Observation{Depths: queue.Depths{Ingress: n}, At: t0, Measured: true}
	}
	projected := func(name string) *appsv1.Deployment {
		d := deployment(2)
		d.Spec.Template.Spec.Containers = []corev1.Container{{Name: "worker", Env: []corev1.EnvVar{{Name: "REDIS_URL", ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: workload.RedisSecretName(name)}, Key: "url"}}}}}}
		return d
	}
	own := &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "mine"}, Key: "url"}

	tests := []struct {
		name  string
		edit  func(*resolved)
		state autoscale.State

		mode         applyMode
		reason       string // the plan's problem, "" for none
		replicas     int32
		projectRedis bool
		dropRedis    bool
		requeueAfter time.Duration
		paused       bool
		pdb, dropPDB bool
	}{
		{name: "a runnable Chain applies everything, scaled to its queue", edit: func(res *resolved) { res.observation = queued(25) },
			mode: applyAll, replicas: 3, projectRedis: true},
		{name: "not measured yet keeps the replicas it has", edit: func(res *resolved) { res.deployment = deployment(2) },
			mode: applyAll, replicas: 2, projectRedis: true},
		{name: "its own Secret: the projected copy goes", edit: func(res *resolved) {
			res.in.RedisSecret, res.deployment, res.observation = own, projected("c"), queued(15)
		}, mode: applyAll, replicas: 2, dropRedis: true},
		{name: "its own Secret, never projected", edit: func(res *resolved) { res.in.RedisSecret = own },
			mode: applyAll, replicas: 0},
		{name: "a broken reference keeps the workers as they are", edit: func(res *resolved) {
			res.problem, res.deployment, res.observation = &notReady{vconv1.ReasonReferenceNotFound, "Link x"}, deployment(4), queued(100)
		}, mode: applyNothing, reason: vconv1.ReasonReferenceNotFound, replicas: 4},
		{name: "an ingress conflict stops the workers", edit: func(res *resolved) {
			res.problem, res.deployment, res.observation = &notReady{vconv1.ReasonIngressConflict, "list a"}, deployment(4), queued(100)
		}, mode: applyReplicas, reason: vconv1.ReasonIngressConflict, replicas: 0},
		{name: "a missing Redis Secret is looked for again", edit: func(res *resolved) {
			res.problem = &notReady{vconv1.ReasonRedisSecretNotFound, "Secret r"}
		}, mode: applyNothing, reason: vconv1.ReasonRedisSecretNotFound, requeueAfter: 7 * time.Second},
		{name: "a Chain that does not render is refused", edit: func(res *resolved) { res.in.Chain.Spec.Links = []string{"gone"} },
			mode: applyNothing, reason: vconv1.ReasonInvalidChain},
		{name: "a disabled Chain runs nothing", edit: func(res *resolved) {
			res.in.Chain.Spec.Enabled, res.deployment, res.observation = ptr.To(false), deployment(3), queued(100)
		}, mode: applyAll, replicas: 0, projectRedis: true},
		{name: "a paused Chain writes nothing, its replicas kept", edit: func(res *resolved) {
			res.in.Chain.Annotations = map[string]string{vconv1.AnnotationPaused: "true"}
			res.deployment, res.observation = deployment(2), queued(100)
		}, mode: applyNothing, replicas: 2, paused: true},
		{name: "a paused Chain with a broken reference: paused, the problem kept for later", edit: func(res *resolved) {
			res.in.Chain.Annotations = map[string]string{vconv1.AnnotationPaused: "true"}
			res.problem, res.deployment = &notReady{vconv1.ReasonRedisSecretNotFound, "Secret r"}, deployment(1)
		}, mode: applyNothing, reason: vconv1.ReasonRedisSecretNotFound, replicas: 1, paused: true},
		{name: "paused only by \"true\"", edit: func(res *resolved) {
			res.in.Chain.Annotations = map[string]string{vconv1.AnnotationPaused: "yes"}
		}, mode: applyAll, projectRedis: true},
		{name: "a schedule open now sets the minimum and requeues at its end", edit: func(res *resolved) {
			res.in.Chain.Spec.Workers.Schedules = []vconv1.WorkerSchedule{{Start: "0 7 * * *", End: "0 17 * * *", TimeZone: "UTC", MinReplicas: 2, MaxReplicas: 10}}
			res.observation = queued(0)
		}, mode: applyAll, replicas: 2, projectRedis: true, requeueAfter: 10 * time.Hour},
		{name: "a schedule to come requeues at its start", edit: func(res *resolved) {
			res.in.Chain.Spec.Workers.Schedules = []vconv1.WorkerSchedule{{Start: "0 9 * * 1-5", End: "0 17 * * 1-5", TimeZone: "Europe/Berlin", MinReplicas: 2, MaxReplicas: 10}}
			res.observation = queued(0)
		}, mode: applyAll, replicas: 0, projectRedis: true, requeueAfter: time.Hour}, // 08:00 in Berlin
		{name: "a schedule that cannot be read keeps the workers as they are", edit: func(res *resolved) {
			res.in.Chain.Spec.Workers.Schedules = []vconv1.WorkerSchedule{{Start: "0 9 * * *", End: "0 17 * * *", TimeZone: "Mars/Olympus", MinReplicas: 2, MaxReplicas: 10}}
			res.deployment, res.observation = deployment(4), queued(0)
		}, mode: applyNothing, reason: vconv1.ReasonInvalidSchedule, replicas: 4, requeueAfter: 2 * time.Second}, // the scale-down it holds back
		{name: "below activation with a delay looks again at the next poll", edit: func(res *resolved) {
			res.in.Chain.Spec.Workers.ActivationQueueDepth = 10
			res.in.Chain.Spec.Workers.ActivationDelay = &metav1.Duration{Duration: time.Minute}
			res.observation = queued(5)
		}, mode: applyAll, replicas: 0, projectRedis: true, requeueAfter: 2 * time.Second},
		{name: "a Chain with followers keeps the worker that polls", edit: func(res *resolved) {
			res.in.Chain.Spec.Followers = []vconv1.ChainFollower{{Name: "up", URL: "https://up", EgressList: "out"}}
			res.observation = queued(0)
		}, mode: applyAll, replicas: 1, projectRedis: true},
		{name: "a Chain with followers, in a schedule open now that allows none", edit: func(res *resolved) {
			res.in.Chain.Spec.Followers = []vconv1.ChainFollower{{Name: "up", URL: "https://up", EgressList: "out"}}
			res.in.Chain.Spec.Workers.Schedules = []vconv1.WorkerSchedule{{Start: "0 7 * * *", End: "0 17 * * *", TimeZone: "UTC", MinReplicas: 0, MaxReplicas: 0}}
			res.observation = queued(0)
		}, mode: applyAll, replicas: 0, projectRedis: true, requeueAfter: 10 * time.Hour},
		{name: "a disruption budget asked for is applied", edit: func(res *resolved) {
			res.in.Chain.Spec.Workers.PodDisruptionBudget = &vconv1.WorkerDisruptionBudget{MaxUnavailable: ptr.To(intstr.FromInt32(1))}
		}, mode: applyAll, projectRedis: true, pdb: true},
		{name: "a disruption budget no longer asked for goes", edit: func(res *resolved) {
			res.pdb = &policyv1.PodDisruptionBudget{}
		}, mode: applyAll, projectRedis: true, dropPDB: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chain := &vconv1.Chain{
				ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns", Generation: 1},
				Spec: vconv1.ChainSpec{IngressLists: []string{"in"}, Workers: vconv1.WorkerSpec{
					MaxReplicas: 10, TargetQueueDepth: 10, Concurrency: 1, ScaleDownDelay: &metav1.Duration{Duration: time.Minute}}},
			}
			res := resolved{in: workload.Inputs{Chain: chain, Links: map[string]*vconv1.Link{}, Storages: map[string]*vconv1.Storage{}, Image: "worker:1", RedisURL: "redis://r:6379"}}
			tt.edit(&res)
			p := r.plan(chain, res, tt.state, t0)
			reason := ""
			if p.problem != nil {
				reason = p.problem.reason
			}
			if p.mode != tt.mode || reason != tt.reason || p.replicas != tt.replicas || p.requeueAfter != tt.requeueAfter {
				t.Fatalf("plan mode %d problem %q replicas %d requeue %v (decision %+v), want mode %d problem %q replicas %d requeue %v",
					p.mode, reason, p.replicas, p.requeueAfter, p.decision, tt.mode, tt.reason, tt.replicas, tt.requeueAfter)
			}
			if p.paused != tt.paused || (p.pdb != nil) != tt.pdb || (p.dropPDB != nil) != tt.dropPDB {
				t.Errorf("paused %t, pdb %t, drop pdb %t; want %t, %t, %t", p.paused, p.pdb != nil, p.dropPDB != nil, tt.paused, tt.pdb, tt.dropPDB)
			}
			if (p.redisSecret != nil) != tt.projectRedis || p.dropProjectedRedis != tt.dropRedis {
				t.Errorf("projected Secret %v, dropped %t; want %t, %t", p.redisSecret != nil, p.dropProjectedRedis, tt.projectRedis, tt.dropRedis)
			}
			if applied := p.configMap != nil && p.deployment != nil; applied != (tt.mode == applyAll) {
				t.Errorf("rendered objects %t for mode %d", applied, p.mode)
			}
			if p.deployment != nil && (p.deployment.Spec.Replicas == nil || *p.deployment.Spec.Replicas != p.replicas) {
				t.Errorf("Deployment replicas %v, plan %d", p.deployment.Spec.Replicas, p.replicas)
			}
		})
	}
}

// A scale-down held back by scaleDownDelay is looked at again at the next
// poll: nothing else would wake an idle Chain.
func TestPlanRequeuesDelayedScaleDown(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)
	r := &ChainReconciler{PollInterval: 2 * time.Second}
	chain := &vconv1.Chain{
		ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns"},
		Spec: vconv1.ChainSpec{IngressLists: []string{"in"}, Workers: vconv1.WorkerSpec{
			MaxReplicas: 10, TargetQueueDepth: 10, Concurrency: 1, ScaleDownDelay: &metav1.Duration{Duration: time.Minute}}},
	}
	res := resolved{
		in:          workload.Inputs{Chain: chain, Links: map[string]*vconv1.Link{}, Storages: map[string]*vconv1.Storage{}, Image: "worker:1", RedisURL: "redis://r:6379"},
		deployment:  deployment(5),
		observation: observer.Observation{Depths: queue.Depths{Ingress: 10}, At: t0, Measured: true},
	}
	p := r.plan(chain, res, autoscale.State{}, t0)
	if p.decision.Reason != autoscale.ReasonScaleDownDelayed || p.replicas != 5 || p.requeueAfter != 2*time.Second {
		t.Fatalf("decision %+v, replicas %d, requeue %v; want ScaleDownDelayed keeping 5, requeue after the poll interval", p.decision, p.replicas, p.requeueAfter)
	}
}
