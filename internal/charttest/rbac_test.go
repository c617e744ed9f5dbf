package charttest

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// TestRBACCoversGeneratedRole: the chart's ClusterRole and leader-election
// Role grant at least every rule controller-gen derives from the code's
// markers (config/rbac/role.yaml), and never a write on Secrets.
func TestRBACCoversGeneratedRole(t *testing.T) {
	p := paths(t)
	b, err := os.ReadFile(filepath.Join(p.Root, "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatalf("generated role (make manifests writes it): %v", err)
	}
	var generated rbacv1.ClusterRole
	if err := yaml.Unmarshal(b, &generated); err != nil {
		t.Fatal(err)
	}
	var granted []rbacv1.PolicyRule
	objs := render(t, p)
	for _, kind := range []string{"ClusterRole", "Role"} {
		for _, o := range Find(objs, kind) {
			var role rbacv1.ClusterRole // same rules field for both kinds
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &role); err != nil {
				t.Fatal(err)
			}
			granted = append(granted, role.Rules...)
		}
	}
	allows := func(group, resource, verb string) bool {
		for _, r := range granted {
			if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) {
				return true
			}
		}
		return false
	}
	for _, rule := range generated.Rules {
		for _, g := range rule.APIGroups {
			for _, res := range rule.Resources {
				for _, v := range rule.Verbs {
					if !allows(g, res, v) {
						t.Errorf("the chart does not grant %s on %s (group %q), which config/rbac/role.yaml requires", v, res, g)
					}
				}
			}
		}
	}
	for _, v := range []string{"create", "update", "patch", "delete", "deletecollection", "*"} {
		if allows("", "secrets", v) {
			t.Errorf("the chart grants %s on secrets: the operator never writes Secrets", v)
		}
	}
}
