package workload

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
)

func TestDeploymentMountsWorkerVolumes(t *testing.T) {
	tests := []struct {
		name      string
		volume    vconv1.WorkerVolume
		wantClaim string
		wantEmpty bool
	}{
		{"claim", vconv1.WorkerVolume{Name: "data", MountPath: "/data/vcons", ClaimName: "vcon-files"}, "vcon-files", false},
		{"emptyDir without a claim", vconv1.WorkerVolume{Name: "scratch", MountPath: "/scratch"}, "", true},
		{"read-only claim", vconv1.WorkerVolume{Name: "ro", MountPath: "/ro", ClaimName: "c", ReadOnly: true}, "c", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch := &vconv1.Chain{}
			ch.Name, ch.Namespace = "calls", "ns"
			ch.Spec.IngressLists = []string{"default"}
			ch.Spec.Workers.Volumes = []vconv1.WorkerVolume{tt.volume}
			in := Inputs{Chain: ch, RedisURL: "redis://r:6379", Image: "img"}
			r, err := Render(in)
			if err != nil {
				t.Fatal(err)
			}
			d := Deployment(in, r, 1)
			var vol *corev1.Volume
			for i := range d.Spec.Template.Spec.Volumes {
				if d.Spec.Template.Spec.Volumes[i].Name == "user-"+tt.volume.Name {
					vol = &d.Spec.Template.Spec.Volumes[i]
				}
			}
			if vol == nil {
				t.Fatalf("volume user-%s missing from %+v", tt.volume.Name, d.Spec.Template.Spec.Volumes)
			}
			if tt.wantEmpty != (vol.EmptyDir != nil) {
				t.Errorf("emptyDir = %v, want %v", vol.EmptyDir != nil, tt.wantEmpty)
			}
			if tt.wantClaim != "" && (vol.PersistentVolumeClaim == nil || vol.PersistentVolumeClaim.ClaimName != tt.wantClaim) {
				t.Errorf("claim = %+v, want %s", vol.PersistentVolumeClaim, tt.wantClaim)
			}
			var mounted bool
			for _, m := range d.Spec.Template.Spec.Containers[0].VolumeMounts {
				if m.Name == vol.Name && m.MountPath == tt.volume.MountPath && m.ReadOnly == tt.volume.ReadOnly {
					mounted = true
				}
			}
			if !mounted {
				t.Errorf("worker container does not mount %s at %s", vol.Name, tt.volume.MountPath)
			}
			// The volumes are part of what the pods run with: changing
			// them must roll the workers.
			ch2 := ch.DeepCopy()
			ch2.Spec.Workers.Volumes[0].MountPath = "/elsewhere"
			r2, _ := Render(Inputs{Chain: ch2, RedisURL: "redis://r:6379", Image: "img"})
			if r2.Hash == r.Hash {
				t.Error("config hash did not change with the volumes")
			}
		})
	}
}
