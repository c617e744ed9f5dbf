package workload

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
)

func TestDeployment(t *testing.T) {
	resources := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")},
	}
	tests := []struct {
		name     string
		in       func() Inputs
		replicas int32
		check    func(t *testing.T, in Inputs, r *Rendered, d *appsv1.Deployment)
	}{
		{
			name:     "identity: name, labels, selector, owner, replicas",
			in:       func() Inputs { return inputs(testChain(nil, nil), nil, nil) },
			replicas: 3,
			check: func(t *testing.T, in Inputs, r *Rendered, d *appsv1.Deployment) {
				if d.Name != "transcribe-worker" || d.Namespace != "calls" {
					t.Errorf("name %s/%s", d.Namespace, d.Name)
				}
				if d.Kind != "Deployment" || d.APIVersion != "apps/v1" {
					t.Errorf("type meta %s %s: server-side apply needs it", d.APIVersion, d.Kind)
				}
				if *d.Spec.Replicas != 3 {
					t.Errorf("replicas %d, want 3", *d.Spec.Replicas)
				}
				for where, labels := range map[string]map[string]string{"deployment": d.Labels, "pod": d.Spec.Template.Labels} {
					if labels[LabelChain] != "transcribe" || labels[LabelName] != WorkerName || labels[LabelManagedBy] != ManagedBy {
						t.Errorf("%s labels %v", where, labels)
					}
				}
				sel := d.Spec.Selector.MatchLabels
				for k, v := range sel {
					if d.Spec.Template.Labels[k] != v {
						t.Errorf("selector %s=%s does not select the pod template", k, v)
					}
				}
				checkOwner(t, d.OwnerReferences)
				if got := d.Spec.Template.Annotations[AnnotationConfigHash]; got != r.Hash || got == "" {
					t.Errorf("config-hash annotation %q, want %q", got, r.Hash)
				}
				if d.Spec.Strategy.RollingUpdate == nil || d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
					t.Errorf("rolling update %+v: a config roll must not take workers away first", d.Spec.Strategy.RollingUpdate)
				}
			},
		},
		{
			name: "hardened pod",
			in: func() Inputs {
				return inputs(testChain([]string{"redact"}, nil), []*vconv1.Link{containerLink("redact", "example/redact:1", 8085, "/")}, nil)
			},
			check: func(t *testing.T, in Inputs, r *Rendered, d *appsv1.Deployment) {
				ps := d.Spec.Template.Spec
				if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
					t.Error("automountServiceAccountToken must be false: workers never call the API server")
				}
				if ps.SecurityContext == nil || ps.SecurityContext.RunAsNonRoot == nil || !*ps.SecurityContext.RunAsNonRoot {
					t.Error("pod runAsNonRoot must be true")
				}
				if ps.SecurityContext.SeccompProfile == nil || ps.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
					t.Error("pod seccomp profile must be RuntimeDefault")
				}
				all := append(slices.Clone(ps.InitContainers), ps.Containers...)
				for _, c := range all {
					sc := c.SecurityContext
					if sc == nil {
						t.Errorf("container %s has no security context", c.Name)
						continue
					}
					if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
						t.Errorf("container %s: readOnlyRootFilesystem must be true", c.Name)
					}
					if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
						t.Errorf("container %s: allowPrivilegeEscalation must be false", c.Name)
					}
					if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
						t.Errorf("container %s: runAsNonRoot must be true", c.Name)
					}
					if sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
						t.Errorf("container %s: capabilities %+v, want drop ALL", c.Name, sc.Capabilities)
					}
					if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
						t.Errorf("container %s: seccomp must be RuntimeDefault", c.Name)
					}
				}
				if len(all) != 2 {
					t.Errorf("%d containers, want the worker and one sidecar", len(all))
				}
			},
		},
		{
			name: "worker container: image, args, resources, metrics port, config volume",
			in: func() Inputs {
				in := inputs(testChain(nil, nil), nil, nil)
				in.Chain.Spec.Workers.Resources = resources
				in.Chain.Spec.Workers.Concurrency = 8
				return in
			},
			check: func(t *testing.T, in Inputs, r *Rendered, d *appsv1.Deployment) {
				ps := d.Spec.Template.Spec
				if len(ps.Containers) != 1 {
					t.Fatalf("%d containers, want 1", len(ps.Containers))
				}
				w := ps.Containers[0]
				if w.Image != in.Image {
					t.Errorf("image %s", w.Image)
				}
				if !reflect.DeepEqual(w.Resources, resources) {
					t.Errorf("resources %+v, want the Chain's %+v", w.Resources, resources)
				}
				for _, arg := range []string{"--chain=transcribe", "--concurrency=8", "--config=" + ConfigDir + "/" + ConfigKey, "--http-addr=:9090"} {
					if !slices.Contains(w.Args, arg) {
						t.Errorf("args %v lack %s", w.Args, arg)
					}
				}
				// The worker writes its fatal error to the default
				// terminationMessagePath; the Chain's Ready condition shows it.
				if w.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError || w.TerminationMessagePath != "" {
					t.Errorf("termination message policy %q, path %q: want FallbackToLogsOnError at the default path", w.TerminationMessagePolicy, w.TerminationMessagePath)
				}
				if len(w.Ports) != 1 || w.Ports[0].ContainerPort != MetricsPort || MetricsPort != 9090 || w.Ports[0].Name != "metrics" {
					t.Errorf("ports %+v, want metrics on 9090", w.Ports)
				}
				if sp := w.StartupProbe; sp == nil || sp.HTTPGet == nil || sp.HTTPGet.Path != "/readyz" || sp.PeriodSeconds != 1 {
					t.Errorf("startup probe %+v: a new worker must be seen Ready within a second of being ready", sp)
				}
				if w.ReadinessProbe == nil || w.ReadinessProbe.HTTPGet == nil || w.ReadinessProbe.HTTPGet.Port.String() != "metrics" {
					t.Errorf("readiness probe %+v", w.ReadinessProbe)
				}
				var cmName string
				for _, v := range ps.Volumes {
					if v.ConfigMap != nil {
						cmName = v.ConfigMap.Name
					}
				}
				if cmName != ConfigMapName("transcribe") {
					t.Errorf("config volume from ConfigMap %q, want %q", cmName, ConfigMapName("transcribe"))
				}
				if len(w.Env) == 0 || w.Env[0].Name != "REDIS_URL" || w.Env[0].Value != "" || w.Env[0].ValueFrom == nil ||
					!reflect.DeepEqual(w.Env[0].ValueFrom.SecretKeyRef, ProjectedRedisRef("transcribe")) {
					t.Errorf("env %+v: REDIS_URL first, from the projected Secret %s", w.Env, RedisSecretName("transcribe"))
				}
			},
		},
		{
			name: "grace outlasts the chain timeout",
			in: func() Inputs {
				in := inputs(testChain(nil, nil), nil, nil)
				in.Chain.Spec.Timeout = &metav1.Duration{Duration: 10*time.Minute + 500*time.Millisecond}
				return in
			},
			check: func(t *testing.T, in Inputs, r *Rendered, d *appsv1.Deployment) {
				checkGrace(t, d, 10*time.Minute+500*time.Millisecond)
			},
		},
		{
			name: "grace without a chain timeout",
			in: func() Inputs {
				in := inputs(testChain(nil, nil), nil, nil)
				in.Chain.Spec.Timeout = nil
				return in
			},
			check: func(t *testing.T, in Inputs, r *Rendered, d *appsv1.Deployment) {
				if got := *d.Spec.Template.Spec.TerminationGracePeriodSeconds; got != int64(DefaultWorkerGrace.Seconds()) {
					t.Errorf("terminationGracePeriodSeconds %d, want %v", got, DefaultWorkerGrace)
				}
				checkWorkerGraceArg(t, d)
			},
		},
		{
			name: "container steps are native sidecars",
			in: func() Inputs {
				in := inputs(testChain([]string{"redact", "tag"}, nil), []*vconv1.Link{
					containerLink("redact", "example/redact:1", 8085, "/"),
					moduleLink("tag", "links.tag", ""),
				}, nil)
				in.Links["redact"].Spec.Container.Resources = resources
				return in
			},
			check: func(t *testing.T, in Inputs, r *Rendered, d *appsv1.Deployment) {
				ic := d.Spec.Template.Spec.InitContainers
				if len(ic) != 1 {
					t.Fatalf("%d init containers, want the one sidecar", len(ic))
				}
				s := ic[0]
				if s.Name != "step-redact" || s.Image != "example/redact:1" {
					t.Errorf("sidecar %s %s", s.Name, s.Image)
				}
				if s.RestartPolicy == nil || *s.RestartPolicy != corev1.ContainerRestartPolicyAlways {
					t.Error("sidecar restartPolicy must be Always: it runs beside the worker, not before it")
				}
				if len(s.Ports) != 1 || s.Ports[0].ContainerPort != 8085 {
					t.Errorf("sidecar ports %+v", s.Ports)
				}
				if s.StartupProbe == nil || s.StartupProbe.TCPSocket == nil || s.StartupProbe.TCPSocket.Port.IntValue() != 8085 {
					t.Errorf("sidecar startup probe %+v: the worker must not start before the step listens", s.StartupProbe)
				}
				if !reflect.DeepEqual(s.Resources, resources) {
					t.Errorf("sidecar resources %+v", s.Resources)
				}
			},
		},
		{
			name: "redis URL from a Secret is a reference",
			in: func() Inputs {
				in := inputs(testChain(nil, nil), nil, nil)
				in.RedisSecret = ptr.To(secretKey("redis", "url"))
				return in
			},
			check: func(t *testing.T, in Inputs, r *Rendered, d *appsv1.Deployment) {
				e := d.Spec.Template.Spec.Containers[0].Env[0]
				if e.Name != "REDIS_URL" || e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef.Name != "redis" {
					t.Errorf("REDIS_URL %+v, want a Secret reference", e)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in()
			r, err := Render(in)
			if err != nil {
				t.Fatal(err)
			}
			d := Deployment(in, r, tt.replicas)
			tt.check(t, in, r, d)
		})
	}
}

// TestDeploymentNeverHoldsRedisURL: whatever the Chain names (nothing, a
// literal URL, a Secret), no env var of any container carries the Redis URL
// as a value; the operator's default holds the operator's password.
func TestDeploymentNeverHoldsRedisURL(t *testing.T) {
	const url = "redis://:operator-pw@redis.vcon-system:6379/0"
	for _, tt := range []struct {
		name   string
		secret *corev1.SecretKeySelector
		want   corev1.SecretKeySelector
	}{
		{"operator default or literal URL: projected Secret", nil, *ProjectedRedisRef("transcribe")},
		{"the Chain's own Secret", ptr.To(secretKey("mine", "u")), secretKey("mine", "u")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := inputs(testChain([]string{"redact"}, nil), []*vconv1.Link{containerLink("redact", "example/redact:1", 8085, "/")}, nil)
			in.RedisURL, in.RedisSecret = url, tt.secret
			r, err := Render(in)
			if err != nil {
				t.Fatal(err)
			}
			d := Deployment(in, r, 1)
			ps := d.Spec.Template.Spec
			var redisRefs int
			for _, c := range append(slices.Clone(ps.InitContainers), ps.Containers...) {
				for _, e := range c.Env {
					if strings.Contains(e.Value, "operator-pw") || strings.Contains(e.Value, "redis://") {
						t.Errorf("container %s env %s holds the Redis URL as a literal value", c.Name, e.Name)
					}
					if e.Name == "REDIS_URL" {
						redisRefs++
						if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || *e.ValueFrom.SecretKeyRef != tt.want {
							t.Errorf("REDIS_URL %+v, want a reference to %+v", e, tt.want)
						}
					}
				}
			}
			if redisRefs != 1 {
				t.Errorf("%d REDIS_URL env vars, want 1", redisRefs)
			}
			for k, v := range d.Spec.Template.Annotations {
				if strings.Contains(v, "operator-pw") {
					t.Errorf("annotation %s holds the password", k)
				}
			}
		})
	}
}

func TestRedisSecret(t *testing.T) {
	ch := testChain(nil, nil)
	s := RedisSecret(ch, "redis://:pw@r:6379/0")
	if s.Name != RedisSecretName("transcribe") || s.Name != "transcribe-redis" || s.Namespace != "calls" {
		t.Errorf("name %s/%s", s.Namespace, s.Name)
	}
	if s.Kind != "Secret" || s.APIVersion != "v1" {
		t.Errorf("type meta %s %s: server-side apply needs it", s.APIVersion, s.Kind)
	}
	if string(s.Data[RedisSecretKey]) != "redis://:pw@r:6379/0" || len(s.Data) != 1 || len(s.StringData) != 0 {
		t.Errorf("data %v", s.Data)
	}
	if s.Labels[LabelChain] != "transcribe" || s.Labels[LabelManagedBy] != ManagedBy {
		t.Errorf("labels %v", s.Labels)
	}
	checkOwner(t, s.OwnerReferences)
	if ref := ProjectedRedisRef("transcribe"); ref.Name != s.Name || ref.Key != RedisSecretKey {
		t.Errorf("the Deployment's reference %+v does not select the Secret", ref)
	}
}

func checkGrace(t *testing.T, d *appsv1.Deployment, timeout time.Duration) {
	t.Helper()
	grace := time.Duration(*d.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	if grace <= timeout {
		t.Errorf("terminationGracePeriodSeconds %v is not longer than the chain timeout %v: scale-down could kill a vCon mid-chain", grace, timeout)
	}
	checkWorkerGraceArg(t, d)
}

// checkWorkerGraceArg: the worker gives work back before the kubelet's
// SIGKILL, so its own grace is shorter than the pod's.
func checkWorkerGraceArg(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	pod := time.Duration(*d.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	for _, a := range d.Spec.Template.Spec.Containers[0].Args {
		if v, ok := strings.CutPrefix(a, "--grace-period="); ok {
			g, err := time.ParseDuration(v)
			if err != nil || g <= 0 || g >= pod {
				t.Errorf("--grace-period=%s, want positive and shorter than the pod's %v", v, pod)
			}
			return
		}
	}
	t.Error("no --grace-period argument")
}

func checkOwner(t *testing.T, refs []metav1.OwnerReference) {
	t.Helper()
	if len(refs) != 1 {
		t.Fatalf("owner references %+v, want one", refs)
	}
	o := refs[0]
	if o.Kind != "Chain" || o.APIVersion != vconv1.GroupVersion.String() || o.Name != "transcribe" || o.UID != "uid-1" {
		t.Errorf("owner %+v", o)
	}
	if o.Controller == nil || !*o.Controller || o.BlockOwnerDeletion == nil || !*o.BlockOwnerDeletion {
		t.Errorf("owner %+v: want controller and blockOwnerDeletion", o)
	}
}

func TestConfigMap(t *testing.T) {
	in := inputs(testChain([]string{"tag"}, nil), []*vconv1.Link{moduleLink("tag", "links.tag", `{"tags":["x"]}`)}, nil)
	r, err := Render(in)
	if err != nil {
		t.Fatal(err)
	}
	cm := ConfigMap(in.Chain, r)
	if cm.Name != "transcribe-conserver" || cm.Namespace != "calls" || cm.Kind != "ConfigMap" {
		t.Errorf("ConfigMap %s/%s kind %q", cm.Namespace, cm.Name, cm.Kind)
	}
	if cm.Data[ConfigKey] != string(r.Config) || len(cm.Data) != 1 {
		t.Errorf("data %v, want only %s", cm.Data, ConfigKey)
	}
	if cm.Labels[LabelChain] != "transcribe" {
		t.Errorf("labels %v", cm.Labels)
	}
	checkOwner(t, cm.OwnerReferences)
}

func TestTerminationGrace(t *testing.T) {
	for _, tt := range []struct {
		timeout *metav1.Duration
		want    time.Duration
	}{
		{nil, DefaultWorkerGrace},
		{&metav1.Duration{}, DefaultWorkerGrace},
		{&metav1.Duration{Duration: time.Second}, 31 * time.Second},
		{&metav1.Duration{Duration: time.Hour}, time.Hour + 30*time.Second},
	} {
		ch := testChain(nil, nil)
		ch.Spec.Timeout = tt.timeout
		if got := TerminationGrace(ch); got != tt.want {
			t.Errorf("timeout %v: grace %v, want %v", tt.timeout, got, tt.want)
		}
	}
}
