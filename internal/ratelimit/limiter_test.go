package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

func newLimiter(rdb redis.UniversalClient, budget, party, holder string, l Limits, lease time.Duration) *Limiter {
	return New(rdb, l, Options{Budget: budget, Party: party, Holder: holder, Lease: lease, Link: budget})
}

// TestAskDecisions pins what one ask answers after earlier grants: every
// dimension holds the next caller, for about the wait its rate implies.
func TestAskDecisions(t *testing.T) {
	rdb := testenv.StartRedis(t).Client()
	ctx := context.Background()
	cases := []struct {
		name    string
		limits  Limits
		before  []int64 // tokens of the grants made first (all must be granted)
		tokens  int64
		granted bool
		why     string
		// the wait must lie in (minWait, maxWait]; negative: until a release
		minWait, maxWait time.Duration
	}{
		{name: "no limits", limits: Limits{}, before: []int64{0, 0, 0}, granted: true, why: "ok"},
		{name: "requests spaced by the rate", limits: Limits{RequestsPerMinute: 6}, before: []int64{0, 0}, why: "requests", minWait: 5 * time.Second, maxWait: 10 * time.Second},
		{name: "first request free", limits: Limits{RequestsPerMinute: 6}, granted: true, why: "ok"},
		{name: "a late grant keeps its interval: two after a pause", limits: Limits{RequestsPerMinute: 6}, before: []int64{0}, granted: true, why: "ok"},
		{name: "tokens up to a minute's budget", limits: Limits{TokensPerMinute: 600}, before: []int64{590}, tokens: 10, granted: true, why: "ok"},
		{name: "tokens beyond a minute's budget", limits: Limits{TokensPerMinute: 600}, before: []int64{590}, tokens: 20, why: "tokens", minWait: 0, maxWait: 2 * time.Second},
		{name: "a call larger than the budget is charged a minute", limits: Limits{TokensPerMinute: 600}, tokens: 5000, granted: true, why: "ok"},
		{name: "concurrency", limits: Limits{MaxConcurrent: 2}, before: []int64{0, 0}, why: "concurrency", minWait: -2, maxWait: -1},
		{name: "concurrency below the limit", limits: Limits{MaxConcurrent: 3}, before: []int64{0, 0}, granted: true, why: "ok"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newLimiter(rdb, fmt.Sprintf("ask-%d", i), "chain", "p1", tc.limits, time.Minute)
			for _, tok := range tc.before {
				a, err := l.try(ctx, tok)
				if err != nil || !a.granted {
					t.Fatalf("setup grant: %+v, %v", a, err)
				}
			}
			a, err := l.try(ctx, tc.tokens)
			if err != nil {
				t.Fatal(err)
			}
			if a.granted != tc.granted || a.why != tc.why {
				t.Fatalf("answer %+v, want granted=%v why=%s", a, tc.granted, tc.why)
			}
			if !tc.granted && (a.wait <= tc.minWait || a.wait > tc.maxWait) {
				t.Fatalf("wait %s, want in (%s, %s]", a.wait, tc.minWait, tc.maxWait)
			}
		})
	}
}

// TestReleaseAndTokenCorrection: a released permit is free for the next
// caller, and the tokens charged follow what the vendor reported.
func TestReleaseAndTokenCorrection(t *testing.T) {
	rdb := testenv.StartRedis(t).Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cases := []struct {
		name              string
		estimate, actual  int64
		next              int64
		grantedAfterwards bool
	}{
		{name: "refund of an overestimate", estimate: 900, actual: 100, next: 800, grantedAfterwards: true},
		{name: "overrun charged", estimate: 100, actual: 990, next: 50},
		{name: "estimate kept", estimate: 500, actual: 500, next: 99, grantedAfterwards: true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newLimiter(rdb, fmt.Sprintf("tok-%d", i), "chain", "p1", Limits{TokensPerMinute: 1000, MaxConcurrent: 1}, time.Minute)
			release, err := l.Acquire(ctx, tc.estimate)
			if err != nil {
				t.Fatal(err)
			}
			if a, _ := l.try(ctx, 0); a.granted || a.why != "concurrency" {
				t.Fatalf("second permit while one is held: %+v", a)
			}
			release(tc.actual)
			release(tc.actual) // a second call does nothing
			a, err := l.try(ctx, tc.next)
			if err != nil {
				t.Fatal(err)
			}
			if a.granted != tc.grantedAfterwards {
				t.Fatalf("after release: %+v, want granted=%v", a, tc.grantedAfterwards)
			}
			if !a.granted && a.why != "tokens" {
				t.Fatalf("held by %s, want tokens", a.why)
			}
		})
	}
}

// TestKilledHolderPermitsReturn: a process that dies holding permits gives
// them back when its lease ends; one that lives renews them.
func TestKilledHolderPermitsReturn(t *testing.T) {
	rdb := testenv.StartRedis(t).Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	limits := Limits{MaxConcurrent: 1}
	dead := newLimiter(rdb, "lease", "chain", "dead", limits, 300*time.Millisecond)
	if _, err := dead.Acquire(ctx, 0); err != nil {
		t.Fatal(err)
	}
	// The dead process never releases nor renews: the survivor is granted
	// once the lease ends, however long it waits before.
	survivor := newLimiter(rdb, "lease", "chain", "alive", limits, time.Minute)
	release, err := survivor.Acquire(ctx, 0)
	if err != nil {
		t.Fatalf("permit of a dead holder never came back: %v", err)
	}
	keys := Keys("lease")
	members, err := rdb.ZRangeWithScores(ctx, keys[1], 0, -1).Result()
	if err != nil || len(members) != 1 {
		t.Fatalf("permits %v, %v: want only the survivor's", members, err)
	}
	before := members[0].Score
	// Renew moves the survivor's lease on (Redis's clock has advanced by
	// at least a millisecond since the grant).
	for {
		if err := survivor.Renew(ctx); err != nil {
			t.Fatal(err)
		}
		after, err := rdb.ZScore(ctx, keys[1], members[0].Member.(string)).Result()
		if err != nil {
			t.Fatal(err)
		}
		if after > before {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("Renew never extended the lease")
		}
	}
	release(0)
	if n := rdb.ZCard(ctx, keys[1]).Val(); n != 0 {
		t.Fatalf("%d permits after release", n)
	}
	// A released permit is not brought back by a later renew.
	if err := survivor.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if n := rdb.ZCard(ctx, keys[1]).Val(); n != 0 {
		t.Fatalf("renew resurrected %d permits", n)
	}
}

// TestThrottleSlowsEveryone: a 429 seen by one process pauses and slows
// the other processes on the budget, and the budget recovers.
func TestThrottleSlowsEveryone(t *testing.T) {
	rdb := testenv.StartRedis(t).Client()
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	limits := Limits{RequestsPerMinute: 600}
	seer := New(rdb, limits, Options{Budget: "fb", Party: "a", Holder: "p1", Link: "fb", Metrics: m})
	other := New(rdb, limits, Options{Budget: "fb", Party: "b", Holder: "p2", Link: "fb"})
	if err := seer.Throttled(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	a, err := other.try(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if a.granted || a.why != "retry_after" || a.wait <= 20*time.Second {
		t.Fatalf("other process after a 429 with Retry-After 30s: %+v", a)
	}
	if got := testutil.ToFloat64(m.throttledC.WithLabelValues("fb")); got != 1 {
		t.Fatalf("vcon_link_throttled_total = %v", got)
	}
	if got := testutil.ToFloat64(m.effectiveG.WithLabelValues("fb", "requests")); got < 419 || got > 421 {
		t.Fatalf("effective rate after one cut = %v, want 420", got)
	}
	// A burst of 429s within a second cuts once.
	for range 5 {
		if err := other.Throttled(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}
	s := measure(t, rdb, "fb", "a")
	if s.Factor < 0.69 || s.Factor > 0.71 {
		t.Fatalf("factor after a burst of 429s = %v, want one cut to 0.7", s.Factor)
	}
	if s.Throttled != 6 {
		t.Fatalf("throttled = %d, want 6", s.Throttled)
	}
	// The pause ends and the cut recovers with time: move the budget's
	// clock marks back as if a minute had passed.
	keys := Keys("fb")
	past := s.At.Add(-time.Minute).UnixMilli()
	rdb.HSet(ctx, keys[0], "until", past, "fat", past, "cut", past)
	if s := measure(t, rdb, "fb", "a"); s.Factor != 1 {
		t.Fatalf("factor a minute after the last 429 = %v, want 1", s.Factor)
	}
	if a, _ := other.try(ctx, 0); !a.granted {
		t.Fatalf("after the pause: %+v", a)
	}
}

func measure(t *testing.T, rdb redis.UniversalClient, budget, party string) Sample {
	t.Helper()
	pipe := rdb.Pipeline()
	cmd := QueueMeasure(context.Background(), pipe, budget, party)
	if _, err := pipe.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	s, err := cmd.Result()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRedisRestartNeverStuckShut: a Redis that lost the budget grants at
// once; the permits held before are not counted, and their release and
// renewal change nothing.
func TestRedisRestartNeverStuckShut(t *testing.T) {
	srv := testenv.StartRedis(t)
	rdb := srv.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := newLimiter(rdb, "restart", "chain", "p1", Limits{MaxConcurrent: 1, RequestsPerMinute: 6}, time.Minute)
	old, err := l.Acquire(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Throttled(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	if a, _ := l.try(ctx, 0); a.granted {
		t.Fatal("granted before the restart")
	}
	srv.Kill()
	srv.Start()
	release, err := l.Acquire(ctx, 0)
	if err != nil {
		t.Fatalf("after a restart: %v", err)
	}
	// The permit held before the restart is renewed along with the new
	// one: renewing must not bring it back.
	if err := l.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if n := rdb.ZCard(ctx, Keys("restart")[1]).Val(); n != 1 {
		t.Fatalf("%d permits after a renew, want only the one granted since the restart", n)
	}
	old(0)
	release(0)
	if n := rdb.ZCard(ctx, Keys("restart")[1]).Val(); n != 0 {
		t.Fatalf("%d permits after both releases", n)
	}
}

// TestFairShareBetweenChains: a Chain with four processes and one with a
// single process, both always waiting, each get about half of the grants.
func TestFairShareBetweenChains(t *testing.T) {
	rdb := testenv.StartRedis(t).Client()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	limits := Limits{RequestsPerMinute: 6000}
	const total = 300
	var mu sync.Mutex
	got := map[string]int{}
	done := make(chan struct{})
	var wg sync.WaitGroup
	run := func(party, holder string) {
		l := newLimiter(rdb, "fair", party, holder, limits, time.Minute)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					release, err := l.Acquire(ctx, 0)
					if err != nil {
						return
					}
					release(0)
					mu.Lock()
					got[party]++
					if got["big"]+got["small"] == total {
						close(done)
					}
					mu.Unlock()
				}
			}()
		}
	}
	for i := range 4 {
		run("big", fmt.Sprintf("big-%d", i))
	}
	run("small", "small-0")
	<-done
	cancel()
	wg.Wait()
	share := float64(got["small"]) / float64(got["big"]+got["small"])
	if share < 0.4 || share > 0.6 {
		t.Fatalf("grants %v: the single-process chain got %.2f, want about half", got, share)
	}
	s := measure(t, rdb, "fair", "small")
	if s.PartyGranted != int64(got["small"]) || s.Granted < total {
		t.Fatalf("reading %+v, counted %v", s, got)
	}
}

// TestWaitingIsReported: the operator reads how many of a chain's calls
// wait, and a reading taken later gives the rates between.
func TestWaitingIsReported(t *testing.T) {
	rdb := testenv.StartRedis(t).Client()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := newLimiter(rdb, "wait", "chain", "p1", Limits{MaxConcurrent: 1}, time.Minute)
	first := measure(t, rdb, "wait", "chain")
	held, err := l.Acquire(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if release, err := l.Acquire(ctx, 0); err == nil {
				release(0)
			}
		}()
	}
	for {
		s := measure(t, rdb, "wait", "chain")
		if s.Waiting == 3 && s.InUse == 1 && s.At.After(first.At) {
			r, ok := RatesBetween(first, s)
			if !ok || r.Requests <= 0 {
				t.Fatalf("rates between %+v and %+v: %+v %v", first, s, r, ok)
			}
			break
		}
		if s.Waiting > 3 {
			t.Fatalf("waiting %d, want 3", s.Waiting)
		}
	}
	held(0)
	wg.Wait()
	if _, ok := RatesBetween(measure(t, rdb, "wait", "chain"), first); ok {
		t.Fatal("rates from a reading back in time")
	}
}
