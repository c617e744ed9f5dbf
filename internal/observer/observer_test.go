package observer

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/redis/go-redis/v9"
	"k8s.io/apimachinery/pkg/types"

	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/redisconn"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

// newCounted returns an observer whose clients count their round trips
// (one pipeline per poll is what the observer promises).
func newCounted(t *testing.T, interval time.Duration) (*Observer, *testenv.RoundTrips) {
	t.Helper()
	o := New(interval, logr.Discard())
	counter := &testenv.RoundTrips{}
	o.open = func(url string) (redis.UniversalClient, error) {
		c, err := redisconn.Open(url)
		if err == nil {
			c.AddHook(counter)
		}
		return c, err
	}
	t.Cleanup(o.closeClients)
	return o, counter
}

func key(i int) types.NamespacedName {
	return types.NamespacedName{Namespace: "ns", Name: fmt.Sprintf("chain-%04d", i)}
}

// TestOneRoundTripPerServer: however many Chains, one pipelined round trip
// per Redis server per poll.
func TestOneRoundTripPerServer(t *testing.T) {
	a, b := testenv.StartRedis(t), testenv.StartRedis(t)
	ctx := context.Background()
	for _, tt := range []struct {
		name    string
		chains  int
		servers []*testenv.Redis
	}{
		{"one chain", 1, []*testenv.Redis{a}},
		{"500 chains", 500, []*testenv.Redis{a}},
		{"500 chains on two servers", 500, []*testenv.Redis{a, b}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o, counter := newCounted(t, time.Second)
			for i := range tt.chains {
				srv := tt.servers[i%len(tt.servers)]
				o.Track(key(i), srv.URL(), queue.Target{Ingress: []string{fmt.Sprintf("in-%d", i)}, Egress: []string{fmt.Sprintf("out-%d", i)}})
			}
			const polls = 3
			for range polls {
				o.Poll(ctx)
			}
			if got, want := counter.Pipelines.Load(), int64(polls*len(tt.servers)); got != want {
				t.Errorf("%d pipelines for %d polls of %d servers, want %d", got, polls, len(tt.servers), want)
			}
			if n := counter.Commands.Load(); n != 0 {
				t.Errorf("%d commands outside the pipeline", n)
			}
			if got, want := o.RoundTrips(), int64(polls*len(tt.servers)); got != want {
				t.Errorf("RoundTrips() %d, want %d", got, want)
			}
			if len(o.Snapshot()) != tt.chains {
				t.Errorf("%d observations, want %d", len(o.Snapshot()), tt.chains)
			}
		})
	}
}

// slowPolls delays every pipeline before it takes a connection, as a poll
// of 10,000 Chains on a busy machine spends its time building the
// pipeline and waiting for the CPU.
type slowPolls struct{ delay time.Duration }

func (s slowPolls) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (s slowPolls) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (s slowPolls) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		time.Sleep(s.delay)
		return next(ctx, cmds)
	}
}

// TestSlowPollIsNotUnreachable: a poll that takes longer than the poll
// interval is slow, not a Redis out of reach: its Chains stay measured
// and fresh.
func TestSlowPollIsNotUnreachable(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartRedis(t)
	o := New(200*time.Millisecond, logr.Discard())
	o.open = func(url string) (redis.UniversalClient, error) {
		c, err := redisconn.Open(url)
		if err == nil {
			c.AddHook(slowPolls{delay: 1500 * time.Millisecond}) // seven intervals
		}
		return c, err
	}
	t.Cleanup(o.closeClients)
	o.Track(key(0), srv.URL(), queue.Target{Ingress: []string{"in"}})
	o.Poll(ctx)
	if obs, _ := o.Get(key(0)); !obs.Fresh() {
		t.Errorf("after a slow poll: stale %v, err %q, want fresh", obs.Stale, obs.Err)
	}
}

// TestEveryChangeIsDelivered: when more Chains change in one poll than the
// event channel holds (e.g. every Chain of a Redis that just went down), no
// notification is dropped: nothing else would reconcile those Chains.
func TestEveryChangeIsDelivered(t *testing.T) {
	srv := testenv.StartRedis(t)
	o, _ := newCounted(t, time.Second)
	chains := cap(o.events) + 500
	for i := range chains {
		o.Track(key(i), srv.URL(), queue.Target{Ingress: []string{fmt.Sprintf("in-%d", i)}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	polled := make(chan struct{})
	go func() { o.Poll(ctx); close(polled) }()

	// Start reading only once the channel is full (or the poll finished):
	// the controller's queue may be slow to take events.
	for len(o.events) < cap(o.events) {
		select {
		case <-polled:
		case <-ctx.Done():
			t.Fatal("the channel never filled")
		default:
			time.Sleep(5 * time.Millisecond)
			continue
		}
		break
	}
	seen := map[types.NamespacedName]bool{}
	for len(seen) < chains {
		select {
		case ev := <-o.Events():
			seen[types.NamespacedName{Namespace: ev.Object.GetNamespace(), Name: ev.Object.GetName()}] = true
		case <-polled:
			// Drain what is left after the poll returned.
			for len(o.events) > 0 {
				ev := <-o.events
				seen[types.NamespacedName{Namespace: ev.Object.GetNamespace(), Name: ev.Object.GetName()}] = true
			}
			if len(seen) < chains {
				t.Fatalf("%d of %d Chains notified: the rest were dropped", len(seen), chains)
			}
		case <-ctx.Done():
			t.Fatalf("%d of %d Chains notified before the deadline", len(seen), chains)
		}
	}
	<-polled
}

// TestOutageKeepsFigures: Redis down marks the last figures stale (and
// notifies once); Redis back clears it at the next poll.
func TestOutageKeepsFigures(t *testing.T) {
	srv := testenv.StartRedis(t)
	ctx := context.Background()
	o, _ := newCounted(t, 200*time.Millisecond)
	k := key(1)
	o.Track(k, srv.URL(), queue.Target{Ingress: []string{"calls"}})
	if err := srv.Client().RPush(ctx, "calls", "a", "b").Err(); err != nil {
		t.Fatal(err)
	}
	o.Poll(ctx)
	first, ok := o.Get(k)
	if !ok || !first.Measured || first.Stale || first.Ingress != 2 {
		t.Fatalf("first observation %+v", first)
	}
	drain(o)

	srv.Stop()
	o.Poll(ctx)
	down, _ := o.Get(k)
	if !down.Stale || down.Err == "" || down.Ingress != 2 || !down.At.Equal(first.At) {
		t.Errorf("while down: %+v, want the last figures, stale, with the error and the time they were measured", down)
	}
	if n := drain(o); n != 1 {
		t.Errorf("%d notifications for going stale, want 1", n)
	}
	o.Poll(ctx)
	if n := drain(o); n != 0 {
		t.Errorf("%d notifications for staying down, want 0", n)
	}

	srv.Start()
	o.Poll(ctx)
	up, _ := o.Get(k)
	if up.Stale || up.Err != "" || !up.Measured || up.Ingress != 0 {
		t.Errorf("after restart: %+v, want fresh figures (the restarted Redis is empty)", up)
	}
	if n := drain(o); n != 1 {
		t.Errorf("%d notifications for coming back, want 1", n)
	}
}

func drain(o *Observer) int {
	n := 0
	for {
		select {
		case <-o.events:
			n++
		default:
			return n
		}
	}
}

// TestUnreachableFromTheStart: a Chain whose Redis never answered is
// tracked as not measured, with the error.
func TestUnreachableFromTheStart(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	o, _ := newCounted(t, 200*time.Millisecond)
	o.Track(key(1), "redis://"+addr, queue.Target{Ingress: []string{"calls"}})
	o.Poll(context.Background())
	obs, ok := o.Get(key(1))
	if !ok || obs.Measured || !obs.Stale || obs.Err == "" {
		t.Errorf("observation %+v (present %v), want not measured, stale, with the error", obs, ok)
	}
}

// TestKeepsQueuedBodies: with KeepBodies set, each poll extends the bodies
// of the next window of every non-empty ingress list to at least that TTL
// (a longer TTL and a body without one stay as they are), wrapping round
// the list; an idle server pays nothing for it.
func TestKeepsQueuedBodies(t *testing.T) {
	srv := testenv.StartRedis(t)
	rdb := srv.Client()
	ctx := context.Background()
	const n = keepBatch + 100 // two polls to sweep the list
	pipe := rdb.Pipeline()
	for i := range n {
		u := fmt.Sprintf("u-%04d", i)
		pipe.Set(ctx, "vcon:"+u, "{}", 5*time.Second)
		pipe.RPush(ctx, "backlog", u)
	}
	pipe.Set(ctx, "vcon:u-0001", "{}", 0)            // no TTL: stays so
	pipe.Set(ctx, "vcon:u-0002", "{}", 48*time.Hour) // longer: stays so
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	o, counter := newCounted(t, time.Second)
	o.KeepBodies = time.Hour
	o.Track(key(1), srv.URL(), queue.Target{Ingress: []string{"backlog"}})
	o.Track(key(2), srv.URL(), queue.Target{Ingress: []string{"idle"}})

	ttl := func(u string) time.Duration { return rdb.PTTL(ctx, "vcon:"+u).Val() }
	o.Poll(ctx)
	if d := ttl("u-0000"); d < 59*time.Minute {
		t.Errorf("first window: TTL %s, want about an hour", d)
	}
	if d := ttl(fmt.Sprintf("u-%04d", keepBatch)); d > 5*time.Second {
		t.Errorf("beyond the first window: TTL %s, want untouched", d)
	}
	o.Poll(ctx)
	if d := ttl(fmt.Sprintf("u-%04d", n-1)); d < 59*time.Minute {
		t.Errorf("second window: TTL %s, want about an hour", d)
	}
	if d := ttl("u-0001"); d != -1 {
		t.Errorf("a body without TTL got %s", d)
	}
	if d := ttl("u-0002"); d < 47*time.Hour {
		t.Errorf("a longer TTL was shortened to %s", d)
	}
	if got := counter.Pipelines.Load(); got != 2*3 {
		t.Errorf("%d pipelines for two polls of a backlog, want 6 (measure, read, extend)", got)
	}

	// An idle server: one round trip per poll, as without the keeper.
	rdb.Del(ctx, "backlog")
	before := counter.Pipelines.Load()
	o.Poll(ctx)
	if got := counter.Pipelines.Load() - before; got != 1 {
		t.Errorf("an idle poll used %d pipelines, want 1", got)
	}
}
