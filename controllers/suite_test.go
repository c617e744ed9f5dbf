package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/controllers"
	"github.com/vcon-operator/vcon-operator/internal/observer"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
	"github.com/vcon-operator/vcon-operator/internal/workload"
)

// One kube-apiserver + etcd for the package; every test gets its own
// namespace, redis-server and operator (a manager whose cache sees only
// that namespace), so tests cannot see each other's Chains.
var kube *testenv.Kube

func TestMain(m *testing.M) {
	// OPERATOR_TEST_LOG=1 shows the operator's logs.
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(logSink())))
	os.Exit(testenv.RunMain(m, &kube))
}

func logSink() *os.File {
	if os.Getenv("OPERATOR_TEST_LOG") != "" {
		return os.Stderr
	}
	f, _ := os.Open(os.DevNull)
	return f
}

// pollInterval is the observer's in these tests: short, so that the tests
// are quick, and long enough that "once per poll" is distinguishable.
const pollInterval = 200 * time.Millisecond

const workerImage = "ghcr.io/vcon-operator/vcon-operator:test"

// operator is the manager under test, run in-process as cmd/manager runs it.
type operator struct {
	ns       string
	c        client.Client // direct to the API server, not the operator's cache
	redis    *testenv.Redis
	rdb      *redis.Client
	obs      *observer.Observer
	registry *prometheus.Registry
}

var nsSeq atomic.Int64

// startOperator starts the operator; options change its Chain reconciler
// before it starts.
func startOperator(t *testing.T, options ...func(*controllers.ChainReconciler)) *operator {
	t.Helper()
	return startOperatorSeeing(t, nil, options...)
}

// testNamespace creates a namespace named for the test.
func testNamespace(t *testing.T) string {
	t.Helper()
	ns := fmt.Sprintf("%s-%d", strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())), nsSeq.Add(1))
	if len(ns) > 63 {
		ns = ns[len(ns)-63:]
		ns = strings.TrimLeft(ns, "-")
	}
	if err := kube.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	return ns
}

// startOperatorSeeing starts the operator with a cache that also sees the
// other namespaces, as a cluster-wide operator sees every namespace.
func startOperatorSeeing(t *testing.T, others []string, options ...func(*controllers.ChainReconciler)) *operator {
	t.Helper()
	op := newOperator(t, testNamespace(t))
	op.start(t, managerSetup{config: kube.Config, namespaces: append([]string{op.ns}, others...)}, options...)
	return op
}

// newOperator is an operator for namespace ns with its own redis-server,
// not yet started.
func newOperator(t *testing.T, ns string) *operator {
	t.Helper()
	op := &operator{c: kube.Client, ns: ns}
	op.redis = testenv.StartRedis(t)
	op.rdb = op.redis.Client()
	return op
}

// managerSetup is what the operator's manager runs with.
type managerSetup struct {
	config     *rest.Config
	namespaces []string // the cache's (--watch-namespaces)
	// leaderElectionNamespace, when set, holds the leader-election Lease;
	// empty runs without leader election.
	leaderElectionNamespace string
}

// start runs the operator's manager, as cmd/manager wires it, until the
// test ends; then deletes op.ns.
func (op *operator) start(t *testing.T, setup managerSetup, options ...func(*controllers.ChainReconciler)) {
	t.Helper()
	cacheOptions, err := controllers.CacheOptions(setup.namespaces)
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(setup.config, ctrl.Options{
		Scheme:                        kube.Scheme,
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
		LeaderElection:                setup.leaderElectionNamespace != "",
		LeaderElectionNamespace:       setup.leaderElectionNamespace,
		LeaderElectionID:              "vcon-operator-" + op.ns,
		LeaderElectionReleaseOnCancel: true,
		Cache:                         cacheOptions,
		Controller: config.Controller{
			MaxConcurrentReconciles: controllers.DefaultMaxConcurrentReconciles,
			// Each test runs its own manager with the same controllers.
			SkipNameValidation: ptr.To(true),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	op.obs = observer.New(pollInterval, ctrl.Log.WithName("observer"))
	if err := mgr.Add(op.obs); err != nil {
		t.Fatal(err)
	}
	op.registry = prometheus.NewRegistry()
	op.registry.MustRegister(&observer.Collector{Reader: mgr.GetCache(), Observer: op.obs})
	chains := &controllers.ChainReconciler{
		Client:          mgr.GetClient(),
		APIReader:       mgr.GetAPIReader(),
		Recorder:        mgr.GetEventRecorderFor("vcon-operator"), //nolint:staticcheck // as cmd/manager
		Observer:        op.obs,
		DefaultRedisURL: op.redis.URL(),
		WorkerImage:     workerImage,
		PollInterval:    pollInterval,
		SecretRecheck:   time.Second,
	}
	for _, o := range options {
		o(chains)
	}
	if err := chains.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	if err := (&controllers.StepReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("manager stopped with an error: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("manager did not stop within 30s")
		}
		_ = kube.Client.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: op.ns}})
	})
}

// eventually polls cond until it returns nil, and fails the test with the
// last error at the deadline. The loop is a poll of a condition, not a
// sleep standing in for one.
func eventually(t *testing.T, within time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, within, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// waitFor is long enough for a loaded 2-core CI machine; the operator
// itself reacts within a poll or two.
const waitFor = 20 * time.Second

func (op *operator) key(name string) types.NamespacedName {
	return types.NamespacedName{Namespace: op.ns, Name: name}
}

// chain returns a Chain in the test namespace on the operator's default
// Redis (it names none), as a user would write it; the API server fills in
// the defaults.
func (op *operator) chain(name string, ingress []string, mutate ...func(*vconv1.Chain)) *vconv1.Chain {
	ch := &vconv1.Chain{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: op.ns},
		Spec:       vconv1.ChainSpec{IngressLists: ingress},
	}
	for _, m := range mutate {
		m(ch)
	}
	return ch
}

func (op *operator) create(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		o.SetNamespace(op.ns)
		obj := o
		if ch, ok := o.(*vconv1.Chain); ok {
			obj = asApplied(t, ch)
		}
		if err := op.c.Create(context.Background(), obj); err != nil {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}
}

// asApplied is the Chain as `kubectl apply` of its YAML sends it: the
// worker settings a user leaves out are absent, and so get the CRD's
// defaults. (The typed struct would send them as 0, which the schema
// refuses.)
func asApplied(t *testing.T, ch *vconv1.Chain) *unstructured.Unstructured {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ch)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(vconv1.GroupVersion.WithKind("Chain"))
	if w, ok, _ := unstructured.NestedMap(m, "spec", "workers"); ok {
		for k, v := range w {
			if v == int64(0) || v == "" || v == nil {
				delete(w, k)
			}
			if r, isMap := v.(map[string]any); isMap && len(r) == 0 {
				delete(w, k)
			}
		}
		_ = unstructured.SetNestedMap(m, w, "spec", "workers")
	}
	delete(m, "status")
	return u
}

// waitChain waits until the Chain satisfies check and returns it.
func (op *operator) waitChain(t *testing.T, name, what string, check func(*vconv1.Chain) error) *vconv1.Chain {
	t.Helper()
	var ch vconv1.Chain
	eventually(t, waitFor, name+": "+what, func() error {
		if err := op.c.Get(context.Background(), op.key(name), &ch); err != nil {
			return err
		}
		return check(&ch)
	})
	return &ch
}

// waitDeployment waits until the Chain's worker Deployment satisfies check.
func (op *operator) waitDeployment(t *testing.T, chain, what string, check func(*appsv1.Deployment) error) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	eventually(t, waitFor, chain+": "+what, func() error {
		if err := op.c.Get(context.Background(), op.key(workload.DeploymentName(chain)), &d); err != nil {
			return err
		}
		return check(&d)
	})
	return &d
}

func replicasAre(n int32) func(*appsv1.Deployment) error {
	return func(d *appsv1.Deployment) error {
		if d.Spec.Replicas == nil || *d.Spec.Replicas != n {
			return fmt.Errorf("replicas %v, want %d", ptrString(d.Spec.Replicas), n)
		}
		return nil
	}
}

func ptrString[T any](p *T) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprint(*p)
}

// hasCondition checks one condition of a Chain, stamped with the Chain's
// current generation.
func hasCondition(typ vconv1.ConditionType, status metav1.ConditionStatus, reason string, msgContains ...string) func(*vconv1.Chain) error {
	return func(ch *vconv1.Chain) error {
		c := apimeta.FindStatusCondition(ch.Status.Conditions, string(typ))
		if c == nil {
			return fmt.Errorf("no %s condition in %+v", typ, ch.Status.Conditions)
		}
		if c.Status != status || (reason != "" && c.Reason != reason) {
			return fmt.Errorf("%s=%s reason %s (%s), want %s reason %s", typ, c.Status, c.Reason, c.Message, status, reason)
		}
		for _, m := range msgContains {
			if !strings.Contains(c.Message, m) {
				return fmt.Errorf("%s message %q lacks %q", typ, c.Message, m)
			}
		}
		if c.ObservedGeneration != ch.Generation {
			return fmt.Errorf("%s observedGeneration %d, generation %d", typ, c.ObservedGeneration, ch.Generation)
		}
		return nil
	}
}

func all[T any](checks ...func(T) error) func(T) error {
	return func(v T) error {
		var errs []error
		for _, c := range checks {
			if err := c(v); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
}

// series returns the gathered samples of one metric, as label maps with the
// value under "value".
func (op *operator) series(t *testing.T, name string) []map[string]string {
	t.Helper()
	mfs, err := op.registry.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var out []map[string]string
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			out = append(out, labelsOf(m))
		}
	}
	return out
}

func labelsOf(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, lp := range m.GetLabel() {
		l[lp.GetName()] = lp.GetValue()
	}
	l["value"] = fmt.Sprint(m.GetGauge().GetValue())
	return l
}

func (op *operator) seriesOfChain(t *testing.T, chain string) int {
	t.Helper()
	mfs, err := op.registry.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	n := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if labelsOf(m)["chain"] == chain {
				n++
			}
		}
	}
	return n
}

func uuids(prefix string, n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%04d", prefix, i)
	}
	return out
}

func redisZ(score float64, member string) redis.Z { return redis.Z{Score: score, Member: member} }
