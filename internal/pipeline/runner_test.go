package pipeline

import (
	"context"
	"errors"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/links"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// probeLink records when it ran on each vCon and optionally holds it for
// hold (or until the worker's context ends).
type probeLink struct {
	hold    time.Duration
	mu      sync.Mutex
	ran     map[string]time.Time
	started chan string
}

func newProbe(hold time.Duration) *probeLink {
	return &probeLink{hold: hold, ran: map[string]time.Time{}, started: make(chan string, 1000)}
}

func (l *probeLink) Run(ctx context.Context, v *vcon.VCon) (links.Result, error) {
	l.mu.Lock()
	l.ran[v.UUID()] = time.Now()
	l.mu.Unlock()
	l.started <- v.UUID()
	if l.hold > 0 {
		select {
		case <-ctx.Done():
			return links.Result{}, ctx.Err()
		case <-time.After(l.hold):
		}
	}
	return links.Continue, nil
}

func (l *probeLink) ranAt(uuid string) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	at, ok := l.ran[uuid]
	return at, ok
}

// startRunner runs r until the returned stop is called; stop returns Run's
// error and how long Run took to return after the stop.
func startRunner(t *testing.T, r *Runner) (stop func() (error, time.Duration)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	var err error
	var took time.Duration
	stop = func() (error, time.Duration) {
		once.Do(func() {
			start := time.Now()
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("runner did not stop within 30s")
			}
			took = time.Since(start)
		})
		return err, took
	}
	t.Cleanup(func() { stop() })
	return stop
}

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRunnerFairness: with one slot, a flooded list does not starve a
// small one: the small list's vCons are done long before the flood.
func TestRunnerFairness(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const flood = 300
	for i := range flood {
		u := testUUID(i)
		e.putBody(t, u, document(u, 700), 0)
		e.rdb.RPush(ctx, "big", u)
	}
	var small []string
	for i := range 5 {
		u := testUUID(10000 + i)
		e.putBody(t, u, document(u, 700), 0)
		small = append(small, u)
	}
	e.rdb.RPush(ctx, "small", small)

	ch := Chain{Name: "main", Ingress: []string{"big", "small"}, Egress: []string{"out"}, Links: []Step{{Name: "probe", Link: newProbe(0)}}}
	p, _, _ := e.processor(ch, testOptions(), "w")
	stop := startRunner(t, NewRunner(p, RunnerOptions{Concurrency: 1}, e.log))

	waitFor(t, "the small list's vCons", 60*time.Second, func() bool {
		got := e.list(t, "out")
		for _, u := range small {
			if !slices.Contains(got, u) {
				return false
			}
		}
		return true
	})
	out := e.list(t, "out")
	last := 0
	for _, u := range small {
		last = max(last, slices.Index(out, u))
	}
	if last > 30 {
		t.Fatalf("the last small-list vCon finished at position %d of the egress list, after %d flood vCons; want it interleaved (< 30)", last, last-4)
	}
	if n := e.rdb.LLen(ctx, "big").Val(); n == 0 {
		t.Fatal("the flooded list was drained before the small one finished")
	}
	if err, _ := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestRunnerIdlePickup: a vCon pushed to an idle runner is taken within
// 100 ms (median of several pushes), on one list and on two lists sharing
// one slot.
func TestRunnerIdlePickup(t *testing.T) {
	for _, tc := range []struct {
		name        string
		lists       []string
		concurrency int
	}{
		{"one list", []string{"in"}, 4},
		{"two lists, one slot", []string{"in1", "in2"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			probe := newProbe(0)
			ch := Chain{Name: "main", Ingress: tc.lists, Links: []Step{{Name: "probe", Link: probe}}}
			p, _, _ := e.processor(ch, testOptions(), "w")
			startRunner(t, NewRunner(p, RunnerOptions{Concurrency: tc.concurrency}, e.log))
			waitFor(t, "registration", 10*time.Second, func() bool {
				return e.rdb.ZScore(ctx, queue.WorkersKey(tc.lists[0]), "w").Err() == nil
			})

			var latencies []time.Duration
			for i := range 9 {
				// Let the runner settle into waiting on every list.
				time.Sleep(300 * time.Millisecond)
				u := testUUID(i)
				e.putBody(t, u, document(u, 700), 0)
				pushed := time.Now()
				e.rdb.RPush(ctx, tc.lists[i%len(tc.lists)], u)
				select {
				case <-probe.started:
				case <-time.After(10 * time.Second):
					t.Fatalf("vCon %d not taken within 10s", i)
				}
				at, _ := probe.ranAt(u)
				latencies = append(latencies, at.Sub(pushed))
			}
			sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
			median := latencies[len(latencies)/2]
			t.Logf("pickup latencies %v", latencies)
			if median > 100*time.Millisecond {
				t.Fatalf("median pickup latency %s, want <= 100ms (all: %v)", median, latencies)
			}
			// No push may wait for another list's blocking take (BlockFor, 1s).
			if worst := latencies[len(latencies)-1]; worst > 500*time.Millisecond {
				t.Fatalf("worst pickup latency %s, want < 500ms (all: %v)", worst, latencies)
			}
		})
	}
}

// TestRunnerGracefulStop: on stop, a vCon in flight finishes within the
// grace period; past a tiny grace it is returned to the head of its
// ingress list, and nothing is lost.
func TestRunnerGracefulStop(t *testing.T) {
	for _, tc := range []struct {
		name         string
		hold, grace  time.Duration
		wantFinished bool
	}{
		{"finishes within grace", 500 * time.Millisecond, 20 * time.Second, true},
		{"returned after a tiny grace", time.Minute, 50 * time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			probe := newProbe(tc.hold)
			ch := Chain{Name: "main", Ingress: []string{"in"}, Egress: []string{"out"}, Links: []Step{{Name: "slow", Link: probe}}}
			p, _, _ := e.processor(ch, testOptions(), "w")
			uuids := []string{testUUID(1), testUUID(2), testUUID(3)}
			for _, u := range uuids {
				e.putBody(t, u, document(u, 700), 0)
			}
			e.rdb.RPush(ctx, "in", uuids)
			stop := startRunner(t, NewRunner(p, RunnerOptions{Concurrency: 1, GracePeriod: tc.grace}, e.log))
			select {
			case <-probe.started:
			case <-time.After(20 * time.Second):
				t.Fatal("first vCon not started")
			}
			err, took := stop()
			if err != nil {
				t.Fatalf("Run = %v, want nil after a clean stop", err)
			}
			if tc.grace < time.Second && took > 5*time.Second {
				t.Errorf("stop took %s with a grace of %s", took, tc.grace)
			}
			out := e.list(t, "out")
			in := e.list(t, "in")
			if tc.wantFinished {
				if !slices.Equal(out, uuids[:1]) || !slices.Equal(in, uuids[1:]) {
					t.Fatalf("egress %v, ingress %v; want the first finished and the rest queued", out, in)
				}
			} else if len(out) != 0 || !slices.Equal(in, uuids) {
				t.Fatalf("egress %v, ingress %v; want nothing finished and every vCon back in order", out, in)
			}
			if n := e.rdb.LLen(ctx, queue.InFlightKey("in", "w")).Val(); n != 0 {
				t.Fatalf("%d vCons left in flight", n)
			}
			if e.rdb.ZScore(ctx, queue.WorkersKey("in"), "w").Err() == nil {
				t.Fatal("worker still registered after stopping")
			}
			if n := e.rdb.LLen(ctx, queue.DLQKey("in")).Val(); n != 0 {
				t.Fatalf("a stop dead-lettered %d vCons", n)
			}
		})
	}
}

// takeCounter counts how uuids are taken: on their own (BLMOVE, LMOVE,
// pipelined LMOVEs) or inside the outcome script of a previous vCon.
type takeCounter struct{ alone, withOutcome atomic.Int64 }

// outcomeTakes reports whether cmd is an outcome script that also takes a
// successor (an LMOVE among its arguments).
func outcomeTakes(cmd redis.Cmder) bool {
	if n := cmd.Name(); n != "evalsha" && n != "eval" {
		return false
	}
	return slices.ContainsFunc(cmd.Args(), func(a any) bool { s, ok := a.(string); return ok && s == "lmove" })
}

func (h *takeCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *takeCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		switch n := cmd.Name(); {
		case n == "blmove" || n == "lmove":
			h.alone.Add(1)
		case outcomeTakes(cmd) && err == nil:
			h.withOutcome.Add(1)
		}
		return err
	}
}
func (h *takeCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if c.Name() == "lmove" {
				h.alone.Add(1)
			}
		}
		return next(ctx, cmds)
	}
}

// TestRunnerTakesWithOutcome: on a busy list, most takes ride in the
// previous vCon's outcome transaction (a round trip saved per vCon), and
// every vCon still goes through exactly once.
func TestRunnerTakesWithOutcome(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const n = 400
	var want []string
	for i := range n {
		u := testUUID(i)
		e.putBody(t, u, document(u, 700), 0)
		want = append(want, u)
	}
	e.rdb.RPush(ctx, "in", want)
	var takes takeCounter
	e.rdb.AddHook(&takes)

	ch := Chain{Name: "main", Ingress: []string{"in"}, Egress: []string{"out"}, Links: []Step{{Name: "probe", Link: newProbe(0)}}}
	p, _, _ := e.processor(ch, testOptions(), "w")
	stop := startRunner(t, NewRunner(p, RunnerOptions{Concurrency: 32}, e.log))
	waitFor(t, "every vCon on egress", 60*time.Second, func() bool { return e.rdb.LLen(ctx, "out").Val() >= n })
	if err, _ := stop(); err != nil {
		t.Fatal(err)
	}
	got := e.list(t, "out")
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Fatalf("egress holds %d uuids (%d distinct of %d sent), want each once", len(got), len(slices.Compact(slices.Clone(got))), n)
	}
	if keys := e.rdb.Keys(ctx, queue.InFlightPrefix("in")+"*").Val(); len(keys) != 0 {
		t.Fatalf("in-flight lists left: %v", keys)
	}
	if held := p.worker.Held(); held != 0 {
		t.Fatalf("the worker still holds %d items after every outcome was written", held)
	}
	alone, ridden := takes.alone.Load(), takes.withOutcome.Load()
	t.Logf("takes on their own: %d, with an outcome: %d", alone, ridden)
	// Over four in five on a quiet machine (the fetcher takes the first
	// 32 and one per wait for a slot); half leaves room for a loaded one.
	if ridden < n/2 {
		t.Fatalf("%d of %d takes rode in an outcome, want at least half", ridden, alone+ridden)
	}
}

// TestRunnerQuietListWhileBusy: while one list keeps every slot busy (and
// its vCons keep taking their successors), a vCon pushed to another list
// still gets a slot at once: the next vCon to finish hands its slot over.
func TestRunnerQuietListWhileBusy(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const flood = 600
	for i := range flood {
		u := testUUID(i)
		e.putBody(t, u, document(u, 700), 0)
		e.rdb.RPush(ctx, "busy", u)
	}
	probe := newProbe(10 * time.Millisecond)
	ch := Chain{Name: "main", Ingress: []string{"busy", "quiet"}, Egress: []string{"out"}, Links: []Step{{Name: "probe", Link: probe}}}
	p, _, _ := e.processor(ch, testOptions(), "w")
	stop := startRunner(t, NewRunner(p, RunnerOptions{Concurrency: 4}, e.log))
	waitFor(t, "the busy list under way", 30*time.Second, func() bool { return e.rdb.LLen(ctx, "out").Val() >= 40 })

	var worst time.Duration
	for i := range 5 {
		u := testUUID(100000 + i)
		e.putBody(t, u, document(u, 700), 0)
		pushed := time.Now()
		e.rdb.RPush(ctx, "quiet", u)
		waitFor(t, "the quiet list's vCon", 10*time.Second, func() bool { _, ok := probe.ranAt(u); return ok })
		at, _ := probe.ranAt(u)
		worst = max(worst, at.Sub(pushed))
	}
	left := e.rdb.LLen(ctx, "busy").Val()
	t.Logf("worst wait of a quiet-list vCon: %s (busy list still holds %d)", worst, left)
	if left == 0 {
		t.Fatal("the busy list drained before the quiet list was tested; make the flood larger")
	}
	if worst > time.Second {
		t.Fatalf("a quiet-list vCon waited %s for a slot while the busy list ran, want well under a second", worst)
	}
	if err, _ := stop(); err != nil {
		t.Fatal(err)
	}
}

// lostReply lets redis-server run the nth outcome transaction that also
// takes a successor, then fails every command of it as a dropped
// connection would: the outcome and the take are applied, the worker hears
// of neither.
type lostReply struct {
	nth, seen atomic.Int32
}

func (h *lostReply) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *lostReply) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if err == nil && outcomeTakes(cmd) && h.seen.Add(1) == h.nth.Load() {
			lost := errors.New("connection reset (simulated after the outcome script ran)")
			cmd.SetErr(lost)
			return lost
		}
		return err
	}
}
func (h *lostReply) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestRunnerReturnsOrphanedTake: when the reply to an outcome transaction
// that took a successor is lost, the outcome is not repeated (the vCon left
// flight), and the successor, in flight without the worker knowing it, is
// returned by the orphan sweep and processed: every vCon on egress once.
func TestRunnerReturnsOrphanedTake(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const n = 30
	var want []string
	for i := range n {
		u := testUUID(i)
		e.putBody(t, u, document(u, 700), 0)
		want = append(want, u)
	}
	hook := &lostReply{}
	hook.nth.Store(3)
	e.rdb.AddHook(hook)

	ch := Chain{Name: "main", Ingress: []string{"in"}, Egress: []string{"out"}, Links: []Step{{Name: "probe", Link: newProbe(0)}}}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	w := queue.NewWorker(e.rdb, "w", 600*time.Millisecond) // sweeps every 200 ms
	p := NewProcessor(e.rdb, e.bodies, w, ch, testOptions(), m, e.log)
	stop := startRunner(t, NewRunner(p, RunnerOptions{Concurrency: 2}, e.log))
	e.rdb.RPush(ctx, "in", want)

	waitFor(t, "every vCon on egress", 30*time.Second, func() bool { return e.rdb.LLen(ctx, "out").Val() >= n })
	time.Sleep(300 * time.Millisecond) // a duplicate would land by now
	if err, _ := stop(); err != nil {
		t.Fatal(err)
	}
	if hook.seen.Load() < hook.nth.Load() {
		t.Fatalf("only %d outcome transactions took a successor; the lost reply was never simulated", hook.seen.Load())
	}
	got := e.list(t, "out")
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Fatalf("egress holds %d uuids, want each of %d once", len(got), n)
	}
	if orphans := testutil.ToFloat64(m.Orphans.WithLabelValues("main")); orphans != 1 {
		t.Fatalf("orphans returned = %v, want 1 (the successor taken by the transaction whose reply was lost)", orphans)
	}
}

// stallLink holds the vCons in stall until its context ends, and reports
// the context's error for each.
type stallLink struct {
	stall   map[string]bool
	started chan string
	ended   chan error
}

func (l *stallLink) Run(ctx context.Context, v *vcon.VCon) (links.Result, error) {
	if !l.stall[v.UUID()] {
		return links.Continue, nil
	}
	l.started <- v.UUID()
	<-ctx.Done()
	l.ended <- ctx.Err()
	return links.Result{}, ctx.Err()
}

// TestRunnerHardStopCancelsLinks: a slot runs its vCons under a context
// of its own, derived once from the worker's hard stop; the end of the
// grace period still cancels the link of every vCon running, the slot's
// first or one it took with an earlier outcome, and returns them.
func TestRunnerHardStopCancelsLinks(t *testing.T) {
	for _, tc := range []struct {
		name              string
		concurrency, n    int
		stallFrom, stalls int
	}{
		{"one slot, its first vCon", 1, 3, 0, 1},
		{"one slot, a later vCon", 1, 8, 4, 1},
		{"every slot, after several vCons each", 4, 60, 40, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			link := &stallLink{stall: map[string]bool{}, started: make(chan string, tc.n), ended: make(chan error, tc.n)}
			var uuids []string
			for i := range tc.n {
				u := testUUID(i)
				e.putBody(t, u, document(u, 700), 0)
				uuids = append(uuids, u)
				if i >= tc.stallFrom {
					link.stall[u] = true
				}
			}
			e.rdb.RPush(ctx, "in", uuids)
			ch := Chain{Name: "main", Ingress: []string{"in"}, Egress: []string{"out"}, Links: []Step{{Name: "stall", Link: link}}}
			p, _, _ := e.processor(ch, testOptions(), "w")
			stop := startRunner(t, NewRunner(p, RunnerOptions{Concurrency: tc.concurrency, GracePeriod: 50 * time.Millisecond}, e.log))
			for range tc.stalls {
				select {
				case <-link.started:
				case <-time.After(20 * time.Second):
					t.Fatal("the stalling vCons did not all start")
				}
			}
			if err, took := stop(); err != nil || took > 5*time.Second {
				t.Fatalf("Run = %v after %s, want nil soon after the grace period", err, took)
			}
			for range tc.stalls {
				select {
				case err := <-link.ended:
					if !errors.Is(err, context.Canceled) {
						t.Fatalf("a running link's context ended with %v, want context.Canceled", err)
					}
				default:
					t.Fatal("a running link was not cancelled by the hard stop")
				}
			}
			out, in := e.list(t, "out"), e.list(t, "in")
			for _, u := range out {
				if link.stall[u] {
					t.Fatalf("stalled vCon %s reached egress", u)
				}
			}
			all := append(slices.Clone(out), in...)
			sort.Strings(all)
			if !slices.Equal(all, uuids) {
				t.Fatalf("egress %v and ingress %v, want every vCon once in one of them", out, in)
			}
			if n := e.rdb.LLen(ctx, queue.InFlightKey("in", "w")).Val(); n != 0 {
				t.Fatalf("%d vCons left in flight", n)
			}
			if n := e.rdb.LLen(ctx, queue.DLQKey("in")).Val(); n != 0 {
				t.Fatalf("a stop dead-lettered %d vCons", n)
			}
		})
	}
}
