//go:build cluster

package promop_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/vcon-operator/vcon-operator/internal/devsys/promop"
)

const (
	echoImage = "localhost/vcon-operator/httpecho:1"
	// The workload lives outside monitoring: Prometheus selects all
	// namespaces.
	ns    = "promop-test"
	alert = "PromopAlwaysFiring"
)

var fix = "run, as root: hack/tools.sh cluster prometheus prometheus-operator && flock /tmp/vcon-cluster.lock go test -tags cluster -count=1 -v ./internal/devsys/promop/"

// TestOperatorPicksUpMonitorsAndRules brings up the real cluster, installs
// the operator and Prometheus, and checks that a ServiceMonitor's and a
// PodMonitor's targets are scraped and a PrometheusRule's alert fires.
func TestOperatorPicksUpMonitorsAndRules(t *testing.T) {
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Fatal("needs root on Linux (the real cluster): " + fix)
	}
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "bin")
	if _, err := promop.ImagesIn(bin); err != nil {
		t.Fatalf("%v\n%s", err, fix)
	}
	if _, err := exec.LookPath("ctr"); err != nil {
		t.Fatal("no ctr on PATH: apt-get install -y containerd (docs/cluster.md)")
	}
	sock := filepath.Join(root, ".cluster", "run", "containerd.sock")

	start := time.Now()
	sh(t, root, "hack/cluster/up.sh")
	t.Cleanup(func() { _ = exec.Command(filepath.Join(root, "hack/cluster/down.sh")).Run() })
	t.Logf("bring-up %.1f s", time.Since(start).Seconds())

	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(root, ".cluster", "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	kube := kubernetes.NewForConfigOrDie(cfg)
	dyn := dynamic.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	start = time.Now()
	echoTar := filepath.Join(t.TempDir(), "httpecho.tar")
	sh(t, root, "go", "run", "./hack/cluster/binimage", "-pkg", "./test/cluster/httpecho", "-tag", echoImage, "-out", echoTar)
	sh(t, root, "ctr", "-n", "k8s.io", "-a", sock, "images", "import", echoTar)
	images, err := promop.ImportImages(ctx, bin, sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("images built and imported in %.1f s: %+v", time.Since(start).Seconds(), images)

	start = time.Now()
	prom, err := promop.Install(ctx, cfg, promop.Options{
		BinDir: bin, ScrapeInterval: time.Second, EvaluationInterval: time.Second, Logf: t.Logf,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, logs(ctx, kube, "monitoring"))
	}
	t.Logf("install → Prometheus ready at %s in %.1f s", prom.URL, time.Since(start).Seconds())

	start = time.Now()
	createWorkload(ctx, t, kube, dyn)
	want := map[string]bool{
		"httpecho-svc":       false, // ServiceMonitor: job is the Service's name
		ns + "/httpecho-pod": false, // PodMonitor: job is namespace/name
	}
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, r := range query(t, prom.URL, `up{namespace="`+ns+`"} == 1`) {
			if _, ok := want[r.Metric["job"]]; ok {
				want[r.Metric["job"]] = true
			}
		}
		return want["httpecho-svc"] && want[ns+"/httpecho-pod"], nil
	})
	if err != nil {
		t.Fatalf("targets up: %v; seen %v\ntargets: %s\n%s", err, want, get(t, prom.URL+"/api/v1/targets"), logs(ctx, kube, prom.Namespace))
	}
	t.Logf("both targets up %.1f s after the monitors were created", time.Since(start).Seconds())
	// An updated Secret reaches the reloader's volume at kubelet's next
	// pod sync: about 5 s here (hack/cluster/config.sh), 1 min by default.
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("targets took %.0f s to be scraped; is kubelet's syncFrequency back to 1m?\n%s", d.Seconds(), logs(ctx, kube, prom.Namespace))
	}

	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		var alerts struct {
			Data struct {
				Alerts []struct {
					Labels map[string]string `json:"labels"`
					State  string            `json:"state"`
				} `json:"alerts"`
			} `json:"data"`
		}
		if err := json.Unmarshal(get(t, prom.URL+"/api/v1/alerts"), &alerts); err != nil {
			return false, err
		}
		for _, a := range alerts.Data.Alerts {
			if a.Labels["alertname"] == alert && a.State == "firing" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("alert %s firing: %v\nrules: %s\n%s", alert, err, get(t, prom.URL+"/api/v1/rules"), logs(ctx, kube, prom.Namespace))
	}
	t.Logf("alert firing %.1f s after the monitors were created", time.Since(start).Seconds())

	// Upstream's ClusterRole is all the operator needs here.
	if l := logs(ctx, kube, prom.Namespace); strings.Contains(l, "forbidden") {
		t.Errorf("an RBAC denial in the monitoring pods' logs:\n%s", l)
	}
}

// logs are the last lines of every container's log in ns, for a failure
// message (the cluster is gone once the test ends).
func logs(ctx context.Context, kube kubernetes.Interface, ns string) string {
	pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, p := range pods.Items {
		for _, c := range append(p.Spec.InitContainers, p.Spec.Containers...) {
			out, err := kube.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: c.Name, TailLines: ptr.To[int64](20), Timestamps: true}).DoRaw(ctx)
			fmt.Fprintf(&b, "--- %s/%s (%v)\n%s\n", p.Name, c.Name, err, out)
		}
	}
	return b.String()
}

// createWorkload makes two httpecho targets: a Deployment behind a Service
// with a ServiceMonitor, and a bare pod with a PodMonitor; and a
// PrometheusRule whose alert fires at once.
func createWorkload(ctx context.Context, t *testing.T, kube kubernetes.Interface, dyn dynamic.Interface) {
	t.Helper()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}))
	svcLabels := map[string]string{"app": "httpecho-svc"}
	must(kube.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "httpecho-svc"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: svcLabels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: svcLabels}, Spec: echoPod()},
		},
	}, metav1.CreateOptions{}))
	must(kube.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "httpecho-svc", Labels: svcLabels},
		Spec: corev1.ServiceSpec{
			Selector: svcLabels,
			Ports:    []corev1.ServicePort{{Name: "metrics", Port: 8080}},
		},
	}, metav1.CreateOptions{}))
	podLabels := map[string]string{"app": "httpecho-pod"}
	must(kube.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "httpecho-pod", Labels: podLabels},
		Spec:       echoPod(),
	}, metav1.CreateOptions{}))

	for _, obj := range []map[string]any{
		monitor("ServiceMonitor", "httpecho-svc", "endpoints", svcLabels),
		monitor("PodMonitor", "httpecho-pod", "podMetricsEndpoints", podLabels),
		{
			"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
			"metadata": map[string]any{"name": "promop-test"},
			"spec": map[string]any{"groups": []any{map[string]any{
				"name":  "promop-test",
				"rules": []any{map[string]any{"alert": alert, "expr": "vector(1)", "for": "0s"}},
			}}},
		},
	} {
		u := &unstructured.Unstructured{Object: obj}
		gvr := schema.GroupVersionResource{Group: "monitoring.coreos.com", Version: "v1", Resource: strings.ToLower(u.GetKind()) + "s"}
		must(dyn.Resource(gvr).Namespace(ns).Create(ctx, u, metav1.CreateOptions{}))
	}
}

func monitor(kind, name, endpointsField string, labels map[string]string) map[string]any {
	match := map[string]any{}
	for k, v := range labels {
		match[k] = v
	}
	return map[string]any{
		"apiVersion": "monitoring.coreos.com/v1", "kind": kind,
		"metadata": map[string]any{"name": name},
		"spec": map[string]any{
			"selector":     map[string]any{"matchLabels": match},
			endpointsField: []any{map[string]any{"port": "metrics", "interval": "1s"}},
		},
	}
}

func echoPod() corev1.PodSpec {
	return corev1.PodSpec{
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65532),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Containers: []corev1.Container{{
			Name: "httpecho", Image: echoImage, ImagePullPolicy: corev1.PullNever,
			Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 8080}},
			SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
				Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			},
		}},
	}
}

type sample struct {
	Metric map[string]string `json:"metric"`
}

// query is the instant vector expr evaluates to in Prometheus at base.
func query(t *testing.T, base, expr string) []sample {
	t.Helper()
	var resp struct {
		Status string `json:"status"`
		Data   struct {
			Result []sample `json:"result"`
		} `json:"data"`
	}
	body := get(t, base+"/api/v1/query?query="+url.QueryEscape(expr))
	if err := json.Unmarshal(body, &resp); err != nil || resp.Status != "success" {
		t.Fatalf("query %s: %v: %s", expr, err, body)
	}
	return resp.Data.Result
}

func get(t *testing.T, u string) []byte {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", u, resp.Status, b.String())
	}
	return b.Bytes()
}

// sh runs a command in dir and returns its stdout; a failure shows stderr.
func sh(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}
