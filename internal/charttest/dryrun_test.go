package charttest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

// prometheusOperatorCRDs copies the CRDs the chart uses out of the
// prometheus-operator module (downloaded through the Go module proxy) into
// a directory envtest installs.
func prometheusOperatorCRDs(t *testing.T, p Paths) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", PrometheusOperatorModule)
	cmd.Dir = p.Root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod download -json %s: %v (needs the Go module proxy once; then the module cache)", PrometheusOperatorModule, err)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download %s: %s %v", PrometheusOperatorModule, mod.Error, err)
	}
	dir := t.TempDir()
	for _, name := range []string{"servicemonitors", "podmonitors", "prometheusrules", "scrapeconfigs"} {
		file := fmt.Sprintf("monitoring.coreos.com_%s.yaml", name)
		b, err := os.ReadFile(filepath.Join(mod.Dir, "example", "prometheus-operator-crd", file))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, file), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestServerSideDryRun: a real kube-apiserver, with our CRDs and the
// Prometheus Operator's, accepts every object the chart renders.
func TestServerSideDryRun(t *testing.T) {
	p := paths(t)
	// Render first: a chart error should not wait for the API server.
	cases := []struct {
		name   string
		values []string
	}{
		{"default values", nil},
		{"full values", []string{fullValues}},
	}
	rendered := make([][]*unstructured.Unstructured, len(cases))
	for i, tc := range cases {
		rendered[i] = render(t, p, tc.values...)
	}
	// On a busy machine kube-apiserver takes longer than envtest's default
	// 20s to answer; a slow start is not what this test is about.
	if os.Getenv("KUBEBUILDER_CONTROLPLANE_START_TIMEOUT") == "" {
		t.Setenv("KUBEBUILDER_CONTROLPLANE_START_TIMEOUT", "3m")
	}
	// Without our CRDs: the chart installs them.
	kube := testenv.StartKube(t, testenv.WithoutProjectCRDs(), testenv.WithCRDPaths(prometheusOperatorCRDs(t, p)))
	ctx := context.Background()
	if err := kube.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ReleaseNamespace}}); err != nil {
		t.Fatal(err)
	}
	t.Run("helm install --dry-run=server keeps the API token and prints NOTES", func(t *testing.T) {
		helmInstallDryRun(t, p, kube)
	})
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, o := range rendered[i] {
				if ns := o.GetNamespace(); ns != "" && ns != ReleaseNamespace {
					t.Errorf("%s %s is in namespace %s, not the release's", o.GetKind(), o.GetName(), ns)
				}
				if err := kube.Client.Create(ctx, o, client.DryRunAll); err != nil {
					t.Errorf("API server refused %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
				}
			}
		})
	}
}

// helmInstallDryRun runs `helm install --dry-run=server` against the API
// server: the NOTES render, and the token Secret already in the cluster is
// read back (lookup) instead of a new random one, so an upgrade keeps it.
func helmInstallDryRun(t *testing.T, p Paths, kube *testenv.Kube) {
	helm, err := p.Tool("helm")
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, kube.Env.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	const token = "dG9rZW4tYWxyZWFkeS1pbi10aGUtY2x1c3Rlcg==" // "token-already-in-the-cluster"
	// The Secret as a previous install of the release left it.
	existing := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: "vcon-operator-api-token", Namespace: ReleaseNamespace,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "Helm"},
			Annotations: map[string]string{
				"meta.helm.sh/release-name":      ReleaseName,
				"meta.helm.sh/release-namespace": ReleaseNamespace,
			},
		},
		Data: map[string][]byte{"token": []byte("token-already-in-the-cluster")},
	}
	if err := kube.Client.Create(context.Background(), existing); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kube.Client.Delete(context.Background(), existing) })
	out, err := RunEnv(p.Root, []string{"KUBECONFIG=" + kubeconfig, "HELM_CACHE_HOME=" + t.TempDir(), "HELM_CONFIG_HOME=" + t.TempDir(), "HELM_DATA_HOME=" + t.TempDir()},
		helm, "install", ReleaseName, p.Chart, "--namespace", ReleaseNamespace, "--dry-run=server")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"token: " + token,
		"NOTES:",
		"curl http://localhost:8000/api/health",
		"kubectl -n vcon-system get secret vcon-operator-api-token",
		"--set monitoring.podMonitor.enabled=true",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("helm install --dry-run=server output lacks %q:\n%s", want, out)
		}
	}
}
