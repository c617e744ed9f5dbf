// Package crdcheck refuses to run the operator against CRDs older than the
// ones it was built with. An old CRD is not an error the API server
// reports: it prunes every field its schema lacks, so a Chain's new field
// (say workers.schedules) would be dropped on write and the operator would
// act on a spec the user never wrote. The check reads the schema the API
// server publishes (OpenAPI v3, readable by every authenticated client, so
// a namespace-scoped operator needs no permission on CRDs) and compares it
// with the embedded config/crd/bases.
package crdcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/client-go/openapi"
	"sigs.k8s.io/yaml"

	"github.com/vcon-operator/vcon-operator/config/crd"
)

// Fix is what the error tells a user to do.
const Fix = "upgrade the CRDs with the operator: `helm upgrade` with crds.enabled=true (the default), " +
	"or `kubectl apply --server-side -f config/crd/bases/` from this operator's version"

// Want is one kind's fields, as this operator's CRDs declare them.
type Want struct {
	Group, Version, Kind string
	Fields               []string // spec.workers.schedules[].start, ...
}

// Wanted reads the embedded CRDs: every served version of every kind.
func Wanted() ([]Want, error) {
	files, err := fs.Glob(crd.Bases, "bases/*.yaml")
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no embedded CRDs (%v)", err)
	}
	var wants []Want
	for _, f := range files {
		b, err := crd.Bases.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var c apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(b, &c); err != nil {
			return nil, fmt.Errorf("embedded %s: %w", f, err)
		}
		for _, v := range c.Spec.Versions {
			if !v.Served || v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
				continue
			}
			var fields []string
			root := v.Schema.OpenAPIV3Schema
			for _, top := range []string{"spec", "status"} {
				if p, ok := root.Properties[top]; ok {
					fields = append(fields, top)
					fields = append(fields, walkCRD(top, p)...)
				}
			}
			sort.Strings(fields)
			wants = append(wants, Want{Group: c.Spec.Group, Version: v.Name, Kind: c.Spec.Names.Kind, Fields: fields})
		}
	}
	return wants, nil
}

func walkCRD(prefix string, s apiextensionsv1.JSONSchemaProps) []string {
	var out []string
	for name, p := range s.Properties {
		path := prefix + "." + name
		out = append(out, path)
		out = append(out, walkCRD(path, p)...)
	}
	if s.Items != nil && s.Items.Schema != nil {
		out = append(out, walkCRD(prefix+"[]", *s.Items.Schema)...)
	}
	if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
		out = append(out, walkCRD(prefix+"{}", *s.AdditionalProperties.Schema)...)
	}
	return out
}

// served is the part of a published OpenAPI v3 schema the walk reads.
type served struct {
	Ref                  string            `json:"$ref"`
	AllOf                []served          `json:"allOf"`
	Properties           map[string]served `json:"properties"`
	Items                *served           `json:"items"`
	AdditionalProperties *json.RawMessage  `json:"additionalProperties"`
}

func walkServed(prefix string, s served, out map[string]bool) {
	for _, a := range s.AllOf {
		walkServed(prefix, a, out)
	}
	for name, p := range s.Properties {
		path := prefix + "." + name
		out[path] = true
		walkServed(path, p, out)
	}
	if s.Items != nil {
		walkServed(prefix+"[]", *s.Items, out)
	}
	if s.AdditionalProperties != nil {
		var ap served
		if json.Unmarshal(*s.AdditionalProperties, &ap) == nil { // false/true are not schemas
			walkServed(prefix+"{}", ap, out)
		}
	}
}

// Missing compares one kind's published schema with what it wants: the
// fields the cluster's CRD lacks.
func Missing(w Want, doc []byte) ([]string, error) {
	var d struct {
		Components struct {
			Schemas map[string]served `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("read the published schema of %s/%s: %w", w.Group, w.Version, err)
	}
	// The API server names a CRD's schema by its reversed group.
	parts := strings.Split(w.Group, ".")
	slices.Reverse(parts)
	name := strings.Join(parts, ".") + "." + w.Version + "." + w.Kind
	s, ok := d.Components.Schemas[name]
	if !ok {
		return nil, fmt.Errorf("the API server publishes no schema %s: is the %s CRD installed?", name, w.Kind)
	}
	have := map[string]bool{}
	for _, top := range []string{"spec", "status"} {
		if p, ok := s.Properties[top]; ok {
			have[top] = true
			walkServed(top, p, have)
		}
	}
	var missing []string
	for _, f := range w.Fields {
		if !have[f] {
			missing = append(missing, f)
		}
	}
	return missing, nil
}

// Check compares every kind the operator serves with the cluster's. The
// API server publishes a changed CRD's schema a moment after the change
// (an install or upgrade applies the CRDs just before the operator starts),
// so Check asks again until within has passed before it says the CRDs are
// old.
func Check(ctx context.Context, client openapi.Client, within time.Duration) error {
	wants, err := Wanted()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(within)
	for {
		err := check(client, wants)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(2 * time.Second):
		}
	}
}

func check(client openapi.Client, wants []Want) error {
	paths, err := client.Paths()
	if err != nil {
		return fmt.Errorf("read the API server's OpenAPI v3 paths: %w", err)
	}
	var problems []string
	for _, w := range wants {
		gv, ok := paths["apis/"+w.Group+"/"+w.Version]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s.%s/%s is not served: the CRDs are not installed", w.Kind, w.Group, w.Version))
			continue
		}
		doc, err := gv.Schema("application/json")
		if err != nil {
			return fmt.Errorf("read the published schema of %s/%s: %w", w.Group, w.Version, err)
		}
		missing, err := Missing(w, doc)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if len(missing) > 0 {
			shown := missing
			if len(shown) > 5 {
				shown = append(shown[:5:5], fmt.Sprintf("and %d more", len(missing)-5))
			}
			problems = append(problems, fmt.Sprintf("the %s CRD in this cluster is older than this operator: it lacks %s", w.Kind, strings.Join(shown, ", ")))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%s; %s", strings.Join(problems, "; "), Fix)
}
