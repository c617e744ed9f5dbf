package controllers_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/controllers"
	"github.com/vcon-operator/vcon-operator/internal/workload"
)

// TestWorkerPlacement: the operator's pod defaults place a Chain that
// names no placement; a Chain's own placement, service account, pod
// labels and env reach its Deployment, the token mounted only with the
// named account.
func TestWorkerPlacement(t *testing.T) {
	defaults := workload.PodDefaults{
		NodeSelector:     map[string]string{"pool": "shared"},
		Tolerations:      []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "vcon", Effect: corev1.TaintEffectNoSchedule}},
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "mirror"}},
	}
	op := startOperator(t, func(r *controllers.ChainReconciler) { r.PodDefaults = defaults })

	op.create(t, op.chain("placed-by-default", []string{"pd-in"}))
	op.waitDeployment(t, "placed-by-default", "the operator's defaults", func(d *appsv1.Deployment) error {
		s := d.Spec.Template.Spec
		if !reflect.DeepEqual(s.NodeSelector, defaults.NodeSelector) || !reflect.DeepEqual(s.Tolerations, defaults.Tolerations) || !reflect.DeepEqual(s.ImagePullSecrets, defaults.ImagePullSecrets) {
			return fmt.Errorf("nodeSelector %v tolerations %v imagePullSecrets %v", s.NodeSelector, s.Tolerations, s.ImagePullSecrets)
		}
		if s.AutomountServiceAccountToken == nil || *s.AutomountServiceAccountToken || s.ServiceAccountName != "" {
			return fmt.Errorf("serviceAccountName %q automount %v: no token without a named account", s.ServiceAccountName, ptrString(s.AutomountServiceAccountToken))
		}
		return nil
	})

	op.create(t, op.chain("placed", []string{"p-in"}, func(c *vconv1.Chain) {
		c.Spec.Workers.NodeSelector = map[string]string{"pool": "calls"}
		c.Spec.Workers.ServiceAccountName = "uploader"
		c.Spec.Workers.PodLabels = map[string]string{"team": "calls"}
		c.Spec.Workers.Env = []vconv1.WorkerEnvVar{{Name: "AWS_REGION", Value: ptr.To("eu-west-1")}}
	}))
	op.waitChain(t, "placed", "Ready", ready)
	op.waitDeployment(t, "placed", "its own placement and identity", func(d *appsv1.Deployment) error {
		s := d.Spec.Template.Spec
		if s.NodeSelector["pool"] != "calls" || !reflect.DeepEqual(s.Tolerations, defaults.Tolerations) {
			return fmt.Errorf("nodeSelector %v tolerations %v", s.NodeSelector, s.Tolerations)
		}
		if s.ServiceAccountName != "uploader" || s.AutomountServiceAccountToken == nil || !*s.AutomountServiceAccountToken {
			return fmt.Errorf("serviceAccountName %q automount %v", s.ServiceAccountName, ptrString(s.AutomountServiceAccountToken))
		}
		if d.Spec.Template.Labels["team"] != "calls" || d.Spec.Template.Labels[workload.LabelChain] != "placed" {
			return fmt.Errorf("pod labels %v", d.Spec.Template.Labels)
		}
		if e := s.Containers[0].Env; len(e) == 0 || e[0].Name != "AWS_REGION" || e[0].Value != "eu-west-1" {
			return fmt.Errorf("env %+v", e)
		}
		return nil
	})
}

// TestWorkerPodDisruptionBudget: workers.podDisruptionBudget gives the
// workers a PDB owned by the Chain, selecting its pods; a change is
// applied; removing the field deletes it.
func TestWorkerPodDisruptionBudget(t *testing.T) {
	op := startOperator(t)
	ctx := context.Background()
	const name = "budgeted"
	op.create(t, op.chain(name, []string{"b-in"}, func(c *vconv1.Chain) {
		c.Spec.Workers.PodDisruptionBudget = &vconv1.WorkerDisruptionBudget{MaxUnavailable: ptr.To(intstr.FromInt32(1))}
	}))
	ch := op.waitChain(t, name, "Ready", ready)
	waitPDB := func(what string, check func(*policyv1.PodDisruptionBudget) error) {
		t.Helper()
		eventually(t, waitFor, name+": "+what, func() error {
			var b policyv1.PodDisruptionBudget
			if err := op.c.Get(ctx, op.key(workload.PodDisruptionBudgetName(name)), &b); err != nil {
				return err
			}
			return check(&b)
		})
	}
	waitPDB("maxUnavailable 1", func(b *policyv1.PodDisruptionBudget) error {
		if b.Spec.MaxUnavailable == nil || b.Spec.MaxUnavailable.IntValue() != 1 || b.Spec.MinAvailable != nil {
			return fmt.Errorf("spec %+v", b.Spec)
		}
		if !reflect.DeepEqual(b.Spec.Selector.MatchLabels, workload.SelectorLabels(name)) {
			return fmt.Errorf("selector %v", b.Spec.Selector)
		}
		checkOwnedBy(t, "PodDisruptionBudget", b.OwnerReferences, ch)
		return nil
	})

	patchChain(t, op, name, func(c *vconv1.Chain) {
		c.Spec.Workers.PodDisruptionBudget = &vconv1.WorkerDisruptionBudget{MinAvailable: ptr.To(intstr.FromString("50%"))}
	})
	waitPDB("minAvailable 50%", func(b *policyv1.PodDisruptionBudget) error {
		if b.Spec.MinAvailable == nil || b.Spec.MinAvailable.String() != "50%" || b.Spec.MaxUnavailable != nil {
			return fmt.Errorf("spec %+v", b.Spec)
		}
		return nil
	})

	patchChain(t, op, name, func(c *vconv1.Chain) { c.Spec.Workers.PodDisruptionBudget = nil })
	eventually(t, waitFor, name+": PodDisruptionBudget deleted", func() error {
		err := op.c.Get(ctx, op.key(workload.PodDisruptionBudgetName(name)), &policyv1.PodDisruptionBudget{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (err %v)", err)
	})
}

// TestWorkerPodRefusedByAPIServer: placement the CRD lets through and the
// API server refuses on the Deployment (a toleration with operator Exists
// and a value) is reported as InvalidChain in the server's words, not
// only retried in the operator's log; a fixed Chain runs.
func TestWorkerPodRefusedByAPIServer(t *testing.T) {
	op := startOperator(t)
	const name = "misplaced"
	op.create(t, op.chain(name, []string{"m-in"}, func(c *vconv1.Chain) {
		c.Spec.Workers.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists, Value: "vcon"}}
	}))
	op.waitChain(t, name, "InvalidChain", hasCondition(vconv1.ConditionReady, metav1.ConditionFalse, vconv1.ReasonInvalidChain,
		"the API server refused an object built from the Chain's spec.workers", "spec.template.spec.tolerations[0].operator"))
	patchChain(t, op, name, func(c *vconv1.Chain) { c.Spec.Workers.Tolerations[0].Value = "" })
	op.waitChain(t, name, "Ready once fixed", ready)
	op.waitDeployment(t, name, "created", func(*appsv1.Deployment) error { return nil })
}
