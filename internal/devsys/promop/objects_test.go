package promop

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

var testImages = Images{
	Prometheus:        "localhost/vcon-operator/prometheus:v3.16.0",
	Operator:          "localhost/vcon-operator/prometheus-operator:v0.85.0",
	ConfigReloader:    "localhost/vcon-operator/prometheus-config-reloader:v0.85.0",
	PrometheusVersion: "v3.16.0",
}

func TestPromDuration(t *testing.T) {
	for _, tc := range []struct {
		in      time.Duration
		want    string
		wantErr bool
	}{
		{time.Second, "1s", false},
		{1500 * time.Millisecond, "1500ms", false},
		{30 * time.Second, "30s", false},
		{0, "", true},
		{-time.Second, "", true},
		{time.Microsecond, "", true},
	} {
		got, err := promDuration(tc.in)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("promDuration(%v) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestPrometheusVersion(t *testing.T) {
	for _, tc := range []struct {
		module, want string
		wantErr      bool
	}{
		{"v0.316.0", "v3.16.0", false},
		{"v0.300.1", "v3.0.1", false},
		{"v0.305.0", "v3.5.0", false},
		{"v0.55.0", "", true}, // Prometheus 2
		{"v1.2.3", "", true},
		{"v0.316", "", true},
	} {
		got, err := prometheusVersion(tc.module)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("prometheusVersion(%q) = %q, %v; want %q, error %v", tc.module, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestRepository(t *testing.T) {
	for in, want := range map[string]string{
		"localhost/vcon-operator/prometheus:v3.16.0": "localhost/vcon-operator/prometheus",
		"localhost:5000/prometheus:v3":               "localhost:5000/prometheus",
		"localhost:5000/prometheus":                  "localhost:5000/prometheus",
	} {
		if got := repository(in); got != want {
			t.Errorf("repository(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestImagesIn(t *testing.T) {
	cache, bin := t.TempDir(), t.TempDir()
	for tool, files := range map[string][]string{
		"prometheus-v0.316.0":         {"prometheus"},
		"prometheus-operator-v0.85.0": {"prometheus-operator", "prometheus-config-reloader"},
	} {
		dir := filepath.Join(cache, tool)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(dir, f), nil, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join(dir, f), filepath.Join(bin, f)); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, err := ImagesIn(bin)
	if err != nil {
		t.Fatal(err)
	}
	if got != testImages {
		t.Errorf("ImagesIn = %+v\nwant %+v", got, testImages)
	}
	if _, err := ImagesIn(t.TempDir()); err == nil {
		t.Error("ImagesIn of an empty bin/: no error")
	}
}

func TestObjectsNeverPullAndAreHardened(t *testing.T) {
	objs, err := objects(Options{Namespace: "monitoring", ScrapeInterval: time.Second, EvaluationInterval: 2 * time.Second}, testImages)
	if err != nil {
		t.Fatal(err)
	}
	byKind := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		byKind[o.GetKind()+"/"+o.GetName()] = o
	}

	var dep appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(byKind["Deployment/prometheus-operator"].Object, &dep); err != nil {
		t.Fatal(err)
	}
	pod := dep.Spec.Template.Spec
	if sc := pod.SecurityContext; sc == nil || !*sc.RunAsNonRoot || *sc.RunAsUser != nonroot ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("operator pod security context %+v", pod.SecurityContext)
	}
	c := pod.Containers[0]
	if sc := c.SecurityContext; sc == nil || *sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem ||
		len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("operator container security context %+v", c.SecurityContext)
	}
	if c.Image != testImages.Operator || c.ImagePullPolicy == corev1.PullAlways {
		t.Errorf("operator image %s, pull policy %s", c.Image, c.ImagePullPolicy)
	}
	wantArgs := map[string]bool{
		"--prometheus-config-reloader=" + testImages.ConfigReloader:          true,
		"--prometheus-default-base-image=localhost/vcon-operator/prometheus": true,
	}
	for _, a := range c.Args {
		delete(wantArgs, a)
	}
	if len(wantArgs) > 0 {
		t.Errorf("operator args %q miss %v", c.Args, wantArgs)
	}

	spec := byKind["Prometheus/prometheus"].Object["spec"].(map[string]any)
	for field, want := range map[string]any{
		"image": testImages.Prometheus, "version": "v3.16.0", "imagePullPolicy": "IfNotPresent",
		"replicas": int64(1), "scrapeInterval": "1s", "evaluationInterval": "2s",
	} {
		if spec[field] != want {
			t.Errorf("Prometheus spec.%s = %v, want %v", field, spec[field], want)
		}
	}
	for _, sel := range []string{
		"serviceMonitorSelector", "serviceMonitorNamespaceSelector", "podMonitorSelector",
		"podMonitorNamespaceSelector", "ruleSelector", "ruleNamespaceSelector",
	} {
		// An empty selector selects everything; a missing one, nothing.
		if m, ok := spec[sel].(map[string]any); !ok || len(m) != 0 {
			t.Errorf("Prometheus spec.%s = %#v, want {}", sel, spec[sel])
		}
	}
	if _, ok := spec["storage"]; ok {
		t.Error("Prometheus spec.storage set; want the operator's emptyDir")
	}
	for _, o := range objs {
		if o.GetKind() != "Namespace" && o.GetKind() != "ClusterRole" && o.GetKind() != "ClusterRoleBinding" && o.GetNamespace() != "monitoring" {
			t.Errorf("%s %s in namespace %q", o.GetKind(), o.GetName(), o.GetNamespace())
		}
	}
	if _, err := objects(Options{Namespace: "monitoring"}, testImages); err == nil {
		t.Error("objects with zero intervals: no error (Install defaults them)")
	}
}
