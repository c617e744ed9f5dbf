package charttest

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// TestPluginAccess: the API Service tells kubectl vcon where its token is
// (internal/plugin reads these annotations), and api.pluginAccess renders
// the Role the plugin's service-proxy path needs, no more: the rules
// TestThroughAPIRefusals in internal/plugin grants its user.
func TestPluginAccess(t *testing.T) {
	p := paths(t)
	for _, tc := range []struct {
		name        string
		values      string
		annotations map[string]string
		perms       []string // "resource verb [name]", sorted; nil: no Role
		subjects    int
	}{
		{name: "default annotations and no Role", values: "api: {}\n",
			annotations: map[string]string{"vcon.dev/api-token-secret": "vcon-operator-api-token", "vcon.dev/api-token-key": "token"}},
		{name: "existing Secret and own header and a bound Role",
			values:      "api:\n  headerName: x-api-key\n  token: {existingSecret: my-token, key: k}\n  service: {annotations: {team: ops}}\n  pluginAccess:\n    create: true\n    subjects: [{kind: Group, name: vcon-ops, apiGroup: rbac.authorization.k8s.io}]\n",
			annotations: map[string]string{"vcon.dev/api-token-secret": "my-token", "vcon.dev/api-token-key": "k", "vcon.dev/api-token-header": "x-api-key", "team": "ops"},
			perms:       []string{"secrets get my-token", "services get ", "services list ", "services/proxy create vcon-operator-api", "services/proxy get vcon-operator-api"},
			subjects:    1},
		{name: "Role without the token",
			values:      "api:\n  pluginAccess: {create: true, readToken: false}\n",
			annotations: map[string]string{"vcon.dev/api-token-secret": "vcon-operator-api-token", "vcon.dev/api-token-key": "token"},
			perms:       []string{"services get ", "services list ", "services/proxy create vcon-operator-api", "services/proxy get vcon-operator-api"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "values.yaml")
			if err := os.WriteFile(f, []byte(tc.values), 0o600); err != nil {
				t.Fatal(err)
			}
			objs := render(t, p, f)
			svc := one(t, objs, "Service", "vcon-operator-api")
			if got := svc.GetAnnotations(); len(got) != len(tc.annotations) {
				t.Errorf("annotations %v, want %v", got, tc.annotations)
			} else {
				for k, v := range tc.annotations {
					if got[k] != v {
						t.Errorf("annotation %s = %q, want %q", k, got[k], v)
					}
				}
			}
			var role *rbacv1.Role
			for _, o := range Find(objs, "Role") {
				if o.GetName() == "vcon-operator-plugin" {
					role = &rbacv1.Role{}
					if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, role); err != nil {
						t.Fatal(err)
					}
				}
			}
			if (role != nil) != (tc.perms != nil) {
				t.Fatalf("plugin Role rendered = %v, want %v", role != nil, tc.perms != nil)
			}
			if role != nil {
				var got []string
				for _, r := range role.Rules {
					names := r.ResourceNames
					if len(names) == 0 {
						names = []string{""}
					}
					for _, res := range r.Resources {
						for _, v := range r.Verbs {
							for _, n := range names {
								got = append(got, res+" "+v+" "+n)
							}
						}
					}
				}
				sort.Strings(got)
				if !slices.Equal(got, tc.perms) {
					t.Errorf("plugin Role grants %q, want %q", got, tc.perms)
				}
			}
			if n := len(Find(objs, "RoleBinding")) - 1; n != tc.subjects {
				t.Errorf("%d plugin RoleBindings, want %d", n, tc.subjects)
			}
		})
	}
}
