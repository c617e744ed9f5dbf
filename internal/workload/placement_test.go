package workload

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
)

var (
	defaultTolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "vcon", Effect: corev1.TaintEffectNoSchedule}}
	ownTolerations     = []corev1.Toleration{{Key: "gpu", Operator: corev1.TolerationOpExists}}
	testDefaults       = PodDefaults{
		NodeSelector:      map[string]string{"pool": "shared"},
		Tolerations:       defaultTolerations,
		PriorityClassName: "vcon-default",
		ImagePullSecrets:  []corev1.LocalObjectReference{{Name: "mirror"}},
		Affinity:          &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{}},
		TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
			MaxSkew: 1, TopologyKey: "topology.kubernetes.io/zone", WhenUnsatisfiable: corev1.ScheduleAnyway,
		}},
	}
)

// TestDeploymentPlacement: a Chain's placement fields reach the pod, each
// field of the operator's defaults fills in only where the Chain sets
// none, and the service-account token is mounted only for a named
// account.
func TestDeploymentPlacement(t *testing.T) {
	tests := []struct {
		name     string
		workers  vconv1.WorkerPod
		defaults PodDefaults
		want     corev1.PodSpec // the placement fields only
	}{
		{
			name: "nothing set: no placement, no token",
			want: corev1.PodSpec{AutomountServiceAccountToken: ptr.To(false)},
		},
		{
			name:     "the operator's defaults for a Chain that sets none",
			defaults: testDefaults,
			want: corev1.PodSpec{
				AutomountServiceAccountToken: ptr.To(false),
				NodeSelector:                 testDefaults.NodeSelector, Tolerations: defaultTolerations,
				PriorityClassName: "vcon-default", ImagePullSecrets: testDefaults.ImagePullSecrets,
				Affinity: testDefaults.Affinity, TopologySpreadConstraints: testDefaults.TopologySpreadConstraints,
			},
		},
		{
			name: "the Chain's own win, field by field",
			workers: vconv1.WorkerPod{
				NodeSelector: map[string]string{"pool": "calls"}, Tolerations: ownTolerations,
				ImagePullSecrets: []corev1.LocalObjectReference{{Name: "own"}},
			},
			defaults: testDefaults,
			want: corev1.PodSpec{
				AutomountServiceAccountToken: ptr.To(false),
				NodeSelector:                 map[string]string{"pool": "calls"}, Tolerations: ownTolerations,
				ImagePullSecrets:  []corev1.LocalObjectReference{{Name: "own"}},
				PriorityClassName: "vcon-default", Affinity: testDefaults.Affinity, TopologySpreadConstraints: testDefaults.TopologySpreadConstraints,
			},
		},
		{
			name:    "a named service account gets its token, for a cloud identity",
			workers: vconv1.WorkerPod{ServiceAccountName: "uploader", PriorityClassName: "vcon-high"},
			want:    corev1.PodSpec{ServiceAccountName: "uploader", AutomountServiceAccountToken: ptr.To(true), PriorityClassName: "vcon-high"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch := testChain(nil, nil)
			ch.Spec.Workers.WorkerPod = tt.workers
			in := inputs(ch, nil, nil)
			in.PodDefaults = tt.defaults
			r, err := Render(in)
			if err != nil {
				t.Fatal(err)
			}
			s := Deployment(in, r, 1).Spec.Template.Spec
			got := corev1.PodSpec{
				NodeSelector: s.NodeSelector, Tolerations: s.Tolerations, Affinity: s.Affinity,
				TopologySpreadConstraints: s.TopologySpreadConstraints, PriorityClassName: s.PriorityClassName,
				ServiceAccountName: s.ServiceAccountName, AutomountServiceAccountToken: s.AutomountServiceAccountToken,
				ImagePullSecrets: s.ImagePullSecrets,
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("placement\n got %+v\nwant %+v", got, tt.want)
			}
			// Placement never touches the hardening.
			if sc := s.SecurityContext; sc == nil || !*sc.RunAsNonRoot || s.HostNetwork || s.HostPID || s.HostIPC {
				t.Errorf("pod security %+v hostNetwork %v", sc, s.HostNetwork)
			}
		})
	}
}

// TestDeploymentPodMetadataOursWin: the Chain's pod labels and
// annotations are added, and the operator's selector labels and config
// hash win over any of the same key (which the CRD refuses anyway).
func TestDeploymentPodMetadataOursWin(t *testing.T) {
	ch := testChain(nil, nil)
	ch.Spec.Workers.PodLabels = map[string]string{"team": "calls", LabelChain: "other", LabelName: "mine"}
	ch.Spec.Workers.PodAnnotations = map[string]string{"example.com/owner": "calls", AnnotationConfigHash: "forged"}
	in := inputs(ch, nil, nil)
	r, err := Render(in)
	if err != nil {
		t.Fatal(err)
	}
	d := Deployment(in, r, 1)
	tmpl := d.Spec.Template
	if tmpl.Labels["team"] != "calls" || tmpl.Labels[LabelChain] != ch.Name || tmpl.Labels[LabelName] != WorkerName {
		t.Errorf("pod labels %v", tmpl.Labels)
	}
	for k, v := range d.Spec.Selector.MatchLabels {
		if tmpl.Labels[k] != v {
			t.Errorf("selector %s=%s does not select the pods", k, v)
		}
	}
	if _, leaked := d.Labels["team"]; leaked {
		t.Errorf("pod labels reached the Deployment's own: %v", d.Labels)
	}
	if tmpl.Annotations["example.com/owner"] != "calls" || tmpl.Annotations[AnnotationConfigHash] != r.Hash {
		t.Errorf("pod annotations %v, want the config hash %s", tmpl.Annotations, r.Hash)
	}
	if ch.Spec.Workers.PodLabels[LabelChain] != "other" {
		t.Error("the builder changed the Chain's own map")
	}
}

// TestDeploymentUserEnv: workers.env and envFrom come first, so that the
// operator's variables win and a $(VAR) in the user's values cannot
// expand them; a name the operator sets is dropped.
func TestDeploymentUserEnv(t *testing.T) {
	ch := testChain(nil, []string{"s3"})
	ch.Spec.Workers.Env = []vconv1.WorkerEnvVar{
		{Name: "AWS_REGION", Value: ptr.To("eu-west-1")},
		{Name: "NODE", ValueFrom: &vconv1.WorkerEnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
		{Name: "REDIS_URL", Value: ptr.To("redis://elsewhere:6379")},
		{Name: "VCON_STORAGE2_S3_KEY", Value: ptr.To("x")},
	}
	ch.Spec.Workers.EnvFrom = []vconv1.WorkerEnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}}}
	s3 := testStorage("s3", "storage.s3", `{"bucket":"b"}`)
	s3.Spec.EnvFrom = []corev1.SecretEnvSource{{LocalObjectReference: corev1.LocalObjectReference{Name: "aws"}}}
	in := inputs(ch, nil, []*vconv1.Storage{s3})
	r, err := Render(in)
	if err != nil {
		t.Fatal(err)
	}
	c := Deployment(in, r, 1).Spec.Template.Spec.Containers[0]
	var names []string
	redis := 0
	for _, e := range c.Env {
		names = append(names, e.Name)
		if e.Name == "REDIS_URL" {
			redis++
			if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				t.Errorf("REDIS_URL is %+v, want the operator's Secret reference", e)
			}
		}
		if e.Name == "VCON_STORAGE2_S3_KEY" {
			t.Errorf("a variable in a step's names reached the pod: %+v", e)
		}
	}
	if redis != 1 {
		t.Errorf("REDIS_URL %d times in %v", redis, names)
	}
	if len(names) < 3 || names[0] != "AWS_REGION" || names[1] != "NODE" || names[2] != "REDIS_URL" {
		t.Errorf("env order %v, want the Chain's first", names)
	}
	if c.Env[1].ValueFrom == nil || c.Env[1].ValueFrom.FieldRef == nil || c.Env[1].ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("NODE is %+v", c.Env[1])
	}
	if len(c.EnvFrom) != 2 || c.EnvFrom[0].ConfigMapRef == nil || c.EnvFrom[0].ConfigMapRef.Name != "settings" || c.EnvFrom[1].SecretRef == nil || c.EnvFrom[1].Prefix == "" {
		t.Errorf("envFrom %+v, want the Chain's ConfigMap before the step's prefixed Secret", c.EnvFrom)
	}
}

// TestOperatorEnv pins the names workers.env cannot set (the CRD's rule
// says the same; internal/crdtest checks it at the API server).
func TestOperatorEnv(t *testing.T) {
	for name, want := range map[string]bool{
		"REDIS_URL": true, "VCON_QUEUED_RETENTION": true,
		StepEnvName("link", "openai", "TOKEN"): true, StepEnvName("storage", "s3", "KEY"): true,
		headerEnvName("webhook", "X-Api-Key"): true,
		"VCON_STORAGE_FALLBACK_ENABLED":       false, "VCON_LINK": false, "AWS_REGION": false, "REDIS_URLS": false,
	} {
		if got := OperatorEnv(name); got != want {
			t.Errorf("OperatorEnv(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestPodDisruptionBudget(t *testing.T) {
	ch := testChain(nil, nil)
	if pdb := PodDisruptionBudget(ch); pdb != nil {
		t.Fatalf("a Chain without workers.podDisruptionBudget got %+v", pdb)
	}
	tests := []struct {
		name string
		b    vconv1.WorkerDisruptionBudget
	}{
		{"maxUnavailable", vconv1.WorkerDisruptionBudget{MaxUnavailable: ptr.To(intstr.FromInt32(1))}},
		{"minAvailable percent", vconv1.WorkerDisruptionBudget{MinAvailable: ptr.To(intstr.FromString("50%"))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch.Spec.Workers.PodDisruptionBudget = &tt.b
			pdb := PodDisruptionBudget(ch)
			if pdb.Name != "transcribe-worker" || pdb.Namespace != ch.Namespace || pdb.Kind != "PodDisruptionBudget" || pdb.APIVersion != "policy/v1" {
				t.Errorf("identity %s %s %s/%s", pdb.APIVersion, pdb.Kind, pdb.Namespace, pdb.Name)
			}
			checkOwner(t, pdb.OwnerReferences)
			if !reflect.DeepEqual(pdb.Spec.Selector.MatchLabels, SelectorLabels(ch.Name)) {
				t.Errorf("selector %v, want the Deployment's %v", pdb.Spec.Selector.MatchLabels, SelectorLabels(ch.Name))
			}
			if !reflect.DeepEqual(pdb.Spec.MinAvailable, tt.b.MinAvailable) || !reflect.DeepEqual(pdb.Spec.MaxUnavailable, tt.b.MaxUnavailable) {
				t.Errorf("bounds min %v max %v", pdb.Spec.MinAvailable, pdb.Spec.MaxUnavailable)
			}
			if p := pdb.Spec.UnhealthyPodEvictionPolicy; p == nil || *p != policyv1.AlwaysAllow {
				t.Errorf("unhealthyPodEvictionPolicy %v: a crashing worker must not block a drain", p)
			}
		})
	}
}

func TestParsePodDefaults(t *testing.T) {
	d, err := ParsePodDefaults(`{"nodeSelector":{"pool":"shared"},"tolerations":[{"key":"dedicated","operator":"Equal","value":"vcon","effect":"NoSchedule"}],"imagePullSecrets":[{"name":"mirror"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	if d.NodeSelector["pool"] != "shared" || !reflect.DeepEqual(d.Tolerations, defaultTolerations) || d.ImagePullSecrets[0].Name != "mirror" {
		t.Errorf("parsed %+v", d)
	}
	for _, s := range []string{"", "  "} {
		if d, err := ParsePodDefaults(s); err != nil || !reflect.DeepEqual(d, PodDefaults{}) {
			t.Errorf("%q: %+v %v, want none", s, d, err)
		}
	}
	if _, err := ParsePodDefaults(`{"nodeSelecter":{"pool":"shared"}}`); err == nil {
		t.Error("a misspelt field was accepted")
	}
}
