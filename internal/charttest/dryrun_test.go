package charttest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	for _, name := range []string{"servicemonitors", "podmonitors", "prometheusrules"} {
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
	kube := testenv.StartKube(t, testenv.WithCRDPaths(prometheusOperatorCRDs(t, p)))
	ctx := context.Background()
	if err := kube.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ReleaseNamespace}}); err != nil {
		t.Fatal(err)
	}
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
