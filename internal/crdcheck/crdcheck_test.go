package crdcheck_test

import (
	"context"
	"io/fs"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/vcon-operator/vcon-operator/config/crd"
	"github.com/vcon-operator/vcon-operator/internal/crdcheck"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

func embeddedCRDs(t *testing.T) []*apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	files, _ := fs.Glob(crd.Bases, "bases/*.yaml")
	var out []*apiextensionsv1.CustomResourceDefinition
	for _, f := range files {
		b, _ := crd.Bases.ReadFile(f)
		c := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.Unmarshal(b, c); err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	if len(out) != 3 {
		t.Fatalf("want the Chain, Link and Storage CRDs embedded, got %d", len(out))
	}
	return out
}

// olderChain is the Chain CRD as an older release had it: without
// workers.schedules and the status's retry figures.
func olderChain(c *apiextensionsv1.CustomResourceDefinition) {
	for i := range c.Spec.Versions {
		root := c.Spec.Versions[i].Schema.OpenAPIV3Schema
		spec := root.Properties["spec"]
		workers := spec.Properties["workers"]
		delete(workers.Properties, "schedules")
		spec.Properties["workers"] = workers
		root.Properties["spec"] = spec
	}
}

func TestRefusesOlderCRDs(t *testing.T) {
	kube := testenv.StartKube(t, testenv.WithoutProjectCRDs())
	ctx := context.Background()
	openapi := discovery.NewDiscoveryClientForConfigOrDie(kube.Config).OpenAPIV3()

	if err := crdcheck.Check(ctx, openapi, 0); err == nil || !strings.Contains(err.Error(), "the CRDs are not installed") {
		t.Fatalf("no CRDs: got %v, want \"the CRDs are not installed\"", err)
	}

	crds := embeddedCRDs(t)
	for _, c := range crds {
		if c.Spec.Names.Kind == "Chain" {
			olderChain(c)
		}
		if err := kube.Client.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	// The API server publishes new schemas a moment after the CRDs are
	// created: wait until the older Chain is what it serves.
	var err error
	for deadline := time.Now().Add(time.Minute); ; {
		err = crdcheck.Check(ctx, openapi, 0)
		if err != nil && strings.Contains(err.Error(), "lacks") || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, want := range []string{
		"the Chain CRD in this cluster is older than this operator: it lacks spec.workers.schedules",
		crdcheck.Fix,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("older Chain CRD: got %v, want %q", err, want)
		}
	}
	if err != nil && (strings.Contains(err.Error(), "Link CRD") || strings.Contains(err.Error(), "Storage CRD")) {
		t.Errorf("the current Link and Storage CRDs were called old: %v", err)
	}

	// Upgrading the CRD while Check waits: it passes once the new schema
	// is published.
	for _, c := range embeddedCRDs(t) {
		if c.Spec.Names.Kind != "Chain" {
			continue
		}
		cur := &apiextensionsv1.CustomResourceDefinition{}
		if err := kube.Client.Get(ctx, client.ObjectKey{Name: c.Name}, cur); err != nil {
			t.Fatal(err)
		}
		c.ResourceVersion = cur.ResourceVersion
		if err := kube.Client.Update(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := crdcheck.Check(ctx, openapi, time.Minute); err != nil {
		t.Fatalf("current CRDs: %v", err)
	}
}

func TestWantedNamesNestedFields(t *testing.T) {
	wants, err := crdcheck.Wanted()
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]map[string]bool{}
	for _, w := range wants {
		fields[w.Kind] = map[string]bool{}
		for _, f := range w.Fields {
			fields[w.Kind][f] = true
		}
	}
	for kind, want := range map[string][]string{
		"Chain":   {"spec.ingressLists", "spec.workers.schedules", "spec.workers.schedules[].timeZone", "status.conditions[].observedGeneration"},
		"Link":    {"spec.module", "spec.options"},
		"Storage": {"spec.module"},
	} {
		for _, f := range want {
			if !fields[kind][f] {
				t.Errorf("%s: %s not among the wanted fields", kind, f)
			}
		}
	}
}

// `kubectl explain chain.spec...` prints a field's description: every field
// a user can write or read has one (metadata excepted: kubectl explains it
// from ObjectMeta).
func TestEveryFieldExplained(t *testing.T) {
	var walk func(path string, s apiextensionsv1.JSONSchemaProps)
	walk = func(path string, s apiextensionsv1.JSONSchemaProps) {
		for name, p := range s.Properties {
			if path == "" && name == "metadata" {
				continue
			}
			field := strings.TrimPrefix(path+"."+name, ".")
			if strings.TrimSpace(p.Description) == "" {
				t.Errorf("%s has no description: write the Go field's doc comment in api/v1alpha1 and run make manifests", field)
			}
			walk(field, p)
		}
		if s.Items != nil && s.Items.Schema != nil {
			walk(path+"[]", *s.Items.Schema)
		}
		if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
			walk(path+"{}", *s.AdditionalProperties.Schema)
		}
	}
	for _, c := range embeddedCRDs(t) {
		for _, v := range c.Spec.Versions {
			t.Run(c.Spec.Names.Kind+"/"+v.Name, func(t *testing.T) { walk("", *v.Schema.OpenAPIV3Schema) })
		}
	}
}
