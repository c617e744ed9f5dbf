package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/redis/go-redis/v9"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/controllers"
	"github.com/vcon-operator/vcon-operator/internal/config"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/workload"
)

func tagLink(name, options string) *vconv1.Link {
	return &vconv1.Link{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       vconv1.LinkSpec{Module: "links.tag", Options: &apiextensionsv1.JSON{Raw: []byte(options)}},
	}
}

func fileStorage(name string) *vconv1.Storage {
	return &vconv1.Storage{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       vconv1.StorageSpec{Module: "storage.file", Options: &apiextensionsv1.JSON{Raw: []byte(`{"path":"/data","max_files":1000}`)}},
	}
}

func ready(ch *vconv1.Chain) error {
	return hasCondition(vconv1.ConditionReady, metav1.ConditionTrue, "Running")(ch)
}

// measured: the observer's figures have reached the status.
func measured(ch *vconv1.Chain) error {
	return hasCondition(vconv1.ConditionRedisReachable, metav1.ConditionTrue, "Measured")(ch)
}

// TestApplyBuildsConfigMapAndDeployment: kubectl apply of a Chain, its Links
// and Storage gives the rendered config and a worker Deployment owned by
// the Chain; the pod template changes exactly when the config does.
func TestApplyBuildsConfigMapAndDeployment(t *testing.T) {
	op := startOperator(t)
	ctx := context.Background()
	op.create(t, tagLink("tag", `{"tags":["billing"],"weight":3}`), fileStorage("archive"),
		op.chain("billing", []string{"billing-in"}, func(c *vconv1.Chain) {
			c.Spec.Links = []string{"tag"}
			c.Spec.Storages = []string{"archive"}
			c.Spec.EgressLists = []string{"billing-out"}
			c.Spec.Timeout = &metav1.Duration{Duration: 90 * time.Second}
		}))
	ch := op.waitChain(t, "billing", "Ready", ready)

	var cm corev1.ConfigMap
	if err := op.c.Get(ctx, op.key(workload.ConfigMapName("billing")), &cm); err != nil {
		t.Fatal(err)
	}
	got, err := config.Parse([]byte(cm.Data[workload.ConfigKey]), nil)
	if err != nil {
		t.Fatalf("the ConfigMap's config does not parse: %v\n%s", err, cm.Data[workload.ConfigKey])
	}
	want := &config.Config{
		Links:        map[string]config.Module{"tag": {Module: "links.tag", Options: map[string]any{"tags": []any{"billing"}, "weight": int64(3)}}},
		Storages:     map[string]config.Module{"archive": {Module: "storage.file", Options: map[string]any{"path": "/data", "max_files": int64(1000)}}},
		StorageOrder: []string{"archive"},
		Chains: map[string]config.Chain{"billing": {
			Links: []string{"tag"}, Storages: []string{"archive"}, IngressLists: []string{"billing-in"}, EgressLists: []string{"billing-out"},
			Enabled: true, Timeout: 90 * time.Second, HasLinksKey: true, MaxDeliveries: 3,
			// The CRD's defaults, filled in by the API server.
			Retry:          &config.Retry{Attempts: 5, InitialBackoff: 30 * time.Second, MaxBackoff: 10 * time.Minute, Jitter: 0.2},
			StorageFailure: config.StorageFailureDeadLetterVcon,
		}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("config:\n got %#v\nwant %#v", got, want)
	}

	dep := op.waitDeployment(t, "billing", "exists", func(*appsv1.Deployment) error { return nil })
	for what, refs := range map[string][]metav1.OwnerReference{"ConfigMap": cm.OwnerReferences, "Deployment": dep.OwnerReferences} {
		checkOwnedBy(t, what, refs, ch)
	}
	if *dep.Spec.Replicas != 0 {
		t.Errorf("an idle Chain with minReplicas 0 runs %d workers", *dep.Spec.Replicas)
	}
	pod := dep.Spec.Template
	if pod.Spec.Containers[0].Image != workerImage {
		t.Errorf("image %s", pod.Spec.Containers[0].Image)
	}
	if g := *pod.Spec.TerminationGracePeriodSeconds; g <= 90 {
		t.Errorf("terminationGracePeriodSeconds %d is not longer than the 90s chain timeout", g)
	}
	hash := pod.Annotations[workload.AnnotationConfigHash]
	if hash == "" {
		t.Fatal("no config-hash annotation on the pod template")
	}

	// A change that is not the workers' config (scaling bounds, status
	// written by others) must not roll them.
	patchChain(t, op, "billing", func(c *vconv1.Chain) { c.Spec.Workers.MaxReplicas = 7 })
	op.waitChain(t, "billing", "observes generation 2", func(c *vconv1.Chain) error {
		if c.Status.ObservedGeneration != c.Generation || c.Generation < 2 {
			return fmt.Errorf("observedGeneration %d, generation %d", c.Status.ObservedGeneration, c.Generation)
		}
		return nil
	})
	var link vconv1.Link
	if err := op.c.Get(ctx, op.key("tag"), &link); err != nil {
		t.Fatal(err)
	}
	apimeta.SetStatusCondition(&link.Status.Conditions, metav1.Condition{Type: "Audited", Status: metav1.ConditionTrue, Reason: "Test", Message: "unrelated"})
	if err := op.c.Status().Update(ctx, &link); err != nil {
		t.Fatal(err)
	}
	after := op.waitDeployment(t, "billing", "still there", func(*appsv1.Deployment) error { return nil })
	if !reflect.DeepEqual(after.Spec.Template, dep.Spec.Template) {
		t.Errorf("the pod template changed on a scaling or status change: hash %s -> %s", hash, after.Spec.Template.Annotations[workload.AnnotationConfigHash])
	}

	// A Link's options are the config: the workers roll.
	if err := op.c.Get(ctx, op.key("tag"), &link); err != nil {
		t.Fatal(err)
	}
	link.Spec.Options = &apiextensionsv1.JSON{Raw: []byte(`{"tags":["billing","vip"],"weight":3}`)}
	if err := op.c.Update(ctx, &link); err != nil {
		t.Fatal(err)
	}
	op.waitDeployment(t, "billing", "a new config hash", func(d *appsv1.Deployment) error {
		if h := d.Spec.Template.Annotations[workload.AnnotationConfigHash]; h == hash {
			return fmt.Errorf("hash still %s", h)
		}
		return nil
	})
	eventually(t, waitFor, "ConfigMap holds the new options", func() error {
		if err := op.c.Get(ctx, op.key(workload.ConfigMapName("billing")), &cm); err != nil {
			return err
		}
		if !strings.Contains(cm.Data[workload.ConfigKey], "vip") {
			return fmt.Errorf("config:\n%s", cm.Data[workload.ConfigKey])
		}
		return nil
	})
}

// checkOwnedBy: envtest runs no garbage collector, so "deleting a Chain
// removes its children" is checked as the owner reference that makes the
// cluster's collector do it.
func checkOwnedBy(t *testing.T, what string, refs []metav1.OwnerReference, ch *vconv1.Chain) {
	t.Helper()
	if len(refs) != 1 {
		t.Fatalf("%s owner references %+v, want the Chain", what, refs)
	}
	r := refs[0]
	if r.UID != ch.UID || r.Kind != "Chain" || r.Name != ch.Name || r.APIVersion != vconv1.GroupVersion.String() {
		t.Errorf("%s owner %+v, want Chain %s uid %s", what, r, ch.Name, ch.UID)
	}
	if r.Controller == nil || !*r.Controller || r.BlockOwnerDeletion == nil || !*r.BlockOwnerDeletion {
		t.Errorf("%s owner %+v: want controller=true and blockOwnerDeletion=true", what, r)
	}
}

func patchChain(t *testing.T, op *operator, name string, change func(*vconv1.Chain)) {
	t.Helper()
	var ch vconv1.Chain
	if err := op.c.Get(context.Background(), op.key(name), &ch); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(ch.DeepCopy())
	change(&ch)
	if err := op.c.Patch(context.Background(), &ch, patch); err != nil {
		t.Fatal(err)
	}
}

// TestMissingReference: a Chain naming a Link or Storage that does not exist
// says which, and runs as soon as it appears, without waiting for a resync
// (the manager's resync is hours).
func TestMissingReference(t *testing.T) {
	redact := &vconv1.Link{ObjectMeta: metav1.ObjectMeta{Name: "redact"}, Spec: vconv1.LinkSpec{
		Module: workload.RedactModule, Options: &apiextensionsv1.JSON{Raw: []byte(`{"original_storages":["late-vault"]}`)}}}
	tests := []struct {
		name    string
		chain   func(*vconv1.Chain)
		missing string
		create  client.Object
		before  []client.Object // created with the Chain
	}{
		{"link", func(c *vconv1.Chain) { c.Spec.Links = []string{"late-link"} }, "Link late-link", tagLink("late-link", `{"tags":["x"]}`), nil},
		{"storage", func(c *vconv1.Chain) { c.Spec.Links = []string{}; c.Spec.Storages = []string{"late-store"} }, "Storage late-store", fileStorage("late-store"), nil},
		// links.redact's original storage is not in spec.storages, yet is
		// rendered into the workers' config: it must exist, and its
		// creation must reach the Chain.
		{"original-storage", func(c *vconv1.Chain) { c.Spec.Links = []string{"redact"} }, "Storage late-vault", fileStorage("late-vault"), []client.Object{redact}},
	}
	op := startOperator(t)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "waits-for-" + tt.name
			op.create(t, append(tt.before, op.chain(name, []string{fmt.Sprintf("in-%d", i)}, tt.chain))...)
			op.waitChain(t, name, "ReferenceNotFound", hasCondition(vconv1.ConditionReady, metav1.ConditionFalse, "ReferenceNotFound", tt.missing))
			if err := op.c.Get(context.Background(), op.key(workload.DeploymentName(name)), &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
				t.Errorf("a Chain with a missing reference got a Deployment (err %v)", err)
			}
			start := time.Now()
			op.create(t, tt.create)
			op.waitChain(t, name, "Ready once the reference exists", ready)
			op.waitDeployment(t, name, "exists", func(*appsv1.Deployment) error { return nil })
			t.Logf("Ready %v after the %s was created", time.Since(start).Round(time.Millisecond), tt.name)
			if tt.name != "original-storage" {
				return
			}
			// An edit of the original storage reaches the workers' config,
			// though the Chain does not name it.
			ctx := context.Background()
			var vault vconv1.Storage
			if err := op.c.Get(ctx, op.key("late-vault"), &vault); err != nil {
				t.Fatal(err)
			}
			vault.Spec.Options = &apiextensionsv1.JSON{Raw: []byte(`{"path":"/restricted-v2"}`)}
			if err := op.c.Update(ctx, &vault); err != nil {
				t.Fatal(err)
			}
			eventually(t, waitFor, "ConfigMap holds the original storage's new options", func() error {
				var cm corev1.ConfigMap
				if err := op.c.Get(ctx, op.key(workload.ConfigMapName(name)), &cm); err != nil {
					return err
				}
				if !strings.Contains(cm.Data[workload.ConfigKey], "/restricted-v2") {
					return fmt.Errorf("config:\n%s", cm.Data[workload.ConfigKey])
				}
				return nil
			})
		})
	}

	t.Run("unknown module", func(t *testing.T) {
		bad := &vconv1.Link{ObjectMeta: metav1.ObjectMeta{Name: "bad"}, Spec: vconv1.LinkSpec{Module: "links.no_such_module"}}
		op.create(t, bad, op.chain("uses-bad", []string{"in-bad"}, func(c *vconv1.Chain) { c.Spec.Links = []string{"bad"} }))
		op.waitChain(t, "uses-bad", "ReferenceNotReady", hasCondition(vconv1.ConditionReady, metav1.ConditionFalse, "ReferenceNotReady", "Link bad"))
	})
}

// TestScalingFromQueue: uuids pushed onto the ingress list show in the
// INGRESS column and scale the Deployment to
// min(ceil(queued/targetQueueDepth), maxReplicas).
func TestScalingFromQueue(t *testing.T) {
	tests := []struct {
		name          string
		pushed        int
		target        int64
		max           int32
		wantReplicas  int32
		wantLimited   bool
		wantLimitText string
	}{
		{name: "within limits", pushed: 300, target: 100, max: 10, wantReplicas: 3},
		{name: "capped", pushed: 300, target: 50, max: 4, wantReplicas: 4, wantLimited: true, wantLimitText: "wants 6 workers; workers.maxReplicas is 4"},
		{name: "one item wakes one worker", pushed: 1, target: 100, max: 10, wantReplicas: 1},
	}
	op := startOperator(t)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, list := fmt.Sprintf("scale-%d", i), fmt.Sprintf("ingress-%d", i)
			op.create(t, op.chain(name, []string{list}, func(c *vconv1.Chain) {
				c.Spec.Workers.MaxReplicas = tt.max
				c.Spec.Workers.TargetQueueDepth = tt.target
			}))
			op.waitChain(t, name, "measured", all(ready, measured))
			op.waitDeployment(t, name, "idle at zero", replicasAre(0))

			if err := op.rdb.RPush(context.Background(), list, uuids(name, tt.pushed)...).Err(); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			op.waitDeployment(t, name, "scaled", replicasAre(tt.wantReplicas))
			t.Logf("scaled 0 -> %d in %v (poll %v)", tt.wantReplicas, time.Since(start).Round(time.Millisecond), pollInterval)
			limited := metav1.ConditionFalse
			reason := "WithinLimits"
			if tt.wantLimited {
				limited, reason = metav1.ConditionTrue, "AtMaxReplicas"
			}
			op.waitChain(t, name, "status", all(
				func(c *vconv1.Chain) error {
					if c.Status.Queue.Ingress != int64(tt.pushed) || c.Status.Replicas != tt.wantReplicas || c.Status.Workers != fmt.Sprintf("0/%d", tt.wantReplicas) {
						return fmt.Errorf("queue %+v replicas %d workers %q", c.Status.Queue, c.Status.Replicas, c.Status.Workers)
					}
					return nil
				},
				hasCondition(vconv1.ConditionScalingLimited, limited, reason, tt.wantLimitText),
			))
			waitEvent(t, op, name, "ScaledFromZero", fmt.Sprintf("from 0 to %d", tt.wantReplicas))
			if n := scalingDecisionCount(t, op.ns, name); n < 1 {
				t.Errorf("vcon_operator_scaling_decisions_total for %s = %v, want at least 1", name, n)
			}
			if got := printerColumn(t, op, name, "Ingress"); got != fmt.Sprint(tt.pushed) {
				t.Errorf("kubectl get chains shows INGRESS %s, want %d", got, tt.pushed)
			}
		})
	}
}

// TestRetriesInStatus: vCons waiting for a delayed retry hold no worker
// and show as RETRY with the next due time; a retry coming due wakes the
// Chain from zero workers, the operator moving it to the ingress list.
func TestRetriesInStatus(t *testing.T) {
	op := startOperator(t)
	ctx := context.Background()
	op.create(t, op.chain("retrying", []string{"calls"}))
	op.waitChain(t, "retrying", "measured", all(ready, measured))
	later := time.Now().Add(time.Hour)
	soon := time.Now().Add(3 * time.Second)
	if err := op.rdb.ZAdd(ctx, queue.RetryKey("calls"),
		redis.Z{Score: float64(later.UnixMilli()), Member: "waits-an-hour"},
		redis.Z{Score: float64(soon.UnixMilli()), Member: "due-soon"}).Err(); err != nil {
		t.Fatal(err)
	}
	op.waitChain(t, "retrying", "two retries waiting", func(c *vconv1.Chain) error {
		q := c.Status.Queue
		if q.Retry != 2 || q.NextRetryAt == nil || q.NextRetryAt.Sub(soon).Abs() > 2*time.Second {
			return fmt.Errorf("queue %+v, want 2 retries, next due about %s", q, soon.Format(time.RFC3339))
		}
		return nil
	})
	if got := printerColumn(t, op, "retrying", "Retry"); got != "2" {
		t.Errorf("kubectl get chains shows RETRY %s, want 2", got)
	}
	op.waitDeployment(t, "retrying", "still idle while the retries wait", replicasAre(0))
	op.waitDeployment(t, "retrying", "woken by the due retry", replicasAre(1))
	if head := op.rdb.LIndex(ctx, "calls", 0).Val(); head != "due-soon" {
		t.Errorf("head of the ingress list %q, want the promoted retry", head)
	}
	op.waitChain(t, "retrying", "one retry left", func(c *vconv1.Chain) error {
		if q := c.Status.Queue; q.Retry != 1 || q.Ingress != 1 || q.NextRetryAt == nil || q.NextRetryAt.Sub(later).Abs() > 2*time.Second {
			return fmt.Errorf("queue %+v", q)
		}
		return nil
	})
}

// printerColumn reads one column of `kubectl get chain NAME` (the API
// server's Table rendering of the CRD's printer columns).
func printerColumn(t *testing.T, op *operator, name, column string) string {
	t.Helper()
	hc, err := rest.HTTPClientFor(kube.Config)
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("%s/apis/%s/namespaces/%s/chains/%s", strings.TrimSuffix(kube.Config.Host, "/"), vconv1.GroupVersion.String(), op.ns, name)
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var table metav1.Table
	if err := json.Unmarshal(body, &table); err != nil || len(table.Rows) != 1 {
		t.Fatalf("table: %v rows %d\n%s", err, len(table.Rows), body)
	}
	for i, c := range table.ColumnDefinitions {
		if c.Name == column {
			return fmt.Sprint(table.Rows[0].Cells[i])
		}
	}
	t.Fatalf("no column %s in %+v", column, table.ColumnDefinitions)
	return ""
}

// TestDLQ: dead letters set DLQEmpty=False with the count.
func TestDLQ(t *testing.T) {
	op := startOperator(t)
	ctx := context.Background()
	op.create(t, op.chain("dlq", []string{"calls"}))
	op.waitChain(t, "dlq", "DLQEmpty", hasCondition(vconv1.ConditionDLQEmpty, metav1.ConditionTrue, "Empty"))
	if err := op.rdb.RPush(ctx, queue.DLQKey("calls"), uuids("dead", 3)...).Err(); err != nil {
		t.Fatal(err)
	}
	ch := op.waitChain(t, "dlq", "DLQEmpty=False", hasCondition(vconv1.ConditionDLQEmpty, metav1.ConditionFalse, "DeadLetters", "3 vCons"))
	if ch.Status.Queue.DLQ != 3 {
		t.Errorf("status.queue.dlq %d, want 3", ch.Status.Queue.DLQ)
	}
	waitEvent(t, op, "dlq", "DLQFilling", "3 vCons dead-lettered")
	if err := op.rdb.Del(ctx, queue.DLQKey("calls")).Err(); err != nil {
		t.Fatal(err)
	}
	op.waitChain(t, "dlq", "DLQEmpty again", hasCondition(vconv1.ConditionDLQEmpty, metav1.ConditionTrue, "Empty"))
}

// TestStorageDLQ: a Chain's storages' DLQs are measured into
// status.queue.storageDLQ and keep DLQEmpty False until they are emptied.
func TestStorageDLQ(t *testing.T) {
	op := startOperator(t)
	ctx := context.Background()
	op.create(t, fileStorage("archive"), op.chain("stores", []string{"stored"}, func(c *vconv1.Chain) {
		c.Spec.Storages = []string{"archive"}
		c.Spec.StorageFailure = vconv1.StorageFailureDeadLetterStorage
	}))
	op.waitChain(t, "stores", "DLQEmpty", hasCondition(vconv1.ConditionDLQEmpty, metav1.ConditionTrue, "Empty"))
	if err := op.rdb.RPush(ctx, queue.StorageDLQKey("archive"), uuids("unwritten", 2)...).Err(); err != nil {
		t.Fatal(err)
	}
	ch := op.waitChain(t, "stores", "DLQEmpty=False", hasCondition(vconv1.ConditionDLQEmpty, metav1.ConditionFalse, "DeadLetters", "2 failed writes"))
	if ch.Status.Queue.StorageDLQ != 2 || ch.Status.Queue.DLQ != 0 {
		t.Errorf("status.queue storageDLQ %d, dlq %d; want 2, 0", ch.Status.Queue.StorageDLQ, ch.Status.Queue.DLQ)
	}
	waitEvent(t, op, "stores", "DLQFilling", "2 failed storage writes dead-lettered")
	if err := op.rdb.Del(ctx, queue.StorageDLQKey("archive")).Err(); err != nil {
		t.Fatal(err)
	}
	op.waitChain(t, "stores", "DLQEmpty again", hasCondition(vconv1.ConditionDLQEmpty, metav1.ConditionTrue, "Empty"))
}

// TestRedisOutage: Redis going away is reported, the last figures are kept
// and marked stale, and Redis coming back is noticed within a poll or two.
func TestRedisOutage(t *testing.T) {
	op := startOperator(t)
	ctx := context.Background()
	op.create(t, op.chain("outage", []string{"calls"}, func(c *vconv1.Chain) { c.Spec.Workers.TargetQueueDepth = 5 }))
	if err := op.rdb.RPush(ctx, "calls", uuids("q", 7)...).Err(); err != nil {
		t.Fatal(err)
	}
	op.waitChain(t, "outage", "measured 7", func(c *vconv1.Chain) error {
		if err := measured(c); err != nil {
			return err
		}
		if c.Status.Queue.Ingress != 7 {
			return fmt.Errorf("ingress %d", c.Status.Queue.Ingress)
		}
		return nil
	})
	op.waitDeployment(t, "outage", "2 workers", replicasAre(2))

	op.redis.Stop()
	ch := op.waitChain(t, "outage", "RedisReachable=False", all(
		hasCondition(vconv1.ConditionRedisReachable, metav1.ConditionFalse, "RedisUnreachable"),
		hasCondition(vconv1.ConditionReady, metav1.ConditionFalse, "RedisUnreachable"),
	))
	if !ch.Status.Queue.Stale || ch.Status.Queue.Ingress != 7 {
		t.Errorf("queue %+v: want the last figures (ingress 7) marked stale", ch.Status.Queue)
	}
	// Unknown demand: the workers are kept, not scaled to zero.
	op.waitDeployment(t, "outage", "workers kept", replicasAre(2))

	op.redis.Start()
	// Counted in polls, not seconds, so that a loaded machine does not
	// make it flaky: the poll under way when Redis came back may still
	// fail, the next one must succeed.
	polls := op.obs.Polls()
	eventually(t, waitFor, "the observer measures again", func() error {
		if obs, ok := op.obs.Get(op.key("outage")); !ok || obs.Stale {
			return fmt.Errorf("observation %+v", obs)
		}
		return nil
	})
	if n := op.obs.Polls() - polls; n > 2 {
		t.Errorf("the observer needed %d polls to measure again after Redis returned, want at most 2", n)
	}
	op.waitChain(t, "outage", "RedisReachable=True", all(measured, ready, func(c *vconv1.Chain) error {
		if c.Status.Queue.Stale {
			return fmt.Errorf("still stale")
		}
		return nil
	}))
}

// TestDisabled: enabled: false runs no workers even with work queued.
func TestDisabled(t *testing.T) {
	op := startOperator(t)
	ctx := context.Background()
	if err := op.rdb.RPush(ctx, "paused", uuids("p", 50)...).Err(); err != nil {
		t.Fatal(err)
	}
	op.create(t, op.chain("paused", []string{"paused"}, func(c *vconv1.Chain) { c.Spec.Enabled = ptr.To(false) }))
	op.waitChain(t, "paused", "Disabled", all(
		hasCondition(vconv1.ConditionReady, metav1.ConditionFalse, "Disabled"),
		func(c *vconv1.Chain) error {
			if c.Status.Queue.Ingress != 50 {
				return fmt.Errorf("ingress %d: a disabled chain is still observed", c.Status.Queue.Ingress)
			}
			return nil
		}))
	op.waitDeployment(t, "paused", "zero workers", replicasAre(0))

	patchChain(t, op, "paused", func(c *vconv1.Chain) { c.Spec.Enabled = ptr.To(true) })
	op.waitDeployment(t, "paused", "enabled: workers", replicasAre(1))
	op.waitChain(t, "paused", "Ready", ready)
	patchChain(t, op, "paused", func(c *vconv1.Chain) { c.Spec.Enabled = ptr.To(false) })
	op.waitDeployment(t, "paused", "disabled again: zero workers at once", replicasAre(0))
}

// TestIngressConflict: two Chains draining one list on one Redis would
// split its vCons between two pipelines; the later one is stopped and says
// why, and takes over when the first goes away.
func TestIngressConflict(t *testing.T) {
	op := startOperator(t)
	ctx := context.Background()
	op.create(t, op.chain("a-first", []string{"shared", "own-a"}))
	op.waitChain(t, "a-first", "Ready", ready)
	op.create(t, op.chain("b-second", []string{"own-b", "shared"}))
	op.waitChain(t, "b-second", "IngressConflict", all(
		hasCondition(vconv1.ConditionReady, metav1.ConditionFalse, "IngressConflict", `"shared"`, "a-first"),
		func(c *vconv1.Chain) error {
			if c.Status.Replicas != 0 {
				return fmt.Errorf("replicas %d", c.Status.Replicas)
			}
			return nil
		}))
	if err := op.rdb.RPush(ctx, "shared", uuids("s", 10)...).Err(); err != nil {
		t.Fatal(err)
	}
	op.waitDeployment(t, "a-first", "the first Chain works", replicasAre(1))
	var d appsv1.Deployment
	if err := op.c.Get(ctx, op.key(workload.DeploymentName("b-second")), &d); err == nil && *d.Spec.Replicas != 0 {
		t.Errorf("the conflicting Chain runs %d workers", *d.Spec.Replicas)
	}
	// Still re-asserted after the queue moved.
	op.waitChain(t, "b-second", "still IngressConflict", hasCondition(vconv1.ConditionReady, metav1.ConditionFalse, "IngressConflict"))

	// Another Redis is another queue: no conflict.
	other := op.chain("c-elsewhere", []string{"shared"}, func(c *vconv1.Chain) { c.Spec.Redis.URL = "redis://127.0.0.1:1/0" })
	op.create(t, other)
	op.waitChain(t, "c-elsewhere", "no conflict on another Redis", func(c *vconv1.Chain) error {
		r := apimeta.FindStatusCondition(c.Status.Conditions, string(vconv1.ConditionReady))
		if r == nil || r.Reason == "IngressConflict" {
			return fmt.Errorf("Ready %+v", r)
		}
		return nil
	})

	// The first Chain goes: the second now owns the list and works.
	if err := op.c.Delete(ctx, &vconv1.Chain{ObjectMeta: metav1.ObjectMeta{Name: "a-first", Namespace: op.ns}}); err != nil {
		t.Fatal(err)
	}
	op.waitChain(t, "b-second", "Ready after a-first was deleted", ready)
	op.waitDeployment(t, "b-second", "works the shared list", replicasAre(1))
}

// TestChainDeleted: children are owned (the cluster's garbage collector
// removes them; envtest has none) and the Chain's series disappear.
func TestChainDeleted(t *testing.T) {
	op := startOperator(t)
	ctx := context.Background()
	op.create(t, op.chain("doomed", []string{"doomed-in"}), op.chain("kept", []string{"kept-in"}))
	ch := op.waitChain(t, "doomed", "measured", all(ready, measured))
	op.waitChain(t, "kept", "measured", all(ready, measured))
	dep := op.waitDeployment(t, "doomed", "exists", func(*appsv1.Deployment) error { return nil })
	checkOwnedBy(t, "Deployment", dep.OwnerReferences, ch)
	var cm corev1.ConfigMap
	if err := op.c.Get(ctx, op.key(workload.ConfigMapName("doomed")), &cm); err != nil {
		t.Fatal(err)
	}
	checkOwnedBy(t, "ConfigMap", cm.OwnerReferences, ch)

	eventually(t, waitFor, "series of doomed", func() error {
		if n := op.seriesOfChain(t, "doomed"); n < 8 {
			return fmt.Errorf("%d series", n)
		}
		return nil
	})
	keptBefore := op.seriesOfChain(t, "kept")

	if err := op.c.Delete(ctx, ch); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitFor, "series of doomed gone", func() error {
		if n := op.seriesOfChain(t, "doomed"); n != 0 {
			return fmt.Errorf("%d series left", n)
		}
		if _, ok := op.obs.Snapshot()[op.key("doomed")]; ok {
			return fmt.Errorf("the observer still measures the deleted Chain")
		}
		return nil
	})
	if n := scalingDecisionCount(t, op.ns, "doomed"); n != 0 {
		t.Errorf("scaling decision series of the deleted Chain remain: %v", n)
	}
	if n := op.seriesOfChain(t, "kept"); n != keptBefore {
		t.Errorf("the other Chain's series went from %d to %d", keptBefore, n)
	}
}

// TestConditionsStable: every condition carries the generation it
// describes, and re-asserting a condition keeps its lastTransitionTime.
func TestConditionsStable(t *testing.T) {
	op := startOperator(t)
	op.create(t, op.chain("stable", []string{"stable-in"}))
	before := op.waitChain(t, "stable", "measured", all(ready, measured,
		hasCondition(vconv1.ConditionDLQEmpty, metav1.ConditionTrue, ""),
		hasCondition(vconv1.ConditionScalingLimited, metav1.ConditionFalse, "")))
	if before.Status.ObservedGeneration != before.Generation {
		t.Errorf("status.observedGeneration %d, generation %d", before.Status.ObservedGeneration, before.Generation)
	}

	patchChain(t, op, "stable", func(c *vconv1.Chain) { c.Spec.Workers.MaxReplicas = 3 })
	after := op.waitChain(t, "stable", "conditions of generation 2", func(c *vconv1.Chain) error {
		if c.Generation == before.Generation {
			return fmt.Errorf("generation unchanged")
		}
		for _, cond := range c.Status.Conditions {
			if cond.ObservedGeneration != c.Generation {
				return fmt.Errorf("%s observedGeneration %d, generation %d", cond.Type, cond.ObservedGeneration, c.Generation)
			}
		}
		if c.Status.ObservedGeneration != c.Generation {
			return fmt.Errorf("status.observedGeneration %d", c.Status.ObservedGeneration)
		}
		return nil
	})
	for _, b := range before.Status.Conditions {
		a := apimeta.FindStatusCondition(after.Status.Conditions, b.Type)
		if a == nil {
			t.Errorf("condition %s disappeared", b.Type)
			continue
		}
		if a.Status == b.Status && !a.LastTransitionTime.Equal(&b.LastTransitionTime) {
			t.Errorf("%s re-asserted as %s moved lastTransitionTime %v -> %v", b.Type, a.Status, b.LastTransitionTime, a.LastTransitionTime)
		}
	}
}

// TestIdleChainNotRewritten: an idle Chain's status is written when
// something changes, not at every poll.
func TestIdleChainNotRewritten(t *testing.T) {
	op := startOperator(t)
	ctx := context.Background()
	op.create(t, op.chain("idle", []string{"idle-in"}, func(c *vconv1.Chain) { c.Spec.EgressLists = []string{"idle-out"} }))
	// Something to measure that does not change.
	if err := op.rdb.RPush(ctx, "idle-out", "done-1").Err(); err != nil {
		t.Fatal(err)
	}
	settled := op.waitChain(t, "idle", "measured", all(ready, measured, func(c *vconv1.Chain) error {
		if c.Status.Queue.Egress != 1 {
			return fmt.Errorf("egress %d", c.Status.Queue.Egress)
		}
		return nil
	}))
	var dep appsv1.Deployment
	if err := op.c.Get(ctx, op.key(workload.DeploymentName("idle")), &dep); err != nil {
		t.Fatal(err)
	}

	const polls = 15
	from := op.obs.Polls()
	eventually(t, waitFor, fmt.Sprintf("%d polls", polls), func() error {
		if n := op.obs.Polls() - from; n < polls {
			return fmt.Errorf("%d polls", n)
		}
		return nil
	})
	var now vconv1.Chain
	if err := op.c.Get(ctx, op.key("idle"), &now); err != nil {
		t.Fatal(err)
	}
	if now.ResourceVersion != settled.ResourceVersion {
		t.Errorf("the idle Chain was rewritten during %d polls (resourceVersion %s -> %s):\nbefore %+v\nafter  %+v",
			polls, settled.ResourceVersion, now.ResourceVersion, settled.Status, now.Status)
	}
	var depNow appsv1.Deployment
	if err := op.c.Get(ctx, op.key(workload.DeploymentName("idle")), &depNow); err != nil {
		t.Fatal(err)
	}
	if depNow.ResourceVersion != dep.ResourceVersion {
		t.Errorf("the idle Chain's Deployment was rewritten (resourceVersion %s -> %s)", dep.ResourceVersion, depNow.ResourceVersion)
	}
}

// TestListLengthSeries: redis_list_length names each list by its exact
// Redis key, so the monitoring guide's queries work as written.
func TestListLengthSeries(t *testing.T) {
	op := startOperator(t)
	ctx := context.Background()
	op.create(t, op.chain("guide", []string{"default"}, func(c *vconv1.Chain) { c.Spec.EgressLists = []string{"processed"} }))
	pipe := op.rdb.Pipeline()
	pipe.RPush(ctx, "default", uuids("in", 4)...)
	pipe.RPush(ctx, "DLQ:default", uuids("dead", 2)...)
	pipe.RPush(ctx, "processed", uuids("out", 5)...)
	// Two retries waiting an hour: the retry set is a sorted set, measured
	// under kind="retry".
	later := float64(time.Now().Add(time.Hour).UnixMilli())
	pipe.ZAdd(ctx, queue.RetryKey("default"), redis.Z{Score: later, Member: "r1"}, redis.Z{Score: later, Member: "r2"})
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	retry := queue.RetryKey("default")
	want := map[string]map[string]string{
		"default":     {"list": "default", "kind": "ingress", "chain": "guide", "namespace": op.ns, "value": "4"},
		"DLQ:default": {"list": "DLQ:default", "kind": "dlq", "chain": "guide", "namespace": op.ns, "value": "2"},
		"processed":   {"list": "processed", "kind": "egress", "chain": "guide", "namespace": op.ns, "value": "5"},
		retry:         {"list": retry, "kind": "retry", "chain": "guide", "namespace": op.ns, "value": "2"},
	}
	eventually(t, waitFor, "redis_list_length series", func() error {
		got := map[string]map[string]string{}
		for _, s := range op.series(t, "redis_list_length") {
			got[s["list"]] = s
		}
		if !reflect.DeepEqual(got, want) {
			return fmt.Errorf("got %v\nwant %v", got, want)
		}
		return nil
	})
}

// TestOrphansReturned: the in-flight items of a worker whose heartbeat
// expired go back to the ingress list, even while no worker of the Chain
// runs; a live worker's in-flight items are counted and left alone.
func TestOrphansReturned(t *testing.T) {
	op := startOperator(t)
	ctx := context.Background()
	const list = "orphans"
	pipe := op.rdb.TxPipeline()
	// Heartbeat scores are expiry times in ms on the Redis clock: 1 is long
	// past, the far future is alive.
	pipe.ZAdd(ctx, queue.WorkersKey(list), redisZ(1, "dead-worker"), redisZ(float64(time.Now().Add(time.Hour).UnixMilli()), "live-worker"))
	pipe.RPush(ctx, queue.InFlightKey(list, "dead-worker"), "o-1", "o-2", "o-3")
	pipe.RPush(ctx, queue.InFlightKey(list, "live-worker"), "l-1", "l-2")
	pipe.RPush(ctx, list, "q-1")
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	op.create(t, op.chain("reaper", []string{list}, func(c *vconv1.Chain) { c.Spec.Workers.Concurrency = 1 }))

	op.waitChain(t, "reaper", "orphans back in ingress", func(c *vconv1.Chain) error {
		if q := c.Status.Queue; q.Ingress != 4 || q.InFlight != 2 {
			return fmt.Errorf("queue %+v, want ingress 4 in-flight 2", q)
		}
		return nil
	})
	got, err := op.rdb.LRange(ctx, list, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"o-1", "o-2", "o-3", "q-1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ingress %v, want %v (orphans first, in their order)", got, want)
	}
	if n := op.rdb.Exists(ctx, queue.InFlightKey(list, "dead-worker")).Val(); n != 0 {
		t.Error("the dead worker's in-flight list is still there")
	}
	workers, _ := op.rdb.ZRange(ctx, queue.WorkersKey(list), 0, -1).Result()
	if !reflect.DeepEqual(workers, []string{"live-worker"}) {
		t.Errorf("registered workers %v, want only the live one", workers)
	}
	if n := op.rdb.LLen(ctx, queue.InFlightKey(list, "live-worker")).Val(); n != 2 {
		t.Errorf("the live worker's in-flight list has %d items, want 2", n)
	}
	// 5 queued+in flight with targetQueueDepth 100 is one worker; 2
	// in flight at concurrency 1 keep two busy.
	op.waitDeployment(t, "reaper", "busy workers kept", replicasAre(2))
}

// secretReads counts the Secrets the reconciler reads past its cache.
type secretReads struct {
	client.Reader
	n atomic.Int64
}

func (r *secretReads) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*corev1.Secret); ok {
		r.n.Add(1)
	}
	return r.Reader.Get(ctx, key, obj, opts...)
}

// TestRedisURLFromSecret: a Redis URL holding a password stays in its
// Secret (the workers get a reference), a missing Secret is reported, and
// the Secret is read once per reconcile of its own Chain, not once per
// other Chain (the ingress-conflict check asked every Chain for its Redis).
func TestRedisURLFromSecret(t *testing.T) {
	reads := &secretReads{}
	op := startOperator(t, func(r *controllers.ChainReconciler) {
		reads.Reader = r.APIReader
		r.APIReader = reads
		r.DefaultRedisURL = "" // only the Secret can name the Redis
	})
	ctx := context.Background()
	ref := &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "redis"}, Key: "url"}
	fromSecret := func(c *vconv1.Chain) { c.Spec.Redis.URLSecretRef = ref }

	op.create(t, op.chain("early", []string{"early-in"}, fromSecret))
	op.waitChain(t, "early", "RedisSecretNotFound", hasCondition(vconv1.ConditionReady, metav1.ConditionFalse, "RedisSecretNotFound", `"redis"`))

	// The password is checked for below; redis-server ignores a password
	// in the URL when it has none set.
	url := strings.Replace(op.redis.URL(), "redis://", "redis://:hunter2-secret@", 1)
	op.create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "redis"}, StringData: map[string]string{"url": url}})
	// Nothing watches Secrets (that would cache every Secret of the
	// cluster); the Chain looks again every SecretRecheck (1s here) and
	// gets Ready without any change of its own.
	op.waitChain(t, "early", "Ready", all(ready, measured))

	const chains = 15
	before := reads.n.Load()
	for i := range chains {
		op.create(t, op.chain(fmt.Sprintf("chain-%02d", i), []string{fmt.Sprintf("list-%02d", i)}, fromSecret))
	}
	for i := range chains {
		op.waitChain(t, fmt.Sprintf("chain-%02d", i), "Ready", all(ready, measured))
	}
	perChain := float64(reads.n.Load()-before) / chains
	t.Logf("%.1f Secret reads per Chain until all %d were Ready and measured", perChain, chains)
	// One per reconcile, a handful of reconciles each: asking every
	// earlier Chain made it about chains/2 times as many.
	if perChain > 8 {
		t.Errorf("%.1f Secret reads per Chain: the reconciler reads other Chains' Secrets", perChain)
	}

	dep := op.waitDeployment(t, "chain-00", "exists", func(*appsv1.Deployment) error { return nil })
	var cm corev1.ConfigMap
	if err := op.c.Get(ctx, op.key(workload.ConfigMapName("chain-00")), &cm); err != nil {
		t.Fatal(err)
	}
	for what, obj := range map[string]any{"Deployment": dep, "ConfigMap": &cm} {
		b, _ := json.Marshal(obj)
		if strings.Contains(string(b), "hunter2") {
			t.Errorf("the %s holds the Redis password", what)
		}
	}
	env := dep.Spec.Template.Spec.Containers[0].Env[0]
	if env.Name != "REDIS_URL" || env.ValueFrom == nil || env.ValueFrom.SecretKeyRef == nil || *env.ValueFrom.SecretKeyRef != *ref {
		t.Errorf("REDIS_URL %+v, want a reference to the Secret", env)
	}
}

// waitEvent waits for an Event about the Chain with the reason and a
// message containing text.
func waitEvent(t *testing.T, op *operator, chain, reason, text string) {
	t.Helper()
	eventually(t, waitFor, chain+": event "+reason, func() error {
		var events corev1.EventList
		if err := op.c.List(context.Background(), &events, client.InNamespace(op.ns)); err != nil {
			return err
		}
		var seen []string
		for _, e := range events.Items {
			if e.InvolvedObject.Kind == "Chain" && e.InvolvedObject.Name == chain {
				if e.Reason == reason && strings.Contains(e.Message, text) {
					return nil
				}
				seen = append(seen, e.Reason+": "+e.Message)
			}
		}
		return fmt.Errorf("events %v", seen)
	})
}

// scalingDecisionCount sums vcon_operator_scaling_decisions_total of one
// Chain in the controller-runtime registry the manager serves.
func scalingDecisionCount(t *testing.T, namespace, chain string) float64 {
	t.Helper()
	families, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != "vcon_operator_scaling_decisions_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			l := labelsOf(m)
			if l["chain"] == chain && l["namespace"] == namespace {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
