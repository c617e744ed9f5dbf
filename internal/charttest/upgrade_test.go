package charttest

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

// previousRelease is the chart as users of the last release have it
// installed (helm package of that version, kept in testdata).
const previousRelease = "testdata/releases/vcon-operator-0.1.0.tgz"

// An upgrade from the previous release, with Chains in the cluster: 0.1.0
// shipped its CRDs in crds/, which Helm installed without making them part
// of the release. The first upgrade to templated CRDs must take them over
// (--take-ownership); from then on they upgrade with the chart and stay on
// uninstall, and no Chain, Link or Storage is lost on the way.
func TestUpgradeFromPreviousRelease(t *testing.T) {
	p := paths(t)
	helm, err := p.Tool("helm")
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("KUBEBUILDER_CONTROLPLANE_START_TIMEOUT") == "" {
		t.Setenv("KUBEBUILDER_CONTROLPLANE_START_TIMEOUT", "3m")
	}
	kube := testenv.StartKube(t, testenv.WithoutProjectCRDs(), testenv.WithCRDPaths(prometheusOperatorCRDs(t, p)))
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, kube.Env.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"KUBECONFIG=" + kubeconfig, "HELM_CACHE_HOME=" + t.TempDir(), "HELM_CONFIG_HOME=" + t.TempDir(), "HELM_DATA_HOME=" + t.TempDir()}
	run := func(args ...string) (string, error) { return RunEnv(p.Root, env, helm, args...) }
	ctx := context.Background()

	if _, err := run("install", ReleaseName, filepath.Join(p.Root, "internal", "charttest", previousRelease),
		"--namespace", ReleaseNamespace, "--create-namespace"); err != nil {
		t.Fatal(err)
	}
	// The user's pipeline, created under the previous release.
	objs := sampleObjects(t, p, "chain_calls.yaml", "link_tag.yaml", "storage_files.yaml")
	for _, o := range objs {
		if err := kube.Client.Create(ctx, o); err != nil {
			t.Fatalf("create %T under 0.1.0: %v", o, err)
		}
	}

	out, err := run("upgrade", ReleaseName, p.Chart, "--namespace", ReleaseNamespace)
	if err == nil || !strings.Contains(out, "invalid ownership metadata") {
		t.Fatalf("upgrade from 0.1.0 without --take-ownership: want Helm's ownership error (the documented step), got %v:\n%s", err, out)
	}
	if _, err := run("upgrade", ReleaseName, p.Chart, "--namespace", ReleaseNamespace, "--take-ownership"); err != nil {
		t.Fatal(err)
	}
	generated := generatedCRDSpecs(t, p)
	for name, spec := range generated {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := kube.Client.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
			t.Fatal(err)
		}
		if crd.Labels["app.kubernetes.io/managed-by"] != "Helm" || crd.Annotations["meta.helm.sh/release-name"] != ReleaseName {
			t.Errorf("CRD %s is not part of the release after the upgrade: labels %v annotations %v", name, crd.Labels, crd.Annotations)
		}
		if crd.Annotations["helm.sh/resource-policy"] != "keep" {
			t.Errorf("CRD %s lacks helm.sh/resource-policy: keep after the upgrade", name)
		}
		if got := toMap(t, &crd.Spec); !reflect.DeepEqual(got["versions"], spec["versions"]) {
			t.Errorf("CRD %s after the upgrade is not the chart's", name)
		}
	}
	// A second upgrade (the normal case from now on) needs nothing more.
	if _, err := run("upgrade", ReleaseName, p.Chart, "--namespace", ReleaseNamespace, "--set", "operator.queuePollInterval=3s"); err != nil {
		t.Fatalf("the next upgrade: %v", err)
	}
	assertSamplesKept(t, kube.Client, objs, "after the upgrades")

	if _, err := run("uninstall", ReleaseName, "--namespace", ReleaseNamespace); err != nil {
		t.Fatal(err)
	}
	for name := range generated {
		if err := kube.Client.Get(ctx, client.ObjectKey{Name: name}, &apiextensionsv1.CustomResourceDefinition{}); err != nil {
			t.Errorf("CRD %s after helm uninstall: %v (crds.keep must keep it)", name, err)
		}
	}
	assertSamplesKept(t, kube.Client, objs, "after helm uninstall")
}

func sampleObjects(t *testing.T, p Paths, files ...string) []client.Object {
	t.Helper()
	var out []client.Object
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(p.Root, "config", "samples", f))
		if err != nil {
			t.Fatal(err)
		}
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(b, &meta); err != nil {
			t.Fatal(err)
		}
		var o client.Object
		switch meta.Kind {
		case "Chain":
			o = &vconv1.Chain{}
		case "Link":
			o = &vconv1.Link{}
		case "Storage":
			o = &vconv1.Storage{}
		default:
			t.Fatalf("%s: kind %q", f, meta.Kind)
		}
		if err := yaml.UnmarshalStrict(b, o); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		o.SetNamespace(corev1.NamespaceDefault)
		out = append(out, o)
	}
	return out
}

func assertSamplesKept(t *testing.T, c client.Client, objs []client.Object, when string) {
	t.Helper()
	for _, want := range objs {
		got := want.DeepCopyObject().(client.Object)
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(want), got); err != nil {
			t.Errorf("%T %s %s: %v", want, want.GetName(), when, err)
			continue
		}
		// The new CRDs may default fields the old ones lacked: what the
		// user wrote must be there, unchanged.
		if !contains(specOf(t, got), specOf(t, want)) {
			t.Errorf("%T %s changed %s:\nwrote %v\nread  %v", want, want.GetName(), when, specOf(t, want), specOf(t, got))
		}
	}
}

// contains says whether got holds everything of want: the same scalars,
// every key of want's maps, lists of the same length element by element.
func contains(got, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return false
		}
		for k, wv := range w {
			if !contains(g[k], wv) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !contains(g[i], w[i]) {
				return false
			}
		}
		return true
	default:
		return reflect.DeepEqual(got, want)
	}
}

func specOf(t *testing.T, o runtime.Object) any { return toMap(t, o)["spec"] }

func toMap(t *testing.T, v any) map[string]any {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(v)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func generatedCRDSpecs(t *testing.T, p Paths) map[string]map[string]any {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(p.Root, "config", "crd", "bases", "*.yaml"))
	out := map[string]map[string]any{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.Unmarshal(b, crd); err != nil {
			t.Fatal(err)
		}
		out[crd.Name] = toMap(t, &crd.Spec)
	}
	return out
}
