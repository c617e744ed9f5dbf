package crdtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	vconv1alpha1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/config"
	"github.com/vcon-operator/vcon-operator/internal/links"
	"github.com/vcon-operator/vcon-operator/internal/storage"
	"github.com/vcon-operator/vcon-operator/internal/workload"
)

// sampleFiles are the YAML files of config/samples other than its
// kustomization, by base name.
func sampleFiles(t *testing.T) []string {
	t.Helper()
	all, err := filepath.Glob(repoPath(t, "config", "samples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range all {
		if filepath.Base(f) != "kustomization.yaml" {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		t.Fatal("config/samples holds no samples")
	}
	return out
}

// createSamples creates every sample object in a fresh namespace and
// returns that namespace.
func createSamples(t *testing.T) string {
	t.Helper()
	ns := newNamespace(t)
	ctx := testContext(t)
	for _, f := range sampleFiles(t) {
		for _, obj := range decodeFile(t, f) {
			if obj.GetNamespace() != "" {
				t.Errorf("%s: %s %s sets namespace %q; samples go wherever the user applies them", filepath.Base(f), obj.GetKind(), obj.GetName(), obj.GetNamespace())
			}
			obj.SetNamespace(ns)
			if err := kube.Client.Create(ctx, obj); err != nil {
				t.Errorf("%s: the API server refused %s %s: %v", filepath.Base(f), obj.GetKind(), obj.GetName(), err)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return ns
}

// TestSamplesAreAccepted creates every sample on the API server and reads
// the vcon.dev ones back through the Go types.
func TestSamplesAreAccepted(t *testing.T) {
	ns := createSamples(t)
	ctx := testContext(t)

	kinds := map[string]int{}
	for _, f := range sampleFiles(t) {
		for _, obj := range decodeFile(t, f) {
			kinds[obj.GetKind()]++
		}
	}
	// The sample is a whole pipeline: tag, filter, webhook; two storages;
	// the chain; the Secrets the steps read their credentials from.
	want := map[string]int{"Chain": 1, "Link": 3, "Storage": 2, "Secret": 2}
	for k, n := range want {
		if kinds[k] != n {
			t.Errorf("%d %s samples, want %d", kinds[k], k, n)
		}
	}

	var chains vconv1alpha1.ChainList
	if err := kube.Client.List(ctx, &chains, client.InNamespace(ns)); err != nil {
		t.Fatalf("list Chains as Go types: %v", err)
	}
	var linkList vconv1alpha1.LinkList
	if err := kube.Client.List(ctx, &linkList, client.InNamespace(ns)); err != nil {
		t.Fatalf("list Links as Go types: %v", err)
	}
	var storageList vconv1alpha1.StorageList
	if err := kube.Client.List(ctx, &storageList, client.InNamespace(ns)); err != nil {
		t.Fatalf("list Storages as Go types: %v", err)
	}
	if len(chains.Items) != 1 || len(linkList.Items) != 3 || len(storageList.Items) != 2 {
		t.Fatalf("read back %d Chains, %d Links, %d Storages", len(chains.Items), len(linkList.Items), len(storageList.Items))
	}
}

// TestSampleKustomizationListsEveryFile: `kubectl apply -k config/samples`
// must apply every sample, and only files that exist.
func TestSampleKustomizationListsEveryFile(t *testing.T) {
	data, err := os.ReadFile(repoPath(t, "config", "samples", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, f := range sampleFiles(t) {
		files = append(files, filepath.Base(f))
	}
	listed := slices.Clone(k.Resources)
	slices.Sort(listed)
	if !slices.Equal(listed, files) {
		t.Errorf("kustomization resources %v, files %v", listed, files)
	}
}

// TestSamplesRenderToAWorkingWorkerConfig follows the sample the way the
// operator and the worker do: the Chain and its steps as stored by the API
// server are rendered to the worker's conserver config and environment,
// every environment variable is resolved from the sample Secrets, and every
// link and storage is built by its module from its options. A sample whose
// options a module refuses, or that names a Secret key that does not
// exist, fails here rather than in a user's cluster.
func TestSamplesRenderToAWorkingWorkerConfig(t *testing.T) {
	ns := createSamples(t)
	ctx := testContext(t)

	var chains vconv1alpha1.ChainList
	var linkList vconv1alpha1.LinkList
	var storageList vconv1alpha1.StorageList
	var secrets corev1.SecretList
	for _, l := range []client.ObjectList{&chains, &linkList, &storageList, &secrets} {
		if err := kube.Client.List(ctx, l, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
	}
	in := workload.Inputs{
		Links:    map[string]*vconv1alpha1.Link{},
		Storages: map[string]*vconv1alpha1.Storage{},
		RedisURL: "redis://redis:6379/0",
		Image:    "ghcr.io/vcon-operator/vcon-operator:latest",
	}
	for i := range linkList.Items {
		in.Links[linkList.Items[i].Name] = &linkList.Items[i]
	}
	for i := range storageList.Items {
		in.Storages[storageList.Items[i].Name] = &storageList.Items[i]
	}

	for i := range chains.Items {
		ch := &chains.Items[i]
		t.Run(ch.Name, func(t *testing.T) {
			in.Chain = ch
			r, err := workload.Render(in)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			env := map[string]string{}
			for _, e := range r.Env {
				v, err := envValue(e, secrets.Items)
				if err != nil {
					t.Errorf("env %s: %v", e.Name, err)
					continue
				}
				env[e.Name] = v
			}
			lookup := func(name string) (string, bool) {
				v, ok := env[name]
				if !ok {
					t.Errorf("the options refer to ${%s}, which no spec.env of the sample provides", name)
				}
				return v, ok
			}
			cfg, err := config.Parse(r.Config, lookup)
			if err != nil {
				t.Fatalf("the worker would refuse its config: %v\n%s", err, r.Config)
			}
			cc, ok := cfg.Chains[ch.Name]
			if !ok {
				t.Fatalf("config has no chain %q:\n%s", ch.Name, r.Config)
			}
			if !slices.Equal(cc.Links, ch.Spec.Links) || !slices.Equal(cc.Storages, ch.Spec.Storages) {
				t.Errorf("config chain runs links %v and storages %v, the Chain says %v and %v", cc.Links, cc.Storages, ch.Spec.Links, ch.Spec.Storages)
			}
			for _, name := range cc.Links {
				m := cfg.Links[name]
				if _, err := links.New(name, m.Module, m.Options, links.Deps{}); err != nil {
					t.Errorf("link %s: %v", name, err)
				}
			}
			for _, name := range cc.Storages {
				m := cfg.Storages[name]
				s, err := storage.New(context.Background(), name, m.Module, m.Options, storage.Deps{})
				if err != nil {
					t.Errorf("storage %s: %v", name, err)
					continue
				}
				if c, ok := s.(storage.Closer); ok {
					_ = c.Close()
				}
			}
			// Credentials stay out of the rendered config, which is a
			// ConfigMap anyone with read access to the namespace can see.
			for _, s := range secrets.Items {
				for _, v := range s.Data {
					if strings.Contains(string(r.Config), string(v)) {
						t.Errorf("the worker config holds the value of Secret %s", s.Name)
					}
				}
			}
		})
	}
}

// envValue resolves one container environment variable against Secrets,
// as the kubelet would.
func envValue(e corev1.EnvVar, secrets []corev1.Secret) (string, error) {
	if e.ValueFrom == nil {
		return e.Value, nil
	}
	ref := e.ValueFrom.SecretKeyRef
	if ref == nil {
		return "", fmt.Errorf("only values and Secret keys are expected, got %+v", e.ValueFrom)
	}
	for _, s := range secrets {
		if s.Name != ref.Name {
			continue
		}
		v, ok := s.Data[ref.Key]
		if !ok {
			return "", fmt.Errorf("Secret %s has no key %q", ref.Name, ref.Key)
		}
		return string(v), nil
	}
	return "", fmt.Errorf("no sample Secret %s", ref.Name)
}
