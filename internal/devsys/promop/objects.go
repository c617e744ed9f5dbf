package promop

import (
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// Names of what Install creates, all in Options.Namespace but the cluster
// roles and their bindings.
const (
	OperatorName   = "prometheus-operator" // Deployment, ServiceAccount, ClusterRole(Binding)
	PrometheusName = "prometheus"          // Prometheus resource, Service, ServiceAccount, ClusterRole(Binding)
	PrometheusPort = 9090

	operatorPort = 8080
	// nonroot is the uid and gid every container runs as (nobody).
	nonroot = 65534
	// fieldManager owns every field Install applies.
	fieldManager = "vcon-promop"
	// prometheusNameLabel is the label the operator puts on a Prometheus
	// resource's pods, naming it.
	prometheusNameLabel = "operator.prometheus.io/name"
)

// objects are the objects Install applies after the CRDs and the
// operator's upstream ClusterRole, in order.
func objects(o Options, img Images) ([]*unstructured.Unstructured, error) {
	typed := []runtime.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: o.Namespace}},
		serviceAccount(o.Namespace, OperatorName),
		clusterRoleBinding(o.Namespace, OperatorName),
		operatorDeployment(o.Namespace, img),
		serviceAccount(o.Namespace, PrometheusName),
		prometheusClusterRole(),
		clusterRoleBinding(o.Namespace, PrometheusName),
		prometheusService(o.Namespace),
	}
	var out []*unstructured.Unstructured
	for _, obj := range typed {
		u, err := toUnstructured(obj)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	p, err := prometheus(o, img)
	if err != nil {
		return nil, err
	}
	return append(out, p), nil
}

func serviceAccount(ns, name string) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
}

// clusterRoleBinding binds the ClusterRole name to the ServiceAccount of
// the same name in ns.
func clusterRoleBinding(ns, name string) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}},
	}
}

// prometheusClusterRole is what service discovery of ServiceMonitors and
// PodMonitors reads, and the apiserver's /metrics.
func prometheusClusterRole() *rbacv1.ClusterRole {
	read := []string{"get", "list", "watch"}
	return &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: PrometheusName},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"services", "endpoints", "pods", "nodes"}, Verbs: read},
			{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: read},
			{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}},
		},
	}
}

func operatorDeployment(ns string, img Images) *appsv1.Deployment {
	labels := map[string]string{"app.kubernetes.io/name": OperatorName}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: OperatorName, Namespace: ns, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					ServiceAccountName: OperatorName,
					SecurityContext:    hardenedPod(),
					Containers: []corev1.Container{{
						Name:            OperatorName,
						Image:           img.Operator,
						ImagePullPolicy: corev1.PullIfNotPresent,
						Args: []string{
							// The sidecar and init container of every
							// Prometheus pod: ours, never quay.io's.
							"--prometheus-config-reloader=" + img.ConfigReloader,
							// A Prometheus resource without an image gets
							// ours too.
							"--prometheus-default-base-image=" + repository(img.Prometheus),
							// No kubelet Service to maintain: nothing here
							// scrapes kubelets.
							"--kubelet-endpoints=false",
						},
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: operatorPort}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}},
							PeriodSeconds: 1,
						},
						Resources:       requests("20m", "64Mi"),
						SecurityContext: hardenedContainer(),
					}},
				},
			},
		},
	}
}

// prometheusService lets the host reach Prometheus at its ClusterIP (the
// operator's own prometheus-operated Service is headless).
func prometheusService(ns string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: PrometheusName, Namespace: ns},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{prometheusNameLabel: PrometheusName},
			Ports: []corev1.ServicePort{{
				Name: "web", Port: PrometheusPort, TargetPort: intstr.FromString("web"),
			}},
		},
	}
}

// prometheus is the Prometheus resource: every ServiceMonitor, PodMonitor,
// ScrapeConfig and PrometheusRule in every namespace (empty selectors select all), one
// replica on an emptyDir (the operator's default without spec.storage).
func prometheus(o Options, img Images) (*unstructured.Unstructured, error) {
	scrape, err := promDuration(o.ScrapeInterval)
	if err != nil {
		return nil, fmt.Errorf("scrape interval: %w", err)
	}
	eval, err := promDuration(o.EvaluationInterval)
	if err != nil {
		return nil, fmt.Errorf("evaluation interval: %w", err)
	}
	all := map[string]any{}
	securityContext, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&corev1.PodSecurityContext{
		RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](nonroot), RunAsGroup: ptr.To[int64](nonroot),
		FSGroup:        ptr.To[int64](nonroot),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	})
	if err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "monitoring.coreos.com/v1",
		"kind":       "Prometheus",
		"metadata":   map[string]any{"name": PrometheusName, "namespace": o.Namespace},
		"spec": map[string]any{
			"image": img.Prometheus,
			// The operator renders flags by version (Prometheus 3 has no
			// console flags); the image's binary does not report one.
			"version":                         img.PrometheusVersion,
			"imagePullPolicy":                 string(corev1.PullIfNotPresent),
			"replicas":                        int64(1),
			"serviceAccountName":              PrometheusName,
			"scrapeInterval":                  scrape,
			"evaluationInterval":              eval,
			"serviceMonitorSelector":          all,
			"serviceMonitorNamespaceSelector": all,
			"podMonitorSelector":              all,
			"podMonitorNamespaceSelector":     all,
			"ruleSelector":                    all,
			"ruleNamespaceSelector":           all,
			"scrapeConfigSelector":            all,
			"scrapeConfigNamespaceSelector":   all,
			"securityContext":                 securityContext,
			"resources": map[string]any{
				"requests": map[string]any{"cpu": "50m", "memory": "128Mi"},
			},
			// Merged into the operator's own prometheus container: its
			// startup probe runs every 15 s, so a Prometheus ready in a
			// second showed Ready up to 18 s later. Same timeout (10 min).
			"containers": []any{map[string]any{
				"name":           "prometheus",
				"startupProbe":   map[string]any{"periodSeconds": int64(1), "failureThreshold": int64(600)},
				"readinessProbe": map[string]any{"periodSeconds": int64(1)},
			}},
		},
	}}, nil
}

// promDuration is d in Prometheus's duration syntax, whole milliseconds.
func promDuration(d time.Duration) (string, error) {
	if d <= 0 || d%time.Millisecond != 0 {
		return "", fmt.Errorf("%v: want a positive whole number of milliseconds", d)
	}
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second), nil
	}
	return fmt.Sprintf("%dms", d/time.Millisecond), nil
}

func hardenedPod() *corev1.PodSecurityContext {
	return &corev1.PodSecurityContext{
		RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](nonroot), RunAsGroup: ptr.To[int64](nonroot),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

func hardenedContainer() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

func requests(cpu, memory string) corev1.ResourceRequirements {
	return corev1.ResourceRequirements{Requests: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(memory),
	}}
}

// toUnstructured is obj as server-side apply wants it: apiVersion and kind
// set, and no status or creationTimestamp.
func toUnstructured(obj runtime.Object) (*unstructured.Unstructured, error) {
	gvks, _, err := scheme.ObjectKinds(obj)
	if err != nil {
		return nil, err
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(gvks[0])
	delete(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "spec", "template", "metadata", "creationTimestamp")
	return u, nil
}

// repository is ref without its tag.
func repository(ref string) string {
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i]
	}
	return ref
}
