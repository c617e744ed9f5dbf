package charttest

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// fullValues enables every switch of the chart.
const fullValues = "ci/full-values.yaml"

func paths(t *testing.T) Paths {
	t.Helper()
	p, err := FindPaths()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func render(t *testing.T, p Paths, valuesFiles ...string) []*unstructured.Unstructured {
	t.Helper()
	for i, f := range valuesFiles {
		if !filepath.IsAbs(f) {
			valuesFiles[i] = filepath.Join(p.Chart, f)
		}
	}
	out, err := p.Template(valuesFiles)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := ParseManifests(out)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func TestHelmLint(t *testing.T) {
	p := paths(t)
	helm, err := p.Tool("helm")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		values []string
	}{
		{"default values", nil},
		{"full values", []string{filepath.Join(p.Chart, fullValues)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"lint", "--strict", p.Chart, "--namespace", ReleaseNamespace}
			for _, v := range tc.values {
				args = append(args, "--values", v)
			}
			if _, err := Run(p.Root, helm, args...); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestTemplate pins what each values file renders: the objects, and the
// settings other parts of the system rely on (flags, labels, job names).
func TestTemplate(t *testing.T) {
	p := paths(t)
	for _, tc := range []struct {
		name   string
		values []string
		kinds  map[string]int
		check  func(t *testing.T, objs []*unstructured.Unstructured)
	}{
		{
			name:   "default values: operator and API, no monitoring objects",
			values: nil,
			kinds: map[string]int{
				"Deployment": 2, "Service": 2, "Secret": 1, "ServiceAccount": 1,
				"ClusterRole": 1, "ClusterRoleBinding": 1, "Role": 1, "RoleBinding": 1,
				"ServiceMonitor": 0, "PodMonitor": 0, "PrometheusRule": 0, "ConfigMap": 0, "ScrapeConfig": 0,
			},
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				manager := container(t, objs, "vcon-operator", "manager")
				wantArgs(t, manager, "--leader-elect", "--metrics-bind-address=:8080", "--health-probe-bind-address=:8081",
					"--worker-image=ghcr.io/vcon-operator/vcon-operator:0.1.0", "--redis-url=redis://redis:6379/0", "--queue-poll-interval=2s",
					"--kube-api-qps=200", "--kube-api-burst=400", "--max-concurrent-reconciles=10")
				for _, a := range stringsAt(manager, "args") {
					if strings.HasPrefix(a, "--watch-namespaces") {
						t.Errorf("by default the operator watches every namespace, got %s", a)
					}
				}
				api := container(t, objs, "vcon-operator-api", "api")
				if got := envFrom(api, "CONSERVER_API_TOKEN"); got != "Secret vcon-operator-api-token/token" {
					t.Errorf("CONSERVER_API_TOKEN = %s, want it from the generated Secret vcon-operator-api-token/token", got)
				}
				if got := envFrom(api, "REDIS_URL"); got != "value redis://redis:6379/0" {
					t.Errorf("API REDIS_URL = %s", got)
				}
				// conserver's CORSMiddleware(allow_origins=["*"]).
				wantArgs(t, api, "--cors-allowed-origins=*")
				secret := one(t, objs, "Secret", "vcon-operator-api-token")
				token, _, _ := unstructured.NestedString(secret.Object, "data", "token")
				if len(token) < 48 {
					t.Errorf("generated token %q is too short", token)
				}
			},
		},
		{
			name:   "full values: every monitoring object, Redis URL from a Secret",
			values: []string{fullValues},
			kinds: map[string]int{
				"Deployment": 2, "Service": 2, "Secret": 1, "ServiceMonitor": 2, "PodMonitor": 1,
				"PrometheusRule": 1, "ConfigMap": 1, "ScrapeConfig": 1,
			},
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				manager := container(t, objs, "vcon-operator", "manager")
				for _, a := range stringsAt(manager, "args") {
					if strings.HasPrefix(a, "--redis-url") {
						t.Errorf("with redis.existingSecret the URL must not be a flag, got %s", a)
					}
				}
				if got := envFrom(manager, "REDIS_URL"); got != "Secret vcon-redis/url" {
					t.Errorf("manager REDIS_URL = %s, want from Secret vcon-redis/url", got)
				}
				wantArgs(t, manager, "--worker-image=ghcr.io/vcon-operator/vcon-operator:v0.1.0", "--zap-devel=false")

				apiSM := one(t, objs, "ServiceMonitor", "vcon-operator-api")
				if job := relabelJob(apiSM, "endpoints"); job != "vcon-server" {
					t.Errorf("API ServiceMonitor sets job %q, want vcon-server (the guide's ServiceDown is up{job=\"vcon-server\"})", job)
				}
				// With no API pod a ServiceMonitor has no target: the
				// ScrapeConfig through the Service keeps up{job="vcon-server"}.
				sc := one(t, objs, "ScrapeConfig", "vcon-operator-api-service")
				if job, _, _ := unstructured.NestedString(sc.Object, "spec", "jobName"); job != "vcon-server" {
					t.Errorf("API ScrapeConfig job %q, want vcon-server", job)
				}
				if tg := fmt.Sprint(sc.Object["spec"].(map[string]any)["staticConfigs"]); !strings.Contains(tg, "vcon-operator-api.vcon-system.svc:8000") {
					t.Errorf("API ScrapeConfig targets %s, want the Service vcon-operator-api.vcon-system.svc:8000", tg)
				}
				opSM := one(t, objs, "ServiceMonitor", "vcon-operator")
				if job := relabelJob(opSM, "endpoints"); job != "vcon-operator" {
					t.Errorf("operator ServiceMonitor sets job %q, want vcon-operator", job)
				}
				if !honorLabels(opSM, "endpoints") {
					t.Error("operator ServiceMonitor must honor labels: its series carry the Chain's namespace")
				}
				pm := one(t, objs, "PodMonitor", "vcon-operator-workers")
				if !honorLabels(pm, "podMetricsEndpoints") {
					t.Error("PodMonitor must honor labels: workers export chain themselves")
				}
				sel, _, _ := unstructured.NestedStringMap(pm.Object, "spec", "selector", "matchLabels")
				if sel["app.kubernetes.io/name"] != "vcon-worker" || sel["app.kubernetes.io/managed-by"] != "vcon-operator" {
					t.Errorf("PodMonitor selector %v does not select worker pods", sel)
				}
				if anyNS, _, _ := unstructured.NestedBool(pm.Object, "spec", "namespaceSelector", "any"); !anyNS {
					t.Error("PodMonitor must look in every namespace by default")
				}
				for _, o := range append(append(Find(objs, "ServiceMonitor"), Find(objs, "PodMonitor")...), Find(objs, "PrometheusRule")...) {
					if o.GetLabels()["release"] != "kube-prometheus-stack" {
						t.Errorf("%s %s lacks monitoring.additionalLabels", o.GetKind(), o.GetName())
					}
				}
				cm := one(t, objs, "ConfigMap", "vcon-operator-dashboard")
				if cm.GetLabels()["grafana_dashboard"] != "1" {
					t.Errorf("dashboard ConfigMap labels %v lack grafana_dashboard: \"1\"", cm.GetLabels())
				}
				api := container(t, objs, "vcon-operator-api", "api")
				if got := envFrom(api, "CONSERVER_CONFIG_FILE"); got != "value /etc/vcon/config.yml" {
					t.Errorf("CONSERVER_CONFIG_FILE = %s", got)
				}
				if got := envFrom(api, "CONSERVER_HEADER_NAME"); got != "value x-conserver-api-token" {
					t.Errorf("CONSERVER_HEADER_NAME = %s", got)
				}
				if got := envFrom(api, "VCON_MAX_BODY_BYTES"); got != "value 52428800" {
					t.Errorf("VCON_MAX_BODY_BYTES = %s, want api.maxBodyBytes", got)
				}
				if got := envFrom(api, "VCON_CONFIG_SHOW_SECRETS"); got != "value false" {
					t.Errorf("VCON_CONFIG_SHOW_SECRETS = %s, want api.configShowSecrets", got)
				}
				wantArgs(t, api, "--cors-allowed-origins=https://app.example.com,http://localhost:3000", "--allow-config-write=false")
			},
		},
		{
			name:   "operator.watchNamespaces: a Role in each, no cluster-wide RBAC",
			values: []string{watchNamespacesValues(t)},
			kinds:  map[string]int{"ClusterRole": 0, "ClusterRoleBinding": 0, "Role": 3, "RoleBinding": 3},
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				wantArgs(t, container(t, objs, "vcon-operator", "manager"), "--watch-namespaces=team-a,team-b")
				for _, ns := range append([]string{ReleaseNamespace}, testWatchNamespaces...) {
					found := false
					for _, r := range Find(objs, "Role") {
						found = found || r.GetNamespace() == ns
					}
					if !found {
						t.Errorf("no Role in namespace %s", ns)
					}
				}
			},
		},
		{
			name:   "alertFor overrides the for: of the named alerts only",
			values: []string{fullValues, alertForValues(t)},
			kinds:  map[string]int{"PrometheusRule": 1},
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				fors := map[string]string{}
				for _, g := range one(t, objs, "PrometheusRule", "vcon-operator").Object["spec"].(map[string]any)["groups"].([]any) {
					for _, r := range g.(map[string]any)["rules"].([]any) {
						r := r.(map[string]any)
						fors[fmt.Sprint(r["alert"])] = fmt.Sprint(r["for"])
					}
				}
				if fors["DLQNotEmpty"] != "10m" || fors["ServiceDown"] != "2m" || fors["HighQueueDepth"] != "5m" {
					t.Errorf("alert for: DLQNotEmpty %s, ServiceDown %s, HighQueueDepth %s; want alertFor's 10m and 2m, the guide's 5m",
						fors["DLQNotEmpty"], fors["ServiceDown"], fors["HighQueueDepth"])
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := render(t, p, tc.values...)
			for kind, want := range tc.kinds {
				if got := len(Find(objs, kind)); got != want {
					t.Errorf("%d %s rendered, want %d", got, kind, want)
				}
			}
			for _, d := range Find(objs, "Deployment") {
				hardened(t, d)
			}
			tc.check(t, objs)
		})
	}
}

func alertForValues(t *testing.T) string {
	f := filepath.Join(t.TempDir(), "alert-for.yaml")
	if err := os.WriteFile(f, []byte("monitoring:\n  prometheusRule:\n    alertFor: {DLQNotEmpty: 10m, ServiceDown: 2m}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestValuesSchemaRefusesMistakes: a typo or a wrong type in values fails
// `helm template` (and so `helm install`) and names the offending key.
func TestValuesSchemaRefusesMistakes(t *testing.T) {
	p := paths(t)
	for _, tc := range []struct {
		file string
		want string // in helm's error
	}{
		{"typo-top-level.yaml", "monitorng"},
		{"typo-nested.yaml", "enable"},
		{"wrong-type.yaml", "replicas"},
		{"bad-enum.yaml", "pullPolicy"},
		{"unknown-alert.yaml", "disabledAlerts"},
		{"bad-duration.yaml", "interval"},
		{"bad-cors-origin.yaml", "allowedOrigins"},
		{"typo-worker-defaults.yaml", "nodeSelecter"},
		{"bad-watch-namespace.yaml", "watchNamespaces"},
		{"bad-kube-api-qps.yaml", "kubeAPIQPS"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			out, err := p.Template([]string{filepath.Join(p.Root, "internal", "charttest", "testdata", "bad-values", tc.file)})
			if err == nil {
				t.Fatalf("helm template accepted %s", tc.file)
			}
			if !strings.Contains(out, "values don't meet the specifications of the schema") || !strings.Contains(out, tc.want) {
				t.Errorf("error does not come from the schema or does not name %q:\n%s", tc.want, out)
			}
		})
	}
}

// TestCRDsInSyncWithGenerated: the chart ships the generated CRDs unchanged
// (`make manifests` copies them).
// The chart's CRDs are templates (hack/chartcrds) that must render to
// exactly what controller-gen generates, with the release's labels, and
// the keep policy unless crds.keep is off.
func TestCRDsInSyncWithGenerated(t *testing.T) {
	p := paths(t)
	generated, err := filepath.Glob(filepath.Join(p.Root, "config", "crd", "bases", "*.yaml"))
	if err != nil || len(generated) == 0 {
		t.Fatalf("no generated CRDs in config/crd/bases (%v)", err)
	}
	want := map[string]map[string]any{}
	for _, g := range generated {
		b, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		var crd map[string]any
		if err := yaml.Unmarshal(b, &crd); err != nil {
			t.Fatal(err)
		}
		want[crd["metadata"].(map[string]any)["name"].(string)] = crd["spec"].(map[string]any)
	}
	rendered := func(t *testing.T, sets ...string) []*unstructured.Unstructured {
		var extra []string
		for _, s := range sets {
			extra = append(extra, "--set", s)
		}
		out, err := p.Template(nil, extra...)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := ParseManifests(out)
		if err != nil {
			t.Fatal(err)
		}
		return Find(objs, "CustomResourceDefinition")
	}
	t.Run("default: every generated CRD, kept on uninstall", func(t *testing.T) {
		crds := rendered(t)
		if len(crds) != len(want) {
			t.Fatalf("the chart renders %d CRDs, config/crd/bases has %d: run make manifests", len(crds), len(want))
		}
		for _, c := range crds {
			spec, ok := want[c.GetName()]
			if !ok {
				t.Errorf("the chart renders CRD %s, which controller-gen does not generate: run make manifests", c.GetName())
				continue
			}
			if !reflect.DeepEqual(c.Object["spec"], spec) {
				t.Errorf("the chart's CRD %s differs from config/crd/bases: run make manifests", c.GetName())
			}
			if got := c.GetAnnotations()["helm.sh/resource-policy"]; got != "keep" {
				t.Errorf("CRD %s: helm.sh/resource-policy %q, want keep", c.GetName(), got)
			}
			if got := c.GetLabels()["app.kubernetes.io/managed-by"]; got != "Helm" {
				t.Errorf("CRD %s: managed-by %q, want Helm", c.GetName(), got)
			}
		}
	})
	t.Run("crds.keep=false: deleted with the release", func(t *testing.T) {
		for _, c := range rendered(t, "crds.keep=false") {
			if _, ok := c.GetAnnotations()["helm.sh/resource-policy"]; ok {
				t.Errorf("CRD %s keeps the resource policy with crds.keep=false", c.GetName())
			}
		}
	})
	t.Run("crds.enabled=false: none", func(t *testing.T) {
		if crds := rendered(t, "crds.enabled=false"); len(crds) != 0 {
			t.Errorf("crds.enabled=false renders %d CRDs", len(crds))
		}
	})
}

func one(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range Find(objs, kind) {
		if o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s rendered", kind, name)
	return nil
}

func container(t *testing.T, objs []*unstructured.Unstructured, deployment, name string) map[string]any {
	t.Helper()
	d := one(t, objs, "Deployment", deployment)
	cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	for _, c := range cs {
		if m, ok := c.(map[string]any); ok && m["name"] == name {
			return m
		}
	}
	t.Fatalf("Deployment %s has no container %s", deployment, name)
	return nil
}

func stringsAt(obj map[string]any, field string) []string {
	s, _, _ := unstructured.NestedStringSlice(obj, field)
	return s
}

func wantArgs(t *testing.T, c map[string]any, want ...string) {
	t.Helper()
	args := stringsAt(c, "args")
	for _, w := range want {
		if !slices.Contains(args, w) {
			t.Errorf("container %s args %v lack %s", c["name"], args, w)
		}
	}
}

// envFrom describes where an env var comes from: "value X", "Secret name/key" or "".
func envFrom(c map[string]any, name string) string {
	env, _, _ := unstructured.NestedSlice(c, "env")
	for _, e := range env {
		m, _ := e.(map[string]any)
		if m["name"] != name {
			continue
		}
		if v, ok := m["value"].(string); ok {
			return "value " + v
		}
		n, _, _ := unstructured.NestedString(m, "valueFrom", "secretKeyRef", "name")
		k, _, _ := unstructured.NestedString(m, "valueFrom", "secretKeyRef", "key")
		return "Secret " + n + "/" + k
	}
	return ""
}

func endpoints(o *unstructured.Unstructured, field string) []map[string]any {
	s, _, _ := unstructured.NestedSlice(o.Object, "spec", field)
	var out []map[string]any
	for _, e := range s {
		if m, ok := e.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func relabelJob(o *unstructured.Unstructured, field string) string {
	for _, e := range endpoints(o, field) {
		rs, _, _ := unstructured.NestedSlice(e, "relabelings")
		for _, r := range rs {
			m, _ := r.(map[string]any)
			if m["targetLabel"] == "job" {
				s, _ := m["replacement"].(string)
				return s
			}
		}
	}
	return ""
}

func honorLabels(o *unstructured.Unstructured, field string) bool {
	eps := endpoints(o, field)
	for _, e := range eps {
		if h, _ := e["honorLabels"].(bool); !h {
			return false
		}
	}
	return len(eps) > 0
}

// hardened: every container runs as non-root, read-only, without
// capabilities or privilege escalation, under the RuntimeDefault seccomp.
func hardened(t *testing.T, d *unstructured.Unstructured) {
	t.Helper()
	cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	for _, c := range cs {
		m := c.(map[string]any)
		sc, _, _ := unstructured.NestedMap(m, "securityContext")
		drop, _, _ := unstructured.NestedStringSlice(sc, "capabilities", "drop")
		seccomp, _, _ := unstructured.NestedString(sc, "seccompProfile", "type")
		if sc["runAsNonRoot"] != true || sc["readOnlyRootFilesystem"] != true || sc["allowPrivilegeEscalation"] != false ||
			!slices.Equal(drop, []string{"ALL"}) || seccomp != "RuntimeDefault" {
			t.Errorf("Deployment %s container %s is not hardened: %v", d.GetName(), m["name"], sc)
		}
		for _, probe := range []string{"livenessProbe", "readinessProbe"} {
			if _, ok := m[probe]; !ok {
				t.Errorf("Deployment %s container %s has no %s", d.GetName(), m["name"], probe)
			}
		}
		if _, ok := m["resources"]; !ok {
			t.Errorf("Deployment %s container %s has no resources", d.GetName(), m["name"])
		}
	}
}
