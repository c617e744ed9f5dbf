// Package charttest tests the Helm chart in charts/vcon-operator with the
// real tools: helm (lint, template, the values schema), a real API server
// (server-side dry-run of every rendered object, with the Prometheus
// Operator CRDs installed) and promtool (the alert rules, their unit tests
// and the dashboard queries); and it checks that the chart's CRDs and RBAC
// are the ones controller-gen generates from the code. It has no code of
// its own besides helpers.
package charttest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// PrometheusOperatorModule is where the monitoring.coreos.com CRDs come
// from: the files the project itself publishes, never written by hand.
const PrometheusOperatorModule = "github.com/prometheus-operator/prometheus-operator@v0.85.0"

// ReleaseName and ReleaseNamespace are what every test renders with.
const (
	ReleaseName      = "vcon-operator"
	ReleaseNamespace = "vcon-system"
)

// Paths of the repository the tests need.
type Paths struct {
	Root  string // holds go.mod
	Chart string // charts/vcon-operator
	Bin   string // bin/, where hack/tools.sh links helm and promtool
}

// FindPaths walks up from the working directory to go.mod.
func FindPaths() (Paths, error) {
	dir, err := os.Getwd()
	if err != nil {
		return Paths{}, err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return Paths{Root: dir, Chart: filepath.Join(dir, "charts", "vcon-operator"), Bin: filepath.Join(dir, "bin")}, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return Paths{}, errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Tool returns bin/<name>, or an error saying how to build it.
func (p Paths) Tool(name string) (string, error) {
	path := filepath.Join(p.Bin, name)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%s not found at %s: run `hack/tools.sh helm promtool` (or `make tools`) from %s; the first build takes several minutes", name, path, p.Root)
	}
	return path, nil
}

// Run runs a command and returns its combined output, with the command in
// the error.
func Run(dir, name string, args ...string) (string, error) {
	return RunEnv(dir, nil, name, args...)
}

// RunEnv is Run with extra environment variables (KEY=value).
func RunEnv(dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// Template runs `helm template` with the given values files and extra args.
func (p Paths) Template(valuesFiles []string, extra ...string) (string, error) {
	helm, err := p.Tool("helm")
	if err != nil {
		return "", err
	}
	args := []string{"template", ReleaseName, p.Chart, "--namespace", ReleaseNamespace}
	for _, f := range valuesFiles {
		args = append(args, "--values", f)
	}
	args = append(args, extra...)
	return Run(p.Root, helm, args...)
}

// ParseManifests splits a multi-document YAML stream into objects,
// skipping empty documents.
func ParseManifests(manifests string) ([]*unstructured.Unstructured, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(manifests)))
	var objs []*unstructured.Unstructured
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read rendered manifests: %w", err)
		}
		var m map[string]any
		// Strict: a key written twice (say, a label from two helpers) is an
		// error, not a silent last-one-wins.
		if err := yaml.UnmarshalStrict(doc, &m); err != nil {
			return nil, fmt.Errorf("parse rendered document %q: %w", firstLine(doc), err)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

// Find returns the objects of one kind.
func Find(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// RuleGroups is a Prometheus rule file (what promtool reads and what a
// PrometheusRule's spec holds).
type RuleGroups struct {
	Groups []RuleGroup `json:"groups"`
}

// RuleGroup is one group of rules.
type RuleGroup struct {
	Name  string `json:"name"`
	Rules []Rule `json:"rules"`
}

// Rule is an alerting or recording rule.
type Rule struct {
	Alert       string            `json:"alert,omitempty"`
	Record      string            `json:"record,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// RulesOf returns the spec of every PrometheusRule as one rule file.
func RulesOf(objs []*unstructured.Unstructured) (RuleGroups, error) {
	var all RuleGroups
	for _, o := range Find(objs, "PrometheusRule") {
		raw, err := json.Marshal(o.Object["spec"])
		if err != nil {
			return all, err
		}
		var spec RuleGroups
		if err := json.Unmarshal(raw, &spec); err != nil {
			return all, fmt.Errorf("PrometheusRule %s spec: %w", o.GetName(), err)
		}
		all.Groups = append(all.Groups, spec.Groups...)
	}
	return all, nil
}

// Dashboard is the part of a Grafana dashboard model the tests read.
type Dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []Panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

// Panel is one dashboard panel.
type Panel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// grafanaVariables are what Grafana substitutes in a query before sending it
// to Prometheus; each is replaced by a value Prometheus accepts in its place.
var grafanaVariables = strings.NewReplacer(
	"$__rate_interval", "5m",
	"$__interval", "1m",
	"$__range", "1h",
	"$namespace", ".*",
	"$chain", ".*",
)

// SubstituteVariables turns a dashboard query into the PromQL Grafana sends
// when "All" is selected.
func SubstituteVariables(expr string) string { return grafanaVariables.Replace(expr) }
