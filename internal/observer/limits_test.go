package observer

import (
	"context"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/ratelimit"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

// TestLinkBudgetsInTheRoundTrip: a Chain's link budgets are read with its
// queues, in the same round trip, and the second poll has the rates.
func TestLinkBudgetsInTheRoundTrip(t *testing.T) {
	srv := testenv.StartRedis(t)
	rdb := srv.Client()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := New(time.Second, logr.Discard())
	k := key(1)
	o.Track(k, srv.URL(), queue.Target{Ingress: []string{"calls"}}, LinkBudget{Link: "vendor", Budget: "ns/vendor"})
	lim := ratelimit.New(rdb, ratelimit.Limits{MaxConcurrent: 1}, ratelimit.Options{Budget: "ns/vendor", Party: k.Name, Holder: "w1", Lease: time.Minute})
	release, err := lim.Acquire(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan struct{})
	go func() {
		defer close(waiting)
		if r, err := lim.Acquire(ctx, 0); err == nil {
			r(0)
		}
	}()
	var first Observation
	for first.Links == nil || first.Links[0].Waiting != 1 {
		o.Poll(ctx)
		first, _ = o.Get(k)
	}
	u := first.Links[0]
	if u.Link != "vendor" || u.InUse != 1 || u.Factor != 1 || u.RatesKnown && u.RequestsPerMinute <= 0 {
		t.Fatalf("first reading %+v", u)
	}
	if rt, polls := o.RoundTrips(), o.Polls(); rt != polls {
		t.Fatalf("%d round trips in %d polls, want one each", rt, polls)
	}
	release(0)
	<-waiting
	// The grant shows as a rate in the poll whose interval holds it (a
	// poll within the same Redis millisecond has no rate yet).
	for i := 0; ; i++ {
		o.Poll(ctx)
		obs, _ := o.Get(k)
		if u := obs.Links[0]; u.RatesKnown && u.RequestsPerMinute > 0 {
			break
		}
		if i == 100 {
			t.Fatalf("no rate measured after a grant: %+v", obs.Links)
		}
		drain(o)
	}
}
