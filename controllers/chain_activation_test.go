package controllers_test

import (
	"context"
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
)

// TestActivationQueueDepth: a Chain at zero starts no worker until the
// depth is queued, and then scales as ever.
func TestActivationQueueDepth(t *testing.T) {
	op := startOperator(t)
	op.create(t, op.chain("activation", []string{"activation-in"}, func(c *vconv1.Chain) {
		c.Spec.Workers.ActivationQueueDepth = 5
	}))
	op.waitChain(t, "activation", "measured", all(ready, measured))

	if err := op.rdb.RPush(context.Background(), "activation-in", uuids("activation", 3)...).Err(); err != nil {
		t.Fatal(err)
	}
	// The reconcile that writes the new figures decided the replicas too.
	op.waitChain(t, "activation", "3 queued, still at zero", func(c *vconv1.Chain) error {
		if c.Status.Queue.Ingress != 3 || c.Status.Replicas != 0 {
			return fmt.Errorf("queue %+v, replicas %d", c.Status.Queue, c.Status.Replicas)
		}
		return nil
	})
	op.waitDeployment(t, "activation", "still at zero", replicasAre(0))

	if err := op.rdb.RPush(context.Background(), "activation-in", uuids("activation-more", 2)...).Err(); err != nil {
		t.Fatal(err)
	}
	op.waitDeployment(t, "activation", "activated", replicasAre(1))
}

// TestSchedules: an open schedule's minimum runs workers with nothing
// queued; a schedule the operator cannot read is InvalidSchedule.
func TestSchedules(t *testing.T) {
	op := startOperator(t)
	// Opened at the start of this minute, closed only at the new year's.
	op.create(t, op.chain("scheduled", []string{"scheduled-in"}, func(c *vconv1.Chain) {
		c.Spec.Workers.Schedules = []vconv1.WorkerSchedule{{Start: "* * * * *", End: "0 0 1 1 *", TimeZone: "Europe/Berlin", MinReplicas: 2, MaxReplicas: 5}}
	}))
	op.waitDeployment(t, "scheduled", "the schedule's minimum", replicasAre(2))

	op.create(t, op.chain("misscheduled", []string{"misscheduled-in"}, func(c *vconv1.Chain) {
		c.Spec.Workers.Schedules = []vconv1.WorkerSchedule{{Start: "0 9 * * *", End: "0 17 * * *", TimeZone: "Mars/Olympus", MinReplicas: 2, MaxReplicas: 5}}
	}))
	op.waitChain(t, "misscheduled", "invalid schedule", hasCondition(vconv1.ConditionReady, metav1.ConditionFalse, vconv1.ReasonInvalidSchedule,
		`workers.schedules[0]`, `timeZone "Mars/Olympus" is not an IANA time zone`))
}
