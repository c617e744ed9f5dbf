package charttest

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// permissions expands rules into "group resource verb" triples.
func permissions(rules []rbacv1.PolicyRule) map[string]bool {
	out := map[string]bool{}
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					out[g+" "+res+" "+v] = true
				}
			}
		}
	}
	return out
}

// TestRBACMatchesMarkers: the chart's ClusterRole and leader-election Role
// grant exactly what controller-gen derives from the code's markers
// (config/rbac/role.yaml): nothing missing, and nothing more. The chart
// once granted list and watch on every Secret of the cluster, which no
// marker asked for. Leases are granted only in the release namespace.
func TestRBACMatchesMarkers(t *testing.T) {
	p := paths(t)
	b, err := os.ReadFile(filepath.Join(p.Root, "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatalf("generated role (make manifests writes it): %v", err)
	}
	var generated rbacv1.ClusterRole
	if err := yaml.Unmarshal(b, &generated); err != nil {
		t.Fatal(err)
	}
	want := permissions(generated.Rules)

	objs := render(t, p)
	granted := map[string]bool{}
	for _, kind := range []string{"ClusterRole", "Role"} {
		found := Find(objs, kind)
		if len(found) != 1 {
			t.Fatalf("%d %ss rendered, want 1", len(found), kind)
		}
		var role rbacv1.ClusterRole // same rules field for both kinds
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(found[0].Object, &role); err != nil {
			t.Fatal(err)
		}
		for perm := range permissions(role.Rules) {
			granted[perm] = true
			if kind == "ClusterRole" && strings.HasPrefix(perm, "coordination.k8s.io leases ") {
				t.Errorf("the ClusterRole grants %q: leases belong in the release namespace's Role", perm)
			}
		}
		if kind == "Role" && found[0].GetNamespace() != ReleaseNamespace {
			t.Errorf("the Role is in namespace %q, want the release's %q", found[0].GetNamespace(), ReleaseNamespace)
		}
	}
	var missing, extra []string
	for perm := range want {
		if !granted[perm] {
			missing = append(missing, perm)
		}
	}
	for perm := range granted {
		if !want[perm] {
			extra = append(extra, perm)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	for _, m := range missing {
		t.Errorf("the chart does not grant %q, which the markers (config/rbac/role.yaml) ask for: run make manifests", m)
	}
	for _, e := range extra {
		t.Errorf("the chart grants %q, which no marker asks for: change the markers, not the chart, and run make manifests", e)
	}
	for _, v := range []string{"list", "watch", "*"} {
		if granted[" secrets "+v] {
			t.Errorf("the chart grants %s on secrets: the operator reads the Secrets it needs one by one, past its cache", v)
		}
	}
}
