package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/controllers"
	"github.com/vcon-operator/vcon-operator/internal/workload"
)

// TestDefaultRedisURLProjected: the operator's default Redis URL, password
// included, reaches the workers only through a Secret the operator owns in
// the Chain's namespace; no env var of the Deployment holds it. A Secret of
// that name the operator does not own is never taken over, and a Chain that
// moves to its own Secret has the projected copy removed.
func TestDefaultRedisURLProjected(t *testing.T) {
	var url string
	op := startOperator(t, func(r *controllers.ChainReconciler) {
		// redis-server ignores a password in the URL when it has none set.
		url = strings.Replace(r.DefaultRedisURL, "redis://", "redis://:op-default-pw@", 1)
		r.DefaultRedisURL = url
	})
	ctx := context.Background()
	op.create(t, op.chain("plain", []string{"plain-in"}))
	ch := op.waitChain(t, "plain", "Ready", all(ready, measured))

	dep := op.waitDeployment(t, "plain", "exists", func(*appsv1.Deployment) error { return nil })
	b, _ := json.Marshal(dep)
	if strings.Contains(string(b), "op-default-pw") {
		t.Errorf("the Deployment holds the operator's Redis password")
	}
	ps := dep.Spec.Template.Spec
	var found bool
	for _, c := range append(append([]corev1.Container{}, ps.InitContainers...), ps.Containers...) {
		for _, e := range c.Env {
			if e.Value != "" && strings.Contains(e.Value, "redis") {
				t.Errorf("container %s env %s=%q is a literal Redis URL", c.Name, e.Name, e.Value)
			}
			if e.Name == "REDIS_URL" {
				found = true
				if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || *e.ValueFrom.SecretKeyRef != *workload.ProjectedRedisRef("plain") {
					t.Errorf("REDIS_URL %+v, want a reference to the projected Secret", e)
				}
			}
		}
	}
	if !found {
		t.Error("the worker gets no REDIS_URL")
	}
	var s corev1.Secret
	if err := op.c.Get(ctx, op.key(workload.RedisSecretName("plain")), &s); err != nil {
		t.Fatalf("projected Secret: %v", err)
	}
	if string(s.Data[workload.RedisSecretKey]) != url {
		t.Errorf("projected Secret holds %q keys %d, want the default URL", "…", len(s.Data))
	}
	if s.Labels[workload.LabelChain] != "plain" {
		t.Errorf("projected Secret labels %v", s.Labels)
	}
	checkOwnedBy(t, "projected Secret", s.OwnerReferences, ch)

	// A Secret the operator did not make is left alone and reported.
	op.create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: workload.RedisSecretName("taken")}, StringData: map[string]string{"url": "mine"}})
	op.create(t, op.chain("taken", []string{"taken-in"}))
	op.waitChain(t, "taken", "RedisSecretConflict", hasCondition(vconv1.ConditionReady, metav1.ConditionFalse, vconv1.ReasonRedisSecretConflict, `"taken-redis"`))
	if err := op.c.Get(ctx, op.key(workload.RedisSecretName("taken")), &s); err != nil {
		t.Fatal(err)
	}
	if string(s.Data["url"]) != "mine" || len(s.OwnerReferences) != 0 {
		t.Errorf("the user's Secret was taken over: owners %v", s.OwnerReferences)
	}

	// Moving to its own Secret removes the projected copy.
	op.create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "own"}, StringData: map[string]string{"url": op.redis.URL()}})
	patchChain(t, op, "plain", func(c *vconv1.Chain) {
		c.Spec.Redis.URLSecretRef = &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "own"}, Key: "url"}
	})
	op.waitDeployment(t, "plain", "REDIS_URL from the Chain's Secret", func(d *appsv1.Deployment) error {
		e := d.Spec.Template.Spec.Containers[0].Env[0]
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != "own" {
			return fmt.Errorf("REDIS_URL %+v", e)
		}
		return nil
	})
	eventually(t, waitFor, "projected Secret removed", func() error {
		err := op.c.Get(ctx, op.key(workload.RedisSecretName("plain")), &s)
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (err %v)", err)
	})
}

// TestWorkerImageOverride: workers.image is honoured only under the
// operator's --allowed-worker-image-prefixes, matched on path boundaries.
// A refused image is reported and never rolled out: a new Chain gets no
// Deployment, a running one keeps its last accepted image.
func TestWorkerImageOverride(t *testing.T) {
	op := startOperator(t, func(r *controllers.ChainReconciler) {
		r.AllowedWorkerImagePrefixes = []string{"registry.example.com"}
	})
	ctx := context.Background()
	image := func(img string) func(*vconv1.Chain) { return func(c *vconv1.Chain) { c.Spec.Workers.Image = img } }

	const evil = "registry.example.com.evil.io/team/worker:1"
	op.create(t, op.chain("lookalike", []string{"lookalike-in"}, image(evil)))
	op.waitChain(t, "lookalike", "ImageNotAllowed", hasCondition(vconv1.ConditionReady, metav1.ConditionFalse, vconv1.ReasonImageNotAllowed, evil, "registry.example.com", "remove workers.image"))
	var d appsv1.Deployment
	if err := op.c.Get(ctx, op.key(workload.DeploymentName("lookalike")), &d); !apierrors.IsNotFound(err) {
		t.Errorf("a Deployment exists for a refused image (err %v, image %v)", err, d.Spec.Template.Spec.Containers)
	}

	const good = "registry.example.com/team/worker:2"
	op.create(t, op.chain("allowed", []string{"allowed-in"}, image(good)))
	op.waitChain(t, "allowed", "Ready", ready)
	op.waitDeployment(t, "allowed", "the allowed image", func(d *appsv1.Deployment) error {
		if img := d.Spec.Template.Spec.Containers[0].Image; img != good {
			return fmt.Errorf("image %s", img)
		}
		return nil
	})
	patchChain(t, op, "allowed", image(evil))
	op.waitChain(t, "allowed", "ImageNotAllowed", hasCondition(vconv1.ConditionReady, metav1.ConditionFalse, vconv1.ReasonImageNotAllowed, evil))
	if err := op.c.Get(ctx, op.key(workload.DeploymentName("allowed")), &d); err != nil {
		t.Fatal(err)
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; img != good {
		t.Errorf("the Deployment rolled to %s", img)
	}
}

// TestWorkerImageOverrideOffByDefault: with no prefixes, every override is
// refused; the operator's own image is not an override.
func TestWorkerImageOverrideOffByDefault(t *testing.T) {
	op := startOperator(t)
	op.create(t, op.chain("mine", []string{"mine-in"}, func(c *vconv1.Chain) { c.Spec.Workers.Image = "docker.io/attacker/worker:1" }))
	op.waitChain(t, "mine", "ImageNotAllowed", hasCondition(vconv1.ConditionReady, metav1.ConditionFalse, vconv1.ReasonImageNotAllowed, "allows no worker image override"))
	op.create(t, op.chain("same", []string{"same-in"}, func(c *vconv1.Chain) { c.Spec.Workers.Image = workerImage }))
	op.waitChain(t, "same", "Ready", ready)
}

// TestRedisAllowList: a Chain's own Redis must be on --allowed-redis-hosts;
// a refused one is reported by host (never with its password) and not
// connected to. The operator's default is always allowed.
func TestRedisAllowList(t *testing.T) {
	op := startOperator(t, func(r *controllers.ChainReconciler) {
		r.AllowedRedisHosts = []string{"*.redis.example.com", "127.0.0.1"}
	})
	op.create(t, op.chain("default", []string{"default-in"}))
	op.waitChain(t, "default", "Ready", all(ready, measured))

	// The test's redis-server is on 127.0.0.1, which the list allows.
	op.create(t, op.chain("allowed", []string{"allowed-in"}, func(c *vconv1.Chain) { c.Spec.Redis.URL = op.redis.URL() + "/3" }))
	op.waitChain(t, "allowed", "Ready", all(ready, measured))

	op.create(t, op.chain("literal", []string{"literal-in"}, func(c *vconv1.Chain) {
		c.Spec.Redis.URL = "redis://redis.example.com.evil.io:6379/0"
	}))
	op.waitChain(t, "literal", "RedisNotAllowed", hasCondition(vconv1.ConditionReady, metav1.ConditionFalse, vconv1.ReasonRedisNotAllowed,
		"redis.example.com.evil.io:6379", "*.redis.example.com", "--allowed-redis-hosts"))

	op.create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "evil"}, StringData: map[string]string{"url": "redis://user:hunter2-pw@evil.io/0"}})
	op.create(t, op.chain("secret", []string{"secret-in"}, func(c *vconv1.Chain) {
		c.Spec.Redis.URLSecretRef = &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "evil"}, Key: "url"}
	}))
	got := op.waitChain(t, "secret", "RedisNotAllowed", hasCondition(vconv1.ConditionReady, metav1.ConditionFalse, vconv1.ReasonRedisNotAllowed, "evil.io:6379"))
	b, _ := json.Marshal(got.Status)
	if strings.Contains(string(b), "hunter2") || strings.Contains(string(b), "user") {
		t.Errorf("the status holds the URL's credentials: %s", b)
	}
	var d appsv1.Deployment
	for _, name := range []string{"literal", "secret"} {
		if err := op.c.Get(context.Background(), op.key(workload.DeploymentName(name)), &d); !apierrors.IsNotFound(err) {
			t.Errorf("Chain %s on a refused Redis has a Deployment (err %v)", name, err)
		}
	}
}

// TestIngressConflictNormalised: the same server written differently is
// the same Redis for the one-consumer-per-list check, and a conflict with
// a Chain of another namespace does not name that Chain.
func TestIngressConflictNormalised(t *testing.T) {
	otherNS := testNamespace(t)
	t.Cleanup(func() {
		_ = kube.Client.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: otherNS}})
	})
	op := startOperatorSeeing(t, []string{otherNS})
	host, port, _ := strings.Cut(strings.TrimPrefix(op.redis.URL(), "redis://"), ":")

	// The first Chain is on the operator's default, redis://127.0.0.1:PORT.
	op.create(t, op.chain("a-first", []string{"shared", "shared-2"}))
	op.waitChain(t, "a-first", "Ready", ready)
	for i, url := range []string{
		"redis://" + host + ":" + port + "/0",
		"redis://user:pw@" + strings.ToUpper(host) + ":" + port,
		"rediss://:pw@" + host + ":" + port + "/0",
	} {
		name := fmt.Sprintf("b-second-%d", i)
		op.create(t, op.chain(name, []string{"shared"}, func(c *vconv1.Chain) { c.Spec.Redis.URL = url }))
		op.waitChain(t, name, "IngressConflict", hasCondition(vconv1.ConditionReady, metav1.ConditionFalse, "IngressConflict", `"shared"`, "Chain a-first"))
	}

	// Another namespace: a Chain there is "a Chain in another namespace".
	// Creation times have a resolution of one second, and a tie is broken
	// by namespace name (random here): create the late Chain in a later
	// second than a-first, so that it is the later one whatever the names.
	var first vconv1.Chain
	if err := op.c.Get(context.Background(), op.key("a-first"), &first); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(first.CreationTimestamp.Add(1100 * time.Millisecond)))
	late := op.chain("c-late", []string{"shared-2"})
	late.Namespace = otherNS
	if err := op.c.Create(context.Background(), asApplied(t, late)); err != nil {
		t.Fatal(err)
	}
	var c vconv1.Chain
	eventually(t, waitFor, "IngressConflict in the other namespace", func() error {
		if err := op.c.Get(context.Background(), client.ObjectKey{Namespace: otherNS, Name: "c-late"}, &c); err != nil {
			return err
		}
		return hasCondition(vconv1.ConditionReady, metav1.ConditionFalse, "IngressConflict", `"shared-2"`, "a Chain in another namespace")(&c)
	})
	if cond := apimeta.FindStatusCondition(c.Status.Conditions, string(vconv1.ConditionReady)); strings.Contains(cond.Message, "a-first") || strings.Contains(cond.Message, op.ns) {
		t.Errorf("the message names the other namespace's Chain: %s", cond.Message)
	}
}

// TestEnvReferenceRefused: a Link whose options read a variable its own
// Secret references do not provide (here the worker's REDIS_URL, sent to a
// webhook) is refused with the option and the variable named, and its
// config is not rendered: a running Chain keeps its last good ConfigMap.
func TestEnvReferenceRefused(t *testing.T) {
	op := startOperator(t)
	ctx := context.Background()
	op.create(t, tagLink("hook", `{"tags":["ok"]}`), op.chain("leaky", []string{"leaky-in"}, func(c *vconv1.Chain) { c.Spec.Links = []string{"hook"} }))
	op.waitChain(t, "leaky", "Ready", ready)
	var cm corev1.ConfigMap
	if err := op.c.Get(ctx, op.key(workload.ConfigMapName("leaky")), &cm); err != nil {
		t.Fatal(err)
	}
	good := cm.Data[workload.ConfigKey]

	var l vconv1.Link
	if err := op.c.Get(ctx, op.key("hook"), &l); err != nil {
		t.Fatal(err)
	}
	l.Spec.Options.Raw = []byte(`{"tags":["https://hook.example/?r=${REDIS_URL}"]}`)
	if err := op.c.Update(ctx, &l); err != nil {
		t.Fatal(err)
	}
	op.waitChain(t, "leaky", "EnvReferenceNotAllowed", hasCondition(vconv1.ConditionReady, metav1.ConditionFalse, vconv1.ReasonEnvReferenceNotAllowed,
		"link hook", "options.tags[0]", "${REDIS_URL}"))
	if err := op.c.Get(ctx, op.key(workload.ConfigMapName("leaky")), &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Data[workload.ConfigKey] != good {
		t.Errorf("the refused config was rendered:\n%s", cm.Data[workload.ConfigKey])
	}

	// Declared from its own Secret, the same name is the Link's own
	// variable, not the worker's.
	l.Spec.Env = []vconv1.SecretEnv{{Name: "REDIS_URL", SecretKeyRef: corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "hook"}, Key: "r"}}}
	var fresh vconv1.Link
	if err := op.c.Get(ctx, op.key("hook"), &fresh); err != nil {
		t.Fatal(err)
	}
	fresh.Spec.Env = l.Spec.Env
	if err := op.c.Update(ctx, &fresh); err != nil {
		t.Fatal(err)
	}
	op.waitChain(t, "leaky", "Ready", ready)
	op.waitDeployment(t, "leaky", "the Link's own variable", func(d *appsv1.Deployment) error {
		n := 0
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			if e.Name == "REDIS_URL" {
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("%d REDIS_URL variables", n)
		}
		if !strings.Contains(fmt.Sprint(d.Spec.Template.Spec.Containers[0].Env), workload.StepEnvName("link", "hook", "REDIS_URL")) {
			return fmt.Errorf("env %v lacks the Link's variable", d.Spec.Template.Spec.Containers[0].Env)
		}
		return nil
	})
}
