package controllers_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/workload"
)

// writeLog counts the operator's requests to the API server as
// "METHOD resource/name" (namespaced objects only).
type writeLog struct {
	mu sync.Mutex
	n  map[string]int
}

func (l *writeLog) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		// /api/v1/namespaces/NS/RESOURCE/NAME[/SUBRESOURCE]
		if _, rest, ok := strings.Cut(req.URL.Path, "/namespaces/"); ok {
			if parts := strings.Split(rest, "/"); len(parts) >= 3 {
				l.mu.Lock()
				l.n[req.Method+" "+parts[1]+"/"+parts[2]]++
				l.mu.Unlock()
			}
		}
		return rt.RoundTrip(req)
	})
}

func (l *writeLog) count(key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[key]
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// TestChildrenAppliedWhenChanged: a reconcile whose plan leaves the
// ConfigMap and the Deployment as the operator last wrote them sends
// neither; one that finds them changed by hand, or gone, applies them
// again at once.
func TestChildrenAppliedWhenChanged(t *testing.T) {
	ctx := context.Background()
	op := newOperator(t, testNamespace(t))
	log := &writeLog{n: map[string]int{}}
	cfg := rest.CopyConfig(kube.Config)
	cfg.Wrap(log.wrap)
	op.start(t, managerSetup{config: cfg, namespaces: []string{op.ns}})

	const name = "steady"
	cmKey := op.key(workload.ConfigMapName(name))
	patchCM, patchDeployment := "PATCH configmaps/"+cmKey.Name, "PATCH deployments/"+workload.DeploymentName(name)
	// Activation at 100: what is pushed below changes the status, never
	// the replicas, so the plan's objects stay the same.
	op.create(t, op.chain(name, []string{"steady-in"}, func(c *vconv1.Chain) { c.Spec.Workers.ActivationQueueDepth = 100 }))
	op.waitChain(t, name, "measured", all(ready, measured))
	op.waitDeployment(t, name, "applied", replicasAre(0))

	cmWrites, deploymentWrites := log.count(patchCM), log.count(patchDeployment)
	for i, depth := range []int64{3, 6, 9} {
		if err := op.rdb.RPush(ctx, "steady-in", uuids(fmt.Sprintf("steady-%d", i), 3)...).Err(); err != nil {
			t.Fatal(err)
		}
		op.waitChain(t, name, fmt.Sprintf("%d queued", depth), func(c *vconv1.Chain) error {
			if c.Status.Queue.Ingress != depth {
				return fmt.Errorf("queue %+v", c.Status.Queue)
			}
			return nil
		})
	}
	if got := log.count(patchCM) - cmWrites; got != 0 {
		t.Errorf("%d ConfigMap applies in 3 reconciles that left it unchanged, want 0", got)
	}
	if got := log.count(patchDeployment) - deploymentWrites; got != 0 {
		t.Errorf("%d Deployment applies in 3 reconciles that left it unchanged, want 0", got)
	}

	rendered := &corev1.ConfigMap{}
	if err := op.c.Get(ctx, cmKey, rendered); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func(*testing.T)
		back   func() error
	}{
		{"ConfigMap edited", func(t *testing.T) {
			cm := rendered.DeepCopy()
			for k := range cm.Data {
				cm.Data[k] = "edited: by hand\n"
			}
			if err := op.c.Update(ctx, cm, client.FieldOwner("kubectl-edit")); err != nil {
				t.Fatal(err)
			}
		}, func() error { return sameData(op, cmKey, rendered.Data) }},
		{"ConfigMap deleted", func(t *testing.T) {
			if err := op.c.Delete(ctx, &corev1.ConfigMap{ObjectMeta: rendered.ObjectMeta}); err != nil {
				t.Fatal(err)
			}
		}, func() error { return sameData(op, cmKey, rendered.Data) }},
		{"Deployment image edited", func(t *testing.T) {
			d := op.waitDeployment(t, name, "present", replicasAre(0))
			d.Spec.Template.Spec.Containers[0].Image = "example.com/hand-edit:1"
			if err := op.c.Update(ctx, d, client.FieldOwner("kubectl-edit")); err != nil {
				t.Fatal(err)
			}
		}, func() error { return workerImageIs(op, name, workerImage) }},
		{"Deployment deleted", func(t *testing.T) {
			d := op.waitDeployment(t, name, "present", replicasAre(0))
			if err := op.c.Delete(ctx, d); err != nil {
				t.Fatal(err)
			}
		}, func() error { return workerImageIs(op, name, workerImage) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.change(t)
			eventually(t, waitFor, tc.name+": put back", tc.back)
		})
	}
}

func sameData(op *operator, key types.NamespacedName, want map[string]string) error {
	var cm corev1.ConfigMap
	if err := op.c.Get(context.Background(), key, &cm); err != nil {
		return err
	}
	for k, v := range want {
		if cm.Data[k] != v {
			return fmt.Errorf("data[%s] = %q", k, cm.Data[k])
		}
	}
	return nil
}

func workerImageIs(op *operator, chain, image string) error {
	var d appsv1.Deployment
	if err := op.c.Get(context.Background(), op.key(workload.DeploymentName(chain)), &d); err != nil {
		return err
	}
	if got := d.Spec.Template.Spec.Containers[0].Image; got != image {
		return fmt.Errorf("image %s", got)
	}
	return nil
}
