package controllers_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/workload"
)

// TestPaused: vcon.dev/paused: "true" freezes a Chain with workers
// running. The queue grows and the spec changes (concurrency, timeout, a
// PodDisruptionBudget), and the operator writes none of it: replicas,
// Deployment, ConfigMap stay, no PDB appears; the status moves (queue
// figures, Ready=False Paused for the new generation). Removing the
// annotation applies all of it within a poll (here the waiting queue's
// growing age wakes the Chain every poll anyway; TestUnpauseWakesIdleChain
// shows the annotation's removal alone does).
func TestPaused(t *testing.T) {
	op := startOperator(t)
	ctx := context.Background()
	const name, list = "frozen", "frozen-in"
	op.create(t, op.chain(name, []string{list}, func(c *vconv1.Chain) { c.Spec.Workers.TargetQueueDepth = 100 }))
	op.waitChain(t, name, "measured", all(ready, measured))
	if err := op.rdb.RPush(ctx, list, uuids("a", 200)...).Err(); err != nil {
		t.Fatal(err)
	}
	before := op.waitDeployment(t, name, "two workers", replicasAre(2))
	var cmBefore corev1.ConfigMap
	if err := op.c.Get(ctx, op.key(workload.ConfigMapName(name)), &cmBefore); err != nil {
		t.Fatal(err)
	}

	patchChain(t, op, name, func(c *vconv1.Chain) {
		metav1.SetMetaDataAnnotation(&c.ObjectMeta, vconv1.AnnotationPaused, "true")
	})
	op.waitChain(t, name, "Paused", hasCondition(vconv1.ConditionReady, metav1.ConditionFalse, vconv1.ReasonPaused, "workers stay at 2", "remove the annotation to resume"))
	waitEvent(t, op, name, vconv1.ReasonPaused, "until the annotation goes")

	if err := op.rdb.RPush(ctx, list, uuids("b", 400)...).Err(); err != nil {
		t.Fatal(err)
	}
	patchChain(t, op, name, func(c *vconv1.Chain) {
		c.Spec.Workers.Concurrency = 8
		c.Spec.Timeout = &metav1.Duration{Duration: 5 * time.Minute}
		c.Spec.Workers.PodDisruptionBudget = &vconv1.WorkerDisruptionBudget{MaxUnavailable: ptr.To(intstr.FromInt32(1))}
	})
	// The status is written after the objects would have been: once it
	// describes the new generation and the grown queue, a reconcile that
	// saw both has run.
	op.waitChain(t, name, "paused at the new generation, the queue grown", all(
		hasCondition(vconv1.ConditionReady, metav1.ConditionFalse, vconv1.ReasonPaused),
		func(c *vconv1.Chain) error {
			if c.Status.ObservedGeneration != c.Generation || c.Status.Queue.Ingress != 600 || c.Status.Replicas != 2 {
				return fmt.Errorf("observedGeneration %d of %d, ingress %d, replicas %d", c.Status.ObservedGeneration, c.Generation, c.Status.Queue.Ingress, c.Status.Replicas)
			}
			return nil
		}))
	var d appsv1.Deployment
	if err := op.c.Get(ctx, op.key(workload.DeploymentName(name)), &d); err != nil {
		t.Fatal(err)
	}
	if d.Generation != before.Generation || *d.Spec.Replicas != 2 {
		t.Errorf("the paused Chain's Deployment was written: generation %d → %d, replicas %d", before.Generation, d.Generation, *d.Spec.Replicas)
	}
	var cm corev1.ConfigMap
	if err := op.c.Get(ctx, op.key(workload.ConfigMapName(name)), &cm); err != nil {
		t.Fatal(err)
	}
	if cm.ResourceVersion != cmBefore.ResourceVersion {
		t.Errorf("the paused Chain's ConfigMap was written:\n%s", cm.Data[workload.ConfigKey])
	}
	if err := op.c.Get(ctx, op.key(workload.PodDisruptionBudgetName(name)), &policyv1.PodDisruptionBudget{}); !apierrors.IsNotFound(err) {
		t.Errorf("the paused Chain got a PodDisruptionBudget (err %v)", err)
	}

	patchChain(t, op, name, func(c *vconv1.Chain) { delete(c.Annotations, vconv1.AnnotationPaused) })
	resumed := time.Now()
	op.waitDeployment(t, name, "resumed: scaled to the queue, the spec applied", all(replicasAre(6), func(d *appsv1.Deployment) error {
		if !slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--concurrency=8") {
			return fmt.Errorf("args %v", d.Spec.Template.Spec.Containers[0].Args)
		}
		return nil
	}))
	took := time.Since(resumed)
	t.Logf("resumed %v after the annotation went (poll %v)", took.Round(time.Millisecond), pollInterval)
	// The same reconcile applies the PodDisruptionBudget right after the
	// Deployment: wait for it rather than race it.
	eventually(t, waitFor, "a PodDisruptionBudget once resumed", func() error {
		return op.c.Get(ctx, op.key(workload.PodDisruptionBudgetName(name)), &policyv1.PodDisruptionBudget{})
	})
	op.waitChain(t, name, "Ready again", ready)
	waitEvent(t, op, name, "Resumed", "applied again")
	if err := op.c.Get(ctx, op.key(workload.ConfigMapName(name)), &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Data[workload.ConfigKey] == cmBefore.Data[workload.ConfigKey] {
		t.Error("the ConfigMap kept the old timeout once resumed")
	}
	// A poll, with room for a loaded 2-core machine.
	if took > pollInterval+waitFor/4 {
		t.Errorf("resuming took %v, want about a poll (%v)", took, pollInterval)
	}
}

// TestPausedAnyOtherValue: only "true" pauses; "false" or another word
// leaves the Chain running.
func TestPausedAnyOtherValue(t *testing.T) {
	op := startOperator(t)
	op.create(t, op.chain("not-frozen", []string{"nf-in"}, func(c *vconv1.Chain) {
		c.Annotations = map[string]string{vconv1.AnnotationPaused: "false"}
		c.Spec.Workers.MinReplicas = 1
	}))
	op.waitChain(t, "not-frozen", "Ready", ready)
	op.waitDeployment(t, "not-frozen", "one worker", replicasAre(1))
}

// TestUnpauseWakesIdleChain: an idle Chain (nothing queued, so no
// measurement changes to wake it) resumes as soon as the annotation goes:
// the watch notices annotation changes, not only spec ones.
func TestUnpauseWakesIdleChain(t *testing.T) {
	op := startOperator(t)
	const name = "idle-frozen"
	op.create(t, op.chain(name, []string{"if-in"}, func(c *vconv1.Chain) {
		c.Annotations = map[string]string{vconv1.AnnotationPaused: "true"}
	}))
	op.waitChain(t, name, "Paused from the start", all(measured, hasCondition(vconv1.ConditionReady, metav1.ConditionFalse, vconv1.ReasonPaused)))
	if err := op.c.Get(context.Background(), op.key(workload.DeploymentName(name)), &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a Chain created paused got a Deployment (err %v)", err)
	}
	patchChain(t, op, name, func(c *vconv1.Chain) { delete(c.Annotations, vconv1.AnnotationPaused) })
	resumed := time.Now()
	op.waitDeployment(t, name, "created once resumed", replicasAre(0))
	op.waitChain(t, name, "Ready", ready)
	t.Logf("resumed %v after the annotation went", time.Since(resumed).Round(time.Millisecond))
}
