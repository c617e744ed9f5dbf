package crdtest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	vconv1alpha1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
)

func clientKey(obj client.Object) client.ObjectKey { return client.ObjectKeyFromObject(obj) }

// installedCRD reads a CRD as the API server holds it.
func installedCRD(t *testing.T, name string) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := kube.Client.Get(testContext(t), client.ObjectKey{Name: name}, crd); err != nil {
		t.Fatalf("CRD %s is not installed: %v", name, err)
	}
	return crd
}

// TestCRDsInstalled checks that every generated CRD was accepted and is
// serving. The API server refuses a CRD whose CEL rules could exceed its
// cost budget, so this is also the check that every rule is bounded.
func TestCRDsInstalled(t *testing.T) {
	files, err := filepath.Glob(repoPath(t, "config", "crd", "bases", "*.yaml"))
	if err != nil || len(files) != 3 {
		t.Fatalf("want the three CRDs in config/crd/bases, got %v (%v)", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var want apiextensionsv1.CustomResourceDefinition
			if err := yaml.UnmarshalStrict(data, &want); err != nil {
				t.Fatal(err)
			}
			got := installedCRD(t, want.Name)
			for _, ct := range []apiextensionsv1.CustomResourceDefinitionConditionType{apiextensionsv1.Established, apiextensionsv1.NamesAccepted} {
				if !crdCondition(got, ct) {
					t.Errorf("condition %s is not True: %+v", ct, got.Status.Conditions)
				}
			}
			if n, m := countRules(want.Spec.Versions[0].Schema.OpenAPIV3Schema), countRules(got.Spec.Versions[0].Schema.OpenAPIV3Schema); n != m || n == 0 {
				t.Errorf("the file has %d CEL rules, the installed CRD %d", n, m)
			}
		})
	}
}

func crdCondition(crd *apiextensionsv1.CustomResourceDefinition, ct apiextensionsv1.CustomResourceDefinitionConditionType) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == ct {
			return c.Status == apiextensionsv1.ConditionTrue
		}
	}
	return false
}

func countRules(s *apiextensionsv1.JSONSchemaProps) int {
	if s == nil {
		return 0
	}
	n := len(s.XValidations)
	for _, p := range s.Properties {
		n += countRules(&p)
	}
	if s.Items != nil {
		n += countRules(s.Items.Schema)
	}
	if s.AdditionalProperties != nil {
		n += countRules(s.AdditionalProperties.Schema)
	}
	return n
}

// TestLargestChainFitsRuntimeCostBudget fills every bounded list of a Chain
// to its maximum, with the longest names allowed, so that the rules that
// compare lists run at their worst case: the API server must evaluate them
// within its per-request budget and accept the object.
func TestLargestChainFitsRuntimeCostBudget(t *testing.T) {
	ns := newNamespace(t)
	long := func(prefix string, i, size int) string {
		s := fmt.Sprintf("%s%d-", prefix, i)
		return s + strings.Repeat("x", size-len(s))
	}
	var ingress, egress, links, storages []string
	for i := range 64 {
		ingress = append(ingress, long("in", i, 512))
		egress = append(egress, long("out", i, 512))
		links = append(links, long("l", i, 253))
	}
	for i := range 32 {
		storages = append(storages, long("s", i, 253))
	}
	var followers []vconv1alpha1.ChainFollower
	for i := range 16 {
		followers = append(followers, vconv1alpha1.ChainFollower{
			Name: long("f", i, 63), URL: "https://" + long("u", i, 2040), EgressList: long("e", i, 512), IngressList: ingress[63-i],
			AuthTokenSecretRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "k"},
			PullingInterval:    &metav1.Duration{Duration: time.Minute}, FetchVconLimit: ptr.To(int32(10000)),
		})
	}
	chain := &vconv1alpha1.Chain{
		ObjectMeta: metav1.ObjectMeta{Name: "largest", Namespace: ns},
		Spec: vconv1alpha1.ChainSpec{
			IngressLists: ingress, EgressLists: egress, Links: links, Storages: storages, Followers: followers,
			Timeout: &metav1.Duration{Duration: 90 * time.Minute},
			Redis:   vconv1alpha1.RedisConnection{URL: "redis+sentinel://" + strings.Repeat("s", 2000) + ":26379/m"},
			Workers: vconv1alpha1.WorkerSpec{MaxReplicas: 1000, Concurrency: 1024, TargetQueueDepth: 1, ScaleDownDelay: &metav1.Duration{Duration: time.Hour}},
		},
	}
	if err := kube.Client.Create(testContext(t), chain); err != nil {
		t.Fatalf("the largest valid Chain was refused: %v", err)
	}
}

// TestServerDefaults checks the defaults a user gets when writing the least.
func TestServerDefaults(t *testing.T) {
	ns := newNamespace(t)
	ctx := testContext(t)
	for _, manifest := range []string{
		"kind: Chain\nmetadata: {name: minimal}\nspec: {ingressLists: [in]}",
		"kind: Chain\nmetadata: {name: follows}\nspec: {ingressLists: [in], followers: [{name: up, url: 'https://up', egressList: out}]}",
		"kind: Link\nmetadata: {name: http}\nspec: {http: {url: 'http://step:8080/'}}",
		"kind: Link\nmetadata: {name: container}\nspec: {container: {image: 'example.com/step:1', port: 8080}}",
	} {
		obj := object(t, "apiVersion: vcon.dev/v1alpha1\n"+manifest)
		obj.SetNamespace(ns)
		if err := kube.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}

	chain := &vconv1alpha1.Chain{}
	if err := kube.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "minimal"}, chain); err != nil {
		t.Fatal(err)
	}
	w := chain.Spec.Workers
	checks := []struct {
		field     string
		got, want any
	}{
		{"spec.enabled", chain.Spec.Enabled, ptr.To(true)},
		{"spec.workers.minReplicas", w.MinReplicas, int32(0)},
		{"spec.workers.maxReplicas", w.MaxReplicas, int32(10)},
		{"spec.workers.targetQueueDepth", w.TargetQueueDepth, int64(100)},
		{"spec.workers.concurrency", w.Concurrency, int32(4)},
		{"spec.workers.scaleDownDelay", w.ScaleDownDelay, &metav1.Duration{Duration: 60 * time.Second}},
		{"spec.timeout (no limit)", chain.Spec.Timeout, (*metav1.Duration)(nil)},
		{"spec.storageFailure", chain.Spec.StorageFailure, vconv1alpha1.StorageFailureDeadLetterVcon},
	}
	follows := &vconv1alpha1.Chain{}
	if err := kube.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "follows"}, follows); err != nil {
		t.Fatal(err)
	}
	f := follows.Spec.Followers[0]
	checks = append(checks, []struct {
		field     string
		got, want any
	}{
		{"followers[0].pullingInterval", f.PullingInterval, &metav1.Duration{Duration: 60 * time.Second}},
		{"followers[0].fetchVconLimit", *f.FetchVconLimit, int32(10)},
		{"followers[0].ingressList (the first ingress list)", f.IngressList, ""},
	}...)

	httpLink := &vconv1alpha1.Link{}
	if err := kube.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "http"}, httpLink); err != nil {
		t.Fatal(err)
	}
	containerLink := &vconv1alpha1.Link{}
	if err := kube.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "container"}, containerLink); err != nil {
		t.Fatal(err)
	}
	checks = append(checks, []struct {
		field     string
		got, want any
	}{
		{"link http.timeout", httpLink.Spec.HTTP.Timeout, &metav1.Duration{Duration: 30 * time.Second}},
		{"link container.path", containerLink.Spec.Container.Path, "/"},
		{"link container.timeout", containerLink.Spec.Container.Timeout, &metav1.Duration{Duration: 30 * time.Second}},
	}...)

	for _, c := range checks {
		if fmt.Sprintf("%#v", deref(c.got)) != fmt.Sprintf("%#v", deref(c.want)) {
			t.Errorf("%s = %v, want %v", c.field, deref(c.got), deref(c.want))
		}
	}
}

// deref shows pointed-to values, so that two equal pointers compare equal.
func deref(v any) any {
	switch p := v.(type) {
	case *bool:
		if p != nil {
			return *p
		}
	case *metav1.Duration:
		if p != nil {
			return p.Duration.String()
		}
	}
	return v
}

// TestPrinterColumns pins what `kubectl get` shows: kubectl prints column
// names in upper case.
func TestPrinterColumns(t *testing.T) {
	ready := `.status.conditions[?(@.type=="Ready")].status`
	step := [][2]string{{"MODULE", ".spec.module"}, {"READY", ready}, {"AGE", ".metadata.creationTimestamp"}}
	cases := []struct {
		crd  string
		want [][2]string
	}{
		{"chains.vcon.dev", [][2]string{
			{"READY", ready},
			{"WORKERS", ".status.workers"},
			{"INGRESS", ".status.queue.ingress"},
			{"IN-FLIGHT", ".status.queue.inFlight"},
			{"RETRY", ".status.queue.retry"},
			{"DLQ", ".status.queue.dlq"},
			{"EGRESS", ".status.queue.egress"},
			{"AGE", ".metadata.creationTimestamp"},
		}},
		{"links.vcon.dev", step},
		{"storages.vcon.dev", step},
	}
	for _, tc := range cases {
		t.Run(tc.crd, func(t *testing.T) {
			crd := installedCRD(t, tc.crd)
			if len(crd.Spec.Versions) != 1 {
				t.Fatalf("want one version, got %d", len(crd.Spec.Versions))
			}
			var got [][2]string
			for _, c := range crd.Spec.Versions[0].AdditionalPrinterColumns {
				got = append(got, [2]string{strings.ToUpper(c.Name), c.JSONPath})
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("columns:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestNamesAndCategory: short names for typing, and the vcon category so
// that `kubectl get vcon` lists all three kinds.
func TestNamesAndCategory(t *testing.T) {
	cases := []struct {
		crd, kind, plural, short string
	}{
		{"chains.vcon.dev", "Chain", "chains", "vchain"},
		{"links.vcon.dev", "Link", "links", "vlink"},
		{"storages.vcon.dev", "Storage", "storages", "vstorage"},
	}
	for _, tc := range cases {
		t.Run(tc.crd, func(t *testing.T) {
			crd := installedCRD(t, tc.crd)
			n := crd.Status.AcceptedNames
			if n.Kind != tc.kind || n.Plural != tc.plural {
				t.Errorf("kind/plural = %s/%s, want %s/%s", n.Kind, n.Plural, tc.kind, tc.plural)
			}
			if !slices.Contains(n.ShortNames, tc.short) {
				t.Errorf("short names %v, want %q among them", n.ShortNames, tc.short)
			}
			if !slices.Contains(n.Categories, "vcon") {
				t.Errorf("categories %v, want vcon", n.Categories)
			}
			if crd.Spec.Scope != apiextensionsv1.NamespaceScoped {
				t.Errorf("scope %s, want Namespaced", crd.Spec.Scope)
			}
			if v := crd.Spec.Versions[0]; v.Subresources == nil || v.Subresources.Status == nil {
				t.Error("no status subresource: the operator's status writes would touch the spec")
			}
		})
	}
}
