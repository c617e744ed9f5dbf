package controllers_test

import (
	"maps"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vcon-operator/vcon-operator/controllers"
	"github.com/vcon-operator/vcon-operator/internal/workload"
)

// TestCacheOptions: --watch-namespaces restricts the cache to valid
// namespace names, none means every namespace, and worker pods alone are
// cached, without managedFields, either way.
func TestCacheOptions(t *testing.T) {
	for _, tc := range []struct {
		name       string
		namespaces []string
		want       []string // nil: every namespace
		wantErr    bool
	}{
		{"every namespace", nil, nil, false},
		{"one", []string{"team-a"}, []string{"team-a"}, false},
		{"several, one twice", []string{"team-a", "team-b", "team-a"}, []string{"team-a", "team-b"}, false},
		{"not a namespace name", []string{"team-a", "Team_B"}, nil, true},
		{"too long", []string{"a123456789012345678901234567890123456789012345678901234567890123"}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts, err := controllers.CacheOptions(tc.namespaces)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if got := slices.Sorted(maps.Keys(opts.DefaultNamespaces)); !slices.Equal(got, tc.want) {
				t.Errorf("DefaultNamespaces %v, want %v", got, tc.want)
			}
			want := workload.LabelName + "=" + workload.WorkerName
			var selectors []string
			for obj, by := range opts.ByObject {
				if _, isPod := obj.(*corev1.Pod); isPod && by.Label != nil {
					selectors = append(selectors, by.Label.String())
				}
			}
			if len(opts.ByObject) != 1 || !slices.Equal(selectors, []string{want}) {
				t.Errorf("ByObject caches pods by %v (%d objects), want pods labelled %s only", selectors, len(opts.ByObject), want)
			}
			// Nothing reads managedFields; they are the bulk of an applied object.
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x", ManagedFields: []metav1.ManagedFieldsEntry{{Manager: workload.FieldOwner}}}}
			if opts.DefaultTransform == nil {
				t.Fatal("no DefaultTransform: cached objects keep their managedFields")
			}
			out, err := opts.DefaultTransform(cm)
			if err != nil {
				t.Fatal(err)
			}
			if got := out.(*corev1.ConfigMap); len(got.ManagedFields) != 0 || got.Name != "x" {
				t.Errorf("cached as %+v, want the object without managedFields", got.ObjectMeta)
			}
		})
	}
}
