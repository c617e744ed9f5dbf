package charttest

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/vcon-operator/vcon-operator/internal/workload"
)

// TestWorkerPodDefaults: workers.defaults reaches the operator as
// --worker-pod-defaults, which the operator's own parser
// (workload.ParsePodDefaults) reads back field by field; default values
// pass no flag, and only the fields set are passed, so that an empty one
// does not override a Chain's own.
func TestWorkerPodDefaults(t *testing.T) {
	p := paths(t)
	podDefaults := func(t *testing.T, values ...string) (workload.PodDefaults, bool) {
		t.Helper()
		manager := container(t, render(t, p, values...), "vcon-operator", "manager")
		for _, a := range stringsAt(manager, "args") {
			if v, ok := strings.CutPrefix(a, "--worker-pod-defaults="); ok {
				d, err := workload.ParsePodDefaults(v)
				if err != nil {
					t.Fatalf("the operator refuses the chart's flag %s: %v", a, err)
				}
				return d, true
			}
		}
		return workload.PodDefaults{}, false
	}

	if d, passed := podDefaults(t); passed {
		t.Errorf("default values pass --worker-pod-defaults %+v, want no flag", d)
	}

	d, passed := podDefaults(t, fullValues)
	if !passed {
		t.Fatal("full values pass no --worker-pod-defaults")
	}
	if d.NodeSelector["pool"] != "vcon-workers" || d.PriorityClassName != "vcon-workers" {
		t.Errorf("nodeSelector %v priorityClassName %q", d.NodeSelector, d.PriorityClassName)
	}
	wantTolerations := []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "vcon-workers", Effect: corev1.TaintEffectNoSchedule}}
	if !reflect.DeepEqual(d.Tolerations, wantTolerations) {
		t.Errorf("tolerations %+v", d.Tolerations)
	}
	if !reflect.DeepEqual(d.ImagePullSecrets, []corev1.LocalObjectReference{{Name: "ghcr-pull"}}) {
		t.Errorf("imagePullSecrets %+v", d.ImagePullSecrets)
	}
	if d.Affinity == nil || d.Affinity.NodeAffinity == nil || len(d.TopologySpreadConstraints) != 1 || d.TopologySpreadConstraints[0].TopologyKey != "topology.kubernetes.io/zone" {
		t.Errorf("affinity %+v topologySpreadConstraints %+v", d.Affinity, d.TopologySpreadConstraints)
	}

	only := filepath.Join(t.TempDir(), "pull-secrets-only.yaml")
	if err := os.WriteFile(only, []byte("workers:\n  defaults:\n    imagePullSecrets: [{name: mirror}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, _ = podDefaults(t, only)
	if !reflect.DeepEqual(d, workload.PodDefaults{ImagePullSecrets: []corev1.LocalObjectReference{{Name: "mirror"}}}) {
		t.Errorf("only imagePullSecrets set, passed %+v", d)
	}
}
