package plugin

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

var testKube *testenv.Kube

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	dir, err := os.MkdirTemp("", "kubectl-vcon-test-")
	if err != nil {
		panic(err)
	}
	kubeconfigDir = dir
	code := testenv.RunMain(m, &testKube)
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// kubeconfigDir holds the kubeconfig files of the test users.
var kubeconfigDir string

// testNow is the clock of every command run by the tests.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// kubeconfigFor writes a kubeconfig for a user of the test API server, so
// the commands load it exactly as kubectl would (--kubeconfig).
func kubeconfigFor(t *testing.T, user envtest.User) string {
	t.Helper()
	u, err := testKube.Env.AddUser(user, nil)
	if err != nil {
		t.Fatalf("add user %s: %v", user.Name, err)
	}
	data, err := u.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(kubeconfigDir, user.Name+"-"+strconv.FormatInt(nsSeq.Add(1), 10)+".kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var (
	adminKubeconfig string
	nsSeq           atomic.Int64
)

func admin(t *testing.T) string {
	t.Helper()
	if adminKubeconfig == "" {
		adminKubeconfig = kubeconfigFor(t, envtest.User{Name: "admin", Groups: []string{"system:masters"}})
	}
	return adminKubeconfig
}

// result is what one run of kubectl vcon printed and returned.
type result struct {
	out, errOut string
	code        int
}

type invocation struct {
	kubeconfig string
	env        map[string]string
	stdin      string
}

// run runs the real command tree in-process.
func (inv invocation) run(t *testing.T, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	rt := Runtime{
		In:     strings.NewReader(inv.stdin),
		Out:    &out,
		ErrOut: &errOut,
		Getenv: func(k string) string { return inv.env[k] },
		Now:    func() time.Time { return testNow },
		HTTP:   &http.Client{Timeout: 10 * time.Second},
	}
	if inv.kubeconfig != "" {
		args = append(args, "--kubeconfig", inv.kubeconfig)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code := Main(ctx, args, rt)
	return result{out: out.String(), errOut: errOut.String(), code: code}
}

// namespace creates a namespace for one test.
func namespace(t *testing.T) string {
	t.Helper()
	name := strings.Trim(truncate(DNSName(t.Name()), 50), "-") + "-" + strconv.FormatInt(nsSeq.Add(1), 10)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := testKube.Client.Create(context.Background(), ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return name
}

// createChain creates a Chain and then writes its status through the status
// subresource, as the operator would.
func createChain(t *testing.T, ns, name string, spec vconv1.ChainSpec, status *vconv1.ChainStatus) *vconv1.Chain {
	t.Helper()
	ctx := context.Background()
	if spec.Workers.MaxReplicas == 0 {
		// A typed client sends every WorkerSpec field; give them the CRD defaults.
		spec.Workers = vconv1.WorkerSpec{MaxReplicas: 10, TargetQueueDepth: 100, Concurrency: 4}
	}
	ch := &vconv1.Chain{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
	if err := testKube.Client.Create(ctx, ch); err != nil {
		t.Fatalf("create chain %s: %v", name, err)
	}
	if status != nil {
		ch.Status = *status
		if err := testKube.Client.Status().Update(ctx, ch); err != nil {
			t.Fatalf("update status of chain %s: %v", name, err)
		}
	}
	return ch
}

func cond(typ string, status bool, reason, msg string) metav1.Condition {
	s := metav1.ConditionFalse
	if status {
		s = metav1.ConditionTrue
	}
	return metav1.Condition{Type: typ, Status: s, Reason: reason, Message: msg, LastTransitionTime: metav1.NewTime(testNow.Add(-5 * time.Minute)), ObservedGeneration: 1}
}

func objectMeta(ns, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name}
}
