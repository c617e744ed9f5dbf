package workload

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
)

// PodDefaults are the operator's placement for the worker pods of every
// Chain (the chart's workers.defaults, --worker-pod-defaults): each field
// applies to a Chain that sets none of its own. Identity (the service
// account) and settings (env) are a Chain's own business and have no
// default.
type PodDefaults struct {
	NodeSelector              map[string]string                 `json:"nodeSelector,omitempty"`
	Tolerations               []corev1.Toleration               `json:"tolerations,omitempty"`
	Affinity                  *corev1.Affinity                  `json:"affinity,omitempty"`
	TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints,omitempty"`
	PriorityClassName         string                            `json:"priorityClassName,omitempty"`
	ImagePullSecrets          []corev1.LocalObjectReference     `json:"imagePullSecrets,omitempty"`
}

// ParsePodDefaults reads --worker-pod-defaults: a JSON object with the
// fields of PodDefaults; empty is none. A misspelt field is an error, not
// a default silently missing from every Chain.
func ParsePodDefaults(s string) (PodDefaults, error) {
	var d PodDefaults
	if strings.TrimSpace(s) == "" {
		return d, nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return PodDefaults{}, fmt.Errorf("worker pod defaults: %w (want a JSON object with nodeSelector, tolerations, affinity, topologySpreadConstraints, priorityClassName or imagePullSecrets)", err)
	}
	return d, nil
}

// OperatorEnv is whether the operator sets the worker variable name
// itself: REDIS_URL, VCON_QUEUED_RETENTION, and the variables carrying
// steps' Secrets (StepEnvName: VCON_LINK<n>_, VCON_STORAGE<n>_; http
// headers: VCON_STEP_). A Chain's workers.env cannot set these; the CRD
// refuses them with the same rule.
func OperatorEnv(name string) bool {
	if name == "REDIS_URL" || name == "VCON_QUEUED_RETENTION" || strings.HasPrefix(name, "VCON_STEP_") {
		return true
	}
	for _, p := range []string{"VCON_LINK", "VCON_STORAGE"} {
		if rest, ok := strings.CutPrefix(name, p); ok && rest != "" && rest[0] >= '0' && rest[0] <= '9' {
			return true
		}
	}
	return false
}

// placePod sets the Chain's placement and identity on the worker pod,
// the operator's defaults where the Chain sets none.
func placePod(spec *corev1.PodSpec, ch *vconv1.Chain, d PodDefaults) {
	w := ch.Spec.Workers.WorkerPod
	spec.NodeSelector = w.NodeSelector
	if len(spec.NodeSelector) == 0 {
		spec.NodeSelector = d.NodeSelector
	}
	spec.Tolerations = w.Tolerations
	if len(spec.Tolerations) == 0 {
		spec.Tolerations = d.Tolerations
	}
	spec.Affinity = w.Affinity
	if spec.Affinity == nil {
		spec.Affinity = d.Affinity
	}
	spec.TopologySpreadConstraints = w.TopologySpreadConstraints
	if len(spec.TopologySpreadConstraints) == 0 {
		spec.TopologySpreadConstraints = d.TopologySpreadConstraints
	}
	spec.PriorityClassName = w.PriorityClassName
	if spec.PriorityClassName == "" {
		spec.PriorityClassName = d.PriorityClassName
	}
	spec.ImagePullSecrets = w.ImagePullSecrets
	if len(spec.ImagePullSecrets) == 0 {
		spec.ImagePullSecrets = d.ImagePullSecrets
	}
	// The token is mounted only for a service account the Chain names:
	// the workers never call the Kubernetes API, and a cloud identity
	// (IRSA, Workload Identity) is the only reason to have one.
	spec.ServiceAccountName = w.ServiceAccountName
	spec.AutomountServiceAccountToken = ptr.To(w.ServiceAccountName != "")
}

// podLabels are the Chain's workers.podLabels with the operator's on top:
// the CRD refuses the operator's keys, and should one get through (a Chain
// never validated), the selector still wins.
func podLabels(ch *vconv1.Chain) map[string]string {
	out := maps.Clone(ch.Spec.Workers.PodLabels)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, Labels(ch.Name))
	return out
}

// podAnnotations are workers.podAnnotations with the config hash on top.
func podAnnotations(ch *vconv1.Chain, hash string) map[string]string {
	out := maps.Clone(ch.Spec.Workers.PodAnnotations)
	if out == nil {
		out = map[string]string{}
	}
	out[AnnotationConfigHash] = hash
	return out
}

// userEnv is the Chain's workers.env, first in the container's env so
// that a $(VAR) in its values cannot expand a variable the operator sets
// (Kubernetes expands only those defined before). A name the operator
// sets is dropped: the CRD refuses it, and the operator's must win.
func userEnv(ch *vconv1.Chain) []corev1.EnvVar {
	var out []corev1.EnvVar
	for _, e := range ch.Spec.Workers.Env {
		if OperatorEnv(e.Name) {
			continue
		}
		v := corev1.EnvVar{Name: e.Name}
		if e.Value != nil {
			v.Value = *e.Value
		}
		if f := e.ValueFrom; f != nil {
			v.ValueFrom = &corev1.EnvVarSource{
				SecretKeyRef:     f.SecretKeyRef.DeepCopy(),
				ConfigMapKeyRef:  f.ConfigMapKeyRef.DeepCopy(),
				FieldRef:         f.FieldRef.DeepCopy(),
				ResourceFieldRef: f.ResourceFieldRef.DeepCopy(),
			}
		}
		out = append(out, v)
	}
	return out
}

// userEnvFrom is the Chain's workers.envFrom, before the steps' envFrom:
// of two sources with one key the later wins, and env beats every
// envFrom, so no key of these overrides what the operator sets.
func userEnvFrom(ch *vconv1.Chain) []corev1.EnvFromSource {
	var out []corev1.EnvFromSource
	for _, e := range ch.Spec.Workers.EnvFrom {
		out = append(out, corev1.EnvFromSource{Prefix: e.Prefix, ConfigMapRef: e.ConfigMapRef.DeepCopy(), SecretRef: e.SecretRef.DeepCopy()})
	}
	return out
}

// PodDisruptionBudgetName names a Chain's worker PodDisruptionBudget.
func PodDisruptionBudgetName(chain string) string { return chain + "-worker" }

// PodDisruptionBudget is the Chain's worker PodDisruptionBudget, nil when
// workers.podDisruptionBudget is not set. Pods that are not ready may
// always be evicted (AlwaysAllow): a crashing worker holds no vCon and
// must not block a node drain.
func PodDisruptionBudget(ch *vconv1.Chain) *policyv1.PodDisruptionBudget {
	b := ch.Spec.Workers.PodDisruptionBudget
	if b == nil {
		return nil
	}
	return &policyv1.PodDisruptionBudget{
		TypeMeta: metav1.TypeMeta{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"},
		ObjectMeta: metav1.ObjectMeta{
			Name: PodDisruptionBudgetName(ch.Name), Namespace: ch.Namespace,
			Labels: Labels(ch.Name), OwnerReferences: owner(ch),
		},
		Spec: policyv1.PodDisruptionBudgetSpec{
			Selector:                   &metav1.LabelSelector{MatchLabels: SelectorLabels(ch.Name)},
			MinAvailable:               b.MinAvailable,
			MaxUnavailable:             b.MaxUnavailable,
			UnhealthyPodEvictionPolicy: ptr.To(policyv1.AlwaysAllow),
		},
	}
}
