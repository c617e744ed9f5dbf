package crdtest

import (
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// build renders a kustomization directory under config/ as `kubectl apply
// -k` would.
func build(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), repoPath(t, "config", dir))
	if err != nil {
		t.Fatalf("kustomize build config/%s: %v", dir, err)
	}
	data, err := resMap.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeDocuments(data)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func kindNames(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetKind()+"/"+o.GetName())
	}
	slices.Sort(out)
	return out
}

// TestDefaultInstallsOnTheAPIServer renders config/default and creates
// everything it holds on the API server (the CRDs are already installed:
// they must be the ones the harness installed from config/crd/bases).
func TestDefaultInstallsOnTheAPIServer(t *testing.T) {
	objs := build(t, "default")
	want := []string{
		"ClusterRole/vcon-operator",
		"ClusterRoleBinding/vcon-operator",
		"CustomResourceDefinition/chains.vcon.dev",
		"CustomResourceDefinition/links.vcon.dev",
		"CustomResourceDefinition/storages.vcon.dev",
		"Deployment/vcon-operator",
		"Namespace/vcon-system",
		"Role/vcon-operator-leader-election",
		"RoleBinding/vcon-operator-leader-election",
		"ServiceAccount/vcon-operator",
	}
	if got := kindNames(objs); !slices.Equal(got, want) {
		t.Fatalf("config/default renders\n %v\nwant\n %v", got, want)
	}
	ctx := testContext(t)
	// The Namespace first, as kubectl apply orders it.
	slices.SortStableFunc(objs, func(a, b *unstructured.Unstructured) int {
		return boolInt(b.GetKind() == "Namespace") - boolInt(a.GetKind() == "Namespace")
	})
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" {
			installedCRD(t, o.GetName())
			continue
		}
		if o.GetKind() != "Namespace" && o.GetKind() != "ClusterRole" && o.GetKind() != "ClusterRoleBinding" && o.GetNamespace() != "vcon-system" {
			t.Errorf("%s/%s is in namespace %q, want vcon-system", o.GetKind(), o.GetName(), o.GetNamespace())
		}
		if err := kube.Client.Create(ctx, o); err != nil {
			t.Errorf("the API server refused %s/%s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	t.Run("operator service account may do its work", func(t *testing.T) {
		sa := "system:serviceaccount:vcon-system:vcon-operator"
		cases := []struct {
			verb, group, resource, subresource, namespace string
			allowed                                       bool
		}{
			{"watch", "vcon.dev", "chains", "", "", true},
			{"list", "vcon.dev", "links", "", "", true},
			{"list", "vcon.dev", "storages", "", "", true},
			{"patch", "vcon.dev", "chains", "status", "calls", true},
			{"patch", "vcon.dev", "links", "status", "calls", true},
			{"create", "apps", "deployments", "", "calls", true},
			{"delete", "apps", "deployments", "", "calls", true},
			{"create", "", "configmaps", "", "calls", true},
			{"get", "", "secrets", "", "calls", true},
			// The projected <chain>-redis Secret (docs/security.md).
			{"create", "", "secrets", "", "calls", true},
			{"delete", "", "secrets", "", "calls", true},
			{"create", "", "events", "", "calls", true},
			{"create", "coordination.k8s.io", "leases", "", "vcon-system", true},
			{"update", "coordination.k8s.io", "leases", "", "vcon-system", true},
			// Least privilege: reading one Secret by name, never listing
			// or watching them, and never touching the API's own objects.
			{"list", "", "secrets", "", "calls", false},
			{"watch", "", "secrets", "", "calls", false},
			{"update", "vcon.dev", "chains", "", "calls", false},
			{"delete", "apiextensions.k8s.io", "customresourcedefinitions", "", "", false},
		}
		for _, c := range cases {
			sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User:   sa,
				Groups: []string{"system:serviceaccounts", "system:serviceaccounts:vcon-system", "system:authenticated"},
				ResourceAttributes: &authorizationv1.ResourceAttributes{
					Verb: c.verb, Group: c.group, Resource: c.resource, Subresource: c.subresource, Namespace: c.namespace,
				},
			}}
			if err := kube.Client.Create(ctx, sar); err != nil {
				t.Fatal(err)
			}
			if sar.Status.Allowed != c.allowed {
				t.Errorf("%s %s %s/%s in %q: allowed %v, want %v (%s)", c.verb, c.group, c.resource, c.subresource, c.namespace, sar.Status.Allowed, c.allowed, sar.Status.Reason)
			}
		}
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestOperatorDeployment pins what config/manager promises: the image and
// flags, the default Redis from an optional Secret, probes, and a hardened
// container.
func TestOperatorDeployment(t *testing.T) {
	var dep *appsv1.Deployment
	var serviceAccounts []string
	for _, o := range build(t, "default") {
		switch o.GetKind() {
		case "Deployment":
			dep = &appsv1.Deployment{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, dep, true); err != nil {
				t.Fatalf("decode Deployment: %v", err)
			}
		case "ServiceAccount":
			serviceAccounts = append(serviceAccounts, o.GetName())
		}
	}
	if dep == nil {
		t.Fatal("config/default has no Deployment")
	}
	pod := dep.Spec.Template.Spec
	if !slices.Contains(serviceAccounts, pod.ServiceAccountName) {
		t.Errorf("serviceAccountName %q is not among the rendered ServiceAccounts %v", pod.ServiceAccountName, serviceAccounts)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	redis := env["REDIS_URL"].ValueFrom
	sc := c.SecurityContext
	podSC := pod.SecurityContext
	checks := []struct {
		what string
		ok   bool
	}{
		{"image ghcr.io/vcon-operator/vcon-operator:latest", c.Image == "ghcr.io/vcon-operator/vcon-operator:latest"},
		{"command /manager", slices.Equal(c.Command, []string{"/manager"})},
		{"args", slices.Equal(c.Args, []string{"--leader-elect", "--metrics-bind-address=:8080", "--health-probe-bind-address=:8081", "--queue-poll-interval=2s"})},
		{"REDIS_URL from the optional Secret vcon-redis key url", redis != nil && redis.SecretKeyRef != nil &&
			redis.SecretKeyRef.Name == "vcon-redis" && redis.SecretKeyRef.Key == "url" &&
			redis.SecretKeyRef.Optional != nil && *redis.SecretKeyRef.Optional},
		{"WORKER_IMAGE set", env["WORKER_IMAGE"].Value != ""},
		{"liveness probe GET /healthz on 8081", probeIs(c.LivenessProbe, "/healthz", c.Ports, 8081)},
		{"readiness probe GET /readyz on 8081", probeIs(c.ReadinessProbe, "/readyz", c.Ports, 8081)},
		{"runAsNonRoot", (sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (podSC != nil && podSC.RunAsNonRoot != nil && *podSC.RunAsNonRoot)},
		{"readOnlyRootFilesystem", sc != nil && sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem},
		{"allowPrivilegeEscalation false", sc != nil && sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation},
		{"capabilities drop ALL", sc != nil && sc.Capabilities != nil && slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"})},
		{"seccomp RuntimeDefault", (sc != nil && sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault) ||
			(podSC != nil && podSC.SeccompProfile != nil && podSC.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault)},
		{"cpu and memory requests", !c.Resources.Requests.Cpu().IsZero() && !c.Resources.Requests.Memory().IsZero()},
		{"memory limit", !c.Resources.Limits.Memory().IsZero()},
	}
	for _, ch := range checks {
		if !ch.ok {
			t.Errorf("operator container: want %s", ch.what)
		}
	}
}

// probeIs says whether p is an HTTP GET of path on port (by number or by
// the name of one of ports).
func probeIs(p *corev1.Probe, path string, ports []corev1.ContainerPort, port int32) bool {
	if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path {
		return false
	}
	if p.HTTPGet.Port.Type == intstr.Int {
		return p.HTTPGet.Port.IntVal == port
	}
	for _, cp := range ports {
		if cp.Name == p.HTTPGet.Port.StrVal {
			return cp.ContainerPort == port
		}
	}
	return false
}
