package controllers_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/ratelimit"
	"github.com/vcon-operator/vcon-operator/internal/workload"
)

// TestLinkLimitBindsScaling: a worker of the Chain holds every permit of
// its Link and more of its vCons wait for one. The autoscaler stops at the
// workers the limit can use, says so in ScalingLimited, and scales up at
// once when the Link's limit is raised.
func TestLinkLimitBindsScaling(t *testing.T) {
	op := startOperator(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	link := tagLink("vendor", `{"tags":["a"]}`)
	link.Spec.Limits = &vconv1.LinkLimits{MaxConcurrent: 2}
	op.create(t, link, op.chain("limited", []string{"limited-in"}, func(c *vconv1.Chain) {
		c.Spec.Links = []string{"vendor"}
		c.Spec.Workers.MaxReplicas = 10
		c.Spec.Workers.TargetQueueDepth = 10
		c.Spec.Workers.Concurrency = 4
	}))
	op.waitChain(t, "limited", "measured", all(ready, measured))

	// A worker took 8 vCons: 2 hold the Link's permits, 3 wait for one,
	// 3 are elsewhere in the chain.
	if err := op.rdb.RPush(ctx, "limited-in", uuids("limited", 108)...).Err(); err != nil {
		t.Fatal(err)
	}
	w := queue.NewWorker(op.rdb, "w1", time.Minute)
	if err := w.Heartbeat(ctx, []string{"limited-in"}); err != nil {
		t.Fatal(err)
	}
	if items, err := w.TakeUpTo(ctx, "limited-in", 8); err != nil || len(items) != 8 {
		t.Fatalf("take: %d, %v", len(items), err)
	}
	lim := ratelimit.New(op.rdb, ratelimit.Limits{MaxConcurrent: 2}, ratelimit.Options{
		Budget: workload.LimitBudget(link), Party: "limited", Holder: "w1", Lease: time.Minute,
	})
	for range 2 {
		if _, err := lim.Acquire(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = lim.Acquire(ctx, 0) // waits until the test ends
		}()
	}

	// 5 slots work at the limit's pace: 2 workers of 4 slots.
	op.waitDeployment(t, "limited", "held at what the limit can use", replicasAre(2))
	op.waitChain(t, "limited", "ScalingLimited by the link", hasCondition(vconv1.ConditionScalingLimited, metav1.ConditionTrue, vconv1.ReasonLinkLimit,
		"link vendor's limit of 2 concurrent calls binds: it can use 2 workers, the queue wants 11"))

	// Ten times the permits: the queue decides again, up to maxReplicas.
	var l vconv1.Link
	if err := op.c.Get(ctx, op.key("vendor"), &l); err != nil {
		t.Fatal(err)
	}
	l.Spec.Limits.MaxConcurrent = 20
	if err := op.c.Update(ctx, &l); err != nil {
		t.Fatal(err)
	}
	op.waitDeployment(t, "limited", "scaled up after the raise", replicasAre(10))
	op.waitChain(t, "limited", "limited by maxReplicas", hasCondition(vconv1.ConditionScalingLimited, metav1.ConditionTrue, vconv1.ReasonAtMaxReplicas, fmt.Sprintf("workers.maxReplicas is %d", 10)))
}
