package charttest

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
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

// clusterScope names the ClusterRole's grants in grantsByScope.
const clusterScope = "(cluster)"

// testWatchNamespaces are the namespaces the tests render
// operator.watchNamespaces with.
var testWatchNamespaces = []string{"team-a", "team-b"}

// TestRBACMatchesMarkers: in each install mode, the chart grants exactly
// what controller-gen derives from the code's markers
// (config/rbac/role.yaml), where it should and nowhere else: nothing
// missing, and nothing more. The chart once granted list and watch on
// every Secret of the cluster, which no marker asked for. Leases are
// granted only in the release namespace; with operator.watchNamespaces
// nothing is granted cluster-wide.
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
	reconcile, leader := map[string]bool{}, map[string]bool{}
	for perm := range permissions(generated.Rules) {
		switch {
		case strings.HasPrefix(perm, "coordination.k8s.io leases "):
			leader[perm] = true
		case strings.Contains(perm, " events "):
			leader[perm] = true
			reconcile[perm] = true
		default:
			reconcile[perm] = true
		}
	}
	watched := map[string]map[string]bool{ReleaseNamespace: leader}
	for _, ns := range testWatchNamespaces {
		watched[ns] = reconcile
	}
	for _, tc := range []struct {
		name   string
		values []string
		want   map[string]map[string]bool // scope: the ClusterRole or a namespace
	}{
		{"every namespace", nil, map[string]map[string]bool{clusterScope: reconcile, ReleaseNamespace: leader}},
		{"operator.watchNamespaces", []string{watchNamespacesValues(t)}, watched},
	} {
		t.Run(tc.name, func(t *testing.T) {
			granted := grantsByScope(t, render(t, p, tc.values...))
			for scope, want := range tc.want {
				var missing, extra []string
				for perm := range want {
					if !granted[scope][perm] {
						missing = append(missing, perm)
					}
				}
				for perm := range granted[scope] {
					if !want[perm] {
						extra = append(extra, perm)
					}
				}
				sort.Strings(missing)
				sort.Strings(extra)
				for _, m := range missing {
					t.Errorf("%s: the chart does not grant %q, which the markers (config/rbac/role.yaml) ask for: run make manifests", scope, m)
				}
				for _, e := range extra {
					t.Errorf("%s: the chart grants %q, which no marker asks for there: change the markers, not the chart, and run make manifests", scope, e)
				}
			}
			for scope, perms := range granted {
				if _, ok := tc.want[scope]; !ok {
					t.Errorf("the chart grants %d permissions in %s, where it should grant none", len(perms), scope)
				}
				for _, v := range []string{"list", "watch", "*"} {
					if perms[" secrets "+v] {
						t.Errorf("%s: the chart grants %s on secrets: the operator reads the Secrets it needs one by one, past its cache", scope, v)
					}
				}
			}
		})
	}
}

// grantsByScope returns what the rendered roles grant the operator's
// ServiceAccount, by where: clusterScope or a namespace. Only roles bound
// to it count, and every role must be bound.
func grantsByScope(t *testing.T, objs []*unstructured.Unstructured) map[string]map[string]bool {
	t.Helper()
	rules := map[string][]rbacv1.PolicyRule{} // kind/namespace/name
	for _, kind := range []string{"ClusterRole", "Role"} {
		for _, o := range Find(objs, kind) {
			var role rbacv1.ClusterRole // same rules field for both kinds
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &role); err != nil {
				t.Fatal(err)
			}
			rules[kind+"/"+o.GetNamespace()+"/"+o.GetName()] = role.Rules
		}
	}
	granted := map[string]map[string]bool{}
	bound := map[string]bool{}
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		for _, o := range Find(objs, kind) {
			var binding rbacv1.RoleBinding // same fields for both kinds
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &binding); err != nil {
				t.Fatal(err)
			}
			if len(binding.Subjects) != 1 || binding.Subjects[0].Kind != "ServiceAccount" ||
				binding.Subjects[0].Name != ReleaseName || binding.Subjects[0].Namespace != ReleaseNamespace {
				t.Errorf("%s %s/%s binds %+v, want the operator's ServiceAccount %s/%s only", kind, o.GetNamespace(), o.GetName(), binding.Subjects, ReleaseNamespace, ReleaseName)
			}
			scope := o.GetNamespace()
			if kind == "ClusterRoleBinding" {
				scope = clusterScope
			}
			// A RoleBinding may grant a ClusterRole's rules in its own namespace.
			refNS := o.GetNamespace()
			if binding.RoleRef.Kind == "ClusterRole" {
				refNS = ""
			}
			ref := binding.RoleRef.Kind + "/" + refNS + "/" + binding.RoleRef.Name
			rs, ok := rules[ref]
			if !ok {
				t.Errorf("%s %s/%s refers to %s, which the chart does not render", kind, o.GetNamespace(), o.GetName(), ref)
				continue
			}
			bound[ref] = true
			if granted[scope] == nil {
				granted[scope] = map[string]bool{}
			}
			for perm := range permissions(rs) {
				granted[scope][perm] = true
			}
		}
	}
	for ref := range rules {
		if !bound[ref] {
			t.Errorf("%s is rendered but bound to nothing", ref)
		}
	}
	return granted
}

func watchNamespacesValues(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "watch-namespaces.yaml")
	if err := os.WriteFile(f, []byte("operator:\n  watchNamespaces: ["+strings.Join(testWatchNamespaces, ", ")+"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}
