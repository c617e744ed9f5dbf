package charttest

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

const runbookBase = "https://github.com/vcon-operator/vcon-operator/blob/main/docs/runbooks/"

// unit test files in testdata, run by promtool next to the rendered rules.
var ruleTests = []string{"alerts.test.yaml", "guide-queries.test.yaml"}

func renderedRules(t *testing.T, p Paths, values ...string) RuleGroups {
	t.Helper()
	rules, err := RulesOf(render(t, p, values...))
	if err != nil {
		t.Fatal(err)
	}
	return rules
}

func writeYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestPromtool checks the rendered rules and runs the unit tests of every
// alert on series shaped like ours (testdata/alerts.test.yaml) and of the
// guide's "Key Prometheus Queries" (testdata/guide-queries.test.yaml).
func TestPromtool(t *testing.T) {
	p := paths(t)
	promtool, err := p.Tool("promtool")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeYAML(t, filepath.Join(dir, "rules.yaml"), renderedRules(t, p, fullValues))
	for _, f := range ruleTests {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"check rules", []string{"check", "rules", "rules.yaml"}},
		{"test rules", append([]string{"test", "rules"}, ruleTests...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Run(dir, promtool, tc.args...); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestAlerts pins the rule set: the guide's four alerts verbatim, every
// alert with a runbook in docs/runbooks and a promtool unit test, and
// disabledAlerts honoured.
func TestAlerts(t *testing.T) {
	p := paths(t)
	rules := renderedRules(t, p, fullValues)
	alerts := map[string]Rule{}
	groupOf := map[string]string{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if _, dup := alerts[r.Alert]; dup {
				t.Errorf("alert %s rendered twice", r.Alert)
			}
			alerts[r.Alert] = r
			groupOf[r.Alert] = g.Name
		}
	}

	t.Run("the guide's alerts exactly as written", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join("testdata", "guide-alerts.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var guide RuleGroups
		if err := yaml.Unmarshal(b, &guide); err != nil {
			t.Fatal(err)
		}
		for _, want := range guide.Groups[0].Rules {
			got, ok := alerts[want.Alert]
			if !ok {
				t.Errorf("guide alert %s missing", want.Alert)
				continue
			}
			if groupOf[want.Alert] != guide.Groups[0].Name {
				t.Errorf("%s is in group %s, the guide's is %s", want.Alert, groupOf[want.Alert], guide.Groups[0].Name)
			}
			gotAnn := maps.Clone(got.Annotations)
			delete(gotAnn, "runbook_url")
			if got.Expr != want.Expr || got.For != want.For || !maps.Equal(got.Labels, want.Labels) || !maps.Equal(gotAnn, want.Annotations) {
				t.Errorf("%s differs from the guide:\n got %+v\nwant %+v", want.Alert, got, want)
			}
		}
	})

	testFile, err := os.ReadFile(filepath.Join("testdata", "alerts.test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range slices.Sorted(maps.Keys(alerts)) {
		t.Run(name, func(t *testing.T) {
			r := alerts[name]
			if want := runbookBase + name + ".md"; r.Annotations["runbook_url"] != want {
				t.Errorf("runbook_url %q, want %q", r.Annotations["runbook_url"], want)
			}
			if _, err := os.Stat(filepath.Join(p.Root, "docs", "runbooks", name+".md")); err != nil {
				t.Errorf("no runbook: %v", err)
			}
			if sev := r.Labels["severity"]; sev != "warning" && sev != "critical" {
				t.Errorf("severity %q, want warning or critical", sev)
			}
			if r.Annotations["summary"] == "" {
				t.Error("no summary annotation")
			}
			if !strings.Contains(string(testFile), "alertname: "+name+"\n") {
				t.Error("no promtool unit test in testdata/alerts.test.yaml")
			}
		})
	}

	t.Run("disabledAlerts removes an alert", func(t *testing.T) {
		values := filepath.Join(t.TempDir(), "disabled.yaml")
		writeYAML(t, values, map[string]any{"monitoring": map[string]any{"prometheusRule": map[string]any{
			"enabled": true, "disabledAlerts": []string{"DLQNotEmpty", "OperatorDown"},
		}}})
		left := renderedRules(t, p, values)
		var names []string
		for _, g := range left.Groups {
			for _, r := range g.Rules {
				names = append(names, r.Alert)
			}
		}
		if slices.Contains(names, "DLQNotEmpty") || slices.Contains(names, "OperatorDown") || len(names) != len(alerts)-2 {
			t.Errorf("rendered %v", names)
		}
	})
}

// TestDashboard: the ConfigMap holds a dashboard that parses, has the
// namespace and chain variables, only time-series panels, the guide's
// panels and ours, and queries that are all valid PromQL once Grafana's
// variables are substituted (promtool checks them as recording rules).
func TestDashboard(t *testing.T) {
	p := paths(t)
	objs := render(t, p, fullValues)
	cm := one(t, objs, "ConfigMap", "vcon-operator-dashboard")
	raw, _, _ := unstructured.NestedString(cm.Object, "data", "vcon-operator.json")
	var d Dashboard
	if err := json.Unmarshal([]byte(raw), &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}

	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Name)
	}
	for _, want := range []string{"datasource", "namespace", "chain"} {
		if !slices.Contains(vars, want) {
			t.Errorf("no template variable %s (have %v)", want, vars)
		}
	}

	titles := map[string]bool{}
	var exprs []string
	for _, panel := range d.Panels {
		if panel.Type == "row" {
			continue
		}
		titles[panel.Title] = true
		if panel.Type != "timeseries" {
			t.Errorf("panel %q is %s, want timeseries", panel.Title, panel.Type)
		}
		if len(panel.Targets) == 0 {
			t.Errorf("panel %q has no query", panel.Title)
		}
		for _, target := range panel.Targets {
			exprs = append(exprs, target.Expr)
			perChain := strings.Contains(target.Expr, "vcon_") && !strings.Contains(target.Expr, "vcon_api_") || strings.Contains(target.Expr, "redis_list_length")
			if perChain && (!strings.Contains(target.Expr, `namespace=~"$namespace"`) || !strings.Contains(target.Expr, `chain=~"$chain"`)) {
				t.Errorf("panel %q query ignores the namespace/chain variables: %s", panel.Title, target.Expr)
			}
		}
	}
	for _, want := range []string{
		"Queue Depth", "Processing Rate", "DLQ Items", // the guide's
		"Throughput per Chain (vCons/min)", "Error Ratio per Chain", "p95 Processing Latency", "Workers vs Desired", "In-flight vCons",
	} {
		if !titles[want] {
			t.Errorf("no panel %q", want)
		}
	}

	// Every query (and variable query's metric) as a recording rule: promtool
	// parses each one and refuses the file on the first invalid query.
	var rules []Rule
	for i, e := range exprs {
		rules = append(rules, Rule{Record: fmt.Sprintf("dashboard:query_%d", i), Expr: SubstituteVariables(e)})
	}
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*\w+\)$`)
	for _, v := range d.Templating.List {
		q, ok := v.Query.(map[string]any)
		if !ok {
			continue
		}
		s, _ := q["query"].(string)
		m := labelValues.FindStringSubmatch(s)
		if m == nil {
			t.Errorf("variable %s query %q is not label_values(<selector>, <label>)", v.Name, s)
			continue
		}
		rules = append(rules, Rule{Record: "dashboard:variable_" + v.Name, Expr: SubstituteVariables(m[1])})
	}
	promtool, err := p.Tool("promtool")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "dashboard-queries.yaml")
	writeYAML(t, file, RuleGroups{Groups: []RuleGroup{{Name: "dashboard", Rules: rules}}})
	if out, err := Run(p.Root, promtool, "check", "rules", "--lint=none", file); err != nil {
		t.Fatal(err)
	} else if !strings.Contains(out, fmt.Sprintf("SUCCESS: %d rules found", len(rules))) {
		t.Errorf("promtool did not check %d queries:\n%s", len(rules), out)
	}
}
