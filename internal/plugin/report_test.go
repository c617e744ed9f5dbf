package plugin

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
	"github.com/vcon-operator/vcon-operator/internal/workload"
)

// TestReport writes a bundle of a namespace holding planted secrets (in a
// Chain's Redis URL, Link and Storage options, an event, a Secret, the API
// token) and checks that the bundle has what it should and none of them.
//
// envtest runs no kubelet, so a fake one serves the worker pod's log: a
// Node whose status names this machine's address and the port of an HTTPS
// server in this process, and the pod bound to it. The API server's pod log
// endpoint then fetches /containerLogs/NS/POD/CONTAINER from it as from a
// kubelet (envtest's API server does not verify kubelet certificates).
func TestReport(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	ns := namespace(t)
	p := startProxiedAPI(t, ns, r)
	seedQueues(t, r)
	planted := []string{"Pl4ntedRedisPw", "sk-Pl4ntedOpenAIKey", "Pl4ntedPgPass", "Pl4ntedEventPw", "Pl4ntedBearerXYZ", "Pl4ntedSecretData", "Pl4ntedWebhookTok", p.token}

	createChain(t, ns, "main", vconv1.ChainSpec{
		IngressLists: []string{"default", "priority"},
		Links:        []string{"analyze"},
		Storages:     []string{"pg"},
		Redis:        vconv1.RedisConnection{URL: "redis://:Pl4ntedRedisPw@redis.vcon-system.svc:6379"},
	}, &vconv1.ChainStatus{Conditions: []metav1.Condition{cond(string(vconv1.ConditionReady), false, vconv1.ReasonRedisUnreachable, "dial redis://:Pl4ntedRedisPw@redis:6379: timeout")}})
	link := &vconv1.Link{ObjectMeta: objectMeta(ns, "analyze"), Spec: vconv1.LinkSpec{Module: "links.analyze",
		Options: &apiextensionsv1.JSON{Raw: []byte(`{"OPENAI_API_KEY":"sk-Pl4ntedOpenAIKey","model":"gpt-4o","max_tokens":4096,"webhook":"https://hooks.example.com/x?token=Pl4ntedWebhookTok"}`)}}}
	storage := &vconv1.Storage{ObjectMeta: objectMeta(ns, "pg"), Spec: vconv1.StorageSpec{Module: "storage.postgres",
		Options: &apiextensionsv1.JSON{Raw: []byte(`{"url":"postgres://vcon:Pl4ntedPgPass@db:5432/vcon","password":"${PG_PASSWORD}"}`)}}}
	secret := &corev1.Secret{ObjectMeta: objectMeta(ns, "openai"), StringData: map[string]string{"key": "Pl4ntedSecretData"}}
	event := &corev1.Event{ObjectMeta: objectMeta(ns, "main.1"), InvolvedObject: corev1.ObjectReference{Kind: "Chain", Namespace: ns, Name: "main"},
		Type: "Warning", Reason: "RedisUnreachable", Count: 1, LastTimestamp: metav1.NewTime(testNow),
		Message: "connect with password=Pl4ntedEventPw failed; header Authorization: Bearer Pl4ntedBearerXYZ"}
	node := fakeKubelet(t, ns, "main-worker-0", "worker", "level=INFO msg=\"took vCon\" redis=redis://:Pl4ntedLogRedis@redis:6379\nlevel=ERROR msg=\"login failed\" password=Pl4ntedLogPw\nlevel=DEBUG msg=\"sent\" header="+p.token+"\n")
	planted = append(planted, "Pl4ntedLogRedis", "Pl4ntedLogPw")
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "main-worker-0", Labels: workload.Labels("main")},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "worker", Image: "vcon-operator:test"}}}}
	for _, err := range []error{
		testKube.Client.Create(ctx, link), testKube.Client.Create(ctx, storage), testKube.Client.Create(ctx, secret),
		testKube.Client.Create(ctx, event), testKube.Client.Create(ctx, pod),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}

	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		out  string
	}{
		{"directory", filepath.Join(dir, "bundle")},
		{"tar.gz", filepath.Join(dir, "bundle.tar.gz")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := invocation{kubeconfig: admin(t)}.run(t, append([]string{"report", "-n", ns, "--out", tc.out, "--operator-namespace", ns}, p.flags()...)...)
			if res.code != 0 || !strings.Contains(res.out, "Wrote "+tc.out) {
				t.Fatalf("exit %d: %s %s", res.code, res.out, res.errOut)
			}
			files := readBundle(t, tc.out)
			for name, want := range map[string][]string{
				"summary.txt": {"namespace: " + ns, "not collected:\n  nothing"},
				"logs/" + ns + "/main-worker-0/worker.log": {`msg="took vCon" redis=redis://:***@redis:6379`, "password=***"},
				"conditions.txt":        {"Chain", "main", "RedisUnreachable", "redis://:***@redis:6379"},
				"objects/chains.yaml":   {"name: main", "url: redis://:***@redis.vcon-system.svc:6379"},
				"objects/links.yaml":    {"OPENAI_API_KEY: '***'", "max_tokens: 4096", "token=***"},
				"objects/storages.yaml": {"postgres://vcon:***@db:5432/vcon", "password: ${PG_PASSWORD}"},
				"queues.yaml":           {"chain: main", "dlq: 3"},
				"events/" + ns + ".txt": {"RedisUnreachable", "password=***", "Bearer ***"},
			} {
				got, ok := files[name]
				if !ok {
					t.Errorf("bundle lacks %s (has %d files)", name, len(files))
					continue
				}
				for _, w := range want {
					if !strings.Contains(got, w) {
						t.Errorf("%s lacks %q:\n%s", name, w, got)
					}
				}
			}
			for name, data := range files {
				for _, s := range planted {
					if strings.Contains(data, s) {
						t.Errorf("%s holds the planted secret %q", name, s)
					}
				}
			}
			if strings.Contains(res.out+res.errOut, p.token) {
				t.Error("the API token was printed")
			}
		})
	}
	t.Run("refuses to overwrite", func(t *testing.T) {
		res := invocation{kubeconfig: admin(t)}.run(t, "report", "-n", ns, "--out", filepath.Join(dir, "bundle"), "--no-queues")
		if res.code != 1 || !strings.Contains(res.errOut, "already exists") {
			t.Errorf("exit %d: %s", res.code, res.errOut)
		}
	})
}

// readBundle reads a report directory or archive into name -> content.
func readBundle(t *testing.T, path string) map[string]string {
	t.Helper()
	out := map[string]string{}
	if strings.HasSuffix(path, ".tar.gz") {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		gz, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(gz)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(tr)
			_, name, _ := strings.Cut(h.Name, "/")
			out[name] = string(data)
		}
		return out
	}
	err := filepath.Walk(path, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(path, p)
		out[filepath.ToSlash(rel)] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fakeKubelet serves one container's log as a kubelet would, on this
// machine's address, and registers a Node pointing at it; it returns the
// Node's name.
func fakeKubelet(t *testing.T, ns, pod, container, log string) string {
	t.Helper()
	ctx := context.Background()
	ip := proxyableIP(t)
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/containerLogs/"+ns+"/"+pod+"/"+container {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, log)
	}))
	srv.Listener = ln
	srv.StartTLS()
	t.Cleanup(srv.Close)
	name := "kubelet-" + ns
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := testKube.Client.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	node.Status = corev1.NodeStatus{
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(ln.Addr().(*net.TCPAddr).Port)}},
	}
	if err := testKube.Client.Status().Update(ctx, node); err != nil {
		t.Fatal(err)
	}
	return name
}
