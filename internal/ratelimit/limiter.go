// Package ratelimit holds a Link's limits for the whole fleet: one budget
// per Link in Redis, shared by every process of every Chain that uses the
// Link, of requests per minute, tokens per minute and concurrent calls.
//
// Rates are GCRA (a theoretical arrival time per dimension), concurrency
// is leased permits (a sorted set scored by lease expiry, renewed with the
// worker heartbeat, so a killed process's permits come back within one
// heartbeat). A vendor's 429 cuts the shared rate for everyone and pauses
// everyone until its Retry-After; the rate then recovers on its own. Chains
// sharing a Link take turns (a virtual time per Chain), so a Chain with ten
// processes does not starve one with a single process.
//
// Every key expires when idle and every figure has a safe default, so a
// Redis restart or flush forgets the budget: the limits are loose for a
// moment (permits held then are no longer counted), never stuck shut.
//
// Key layout, all in the budget's Redis Cluster slot:
//
//	vcon-operator:limit:{B}           hash: GCRA times, feedback factor, counters
//	vcon-operator:limit:{B}:permits   zset: permit id -> lease expiry (ms, Redis clock)
//	vcon-operator:limit:{B}:waiting   zset: chain|process -> last report of its waiting callers
package ratelimit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Limits are a Link's limits; 0 leaves a dimension unlimited.
type Limits struct {
	RequestsPerMinute int64
	TokensPerMinute   int64
	MaxConcurrent     int64
}

// IsZero says no dimension is limited.
func (l Limits) IsZero() bool { return l == Limits{} }

// String is the limits as a user wrote them, for messages.
func (l Limits) String() string {
	var parts []string
	if l.RequestsPerMinute > 0 {
		parts = append(parts, fmt.Sprintf("%d requests/min", l.RequestsPerMinute))
	}
	if l.TokensPerMinute > 0 {
		parts = append(parts, fmt.Sprintf("%d tokens/min", l.TokensPerMinute))
	}
	if l.MaxConcurrent > 0 {
		parts = append(parts, fmt.Sprintf("%d concurrent", l.MaxConcurrent))
	}
	if len(parts) == 0 {
		return "no limits"
	}
	return strings.Join(parts, ", ")
}

// Keys are a budget's Redis keys: state hash, permits and waiting reports.
func Keys(budget string) []string {
	// Braces in a name would move the keys to another slot's hash tag.
	b := strings.NewReplacer("{", "(", "}", ")").Replace(budget)
	base := "vcon-operator:limit:{" + b + "}"
	return []string{base, base + ":permits", base + ":waiting"}
}

// Options say whose budget a Limiter draws from and on whose behalf.
type Options struct {
	// Budget names the shared budget: namespace/link for an operator's
	// Chain, the link's name in a config file.
	Budget string
	// Party is who shares the budget fairly with others: the Chain.
	Party string
	// Holder names this process in permit ids (the worker id).
	Holder string
	// Lease is how long a permit lives without Renew: the worker heartbeat
	// TTL, so a killed process's permits return within one heartbeat.
	Lease time.Duration
	// Link labels the metrics; nil Metrics records nothing.
	Link    string
	Metrics *Metrics
}

// Release ends a permit: call it once, when the call is answered, with
// the tokens the vendor reports it used (the estimate given to Acquire
// when it does not say).
type Release = func(actualTokens int64)

// Limiter admits one process's calls within a shared budget. Callers of
// one process queue locally, in order, and only the first asks Redis: a
// waiting vCon costs Redis nothing, and one process sends at most one
// request per permit granted (or per wait the budget names).
type Limiter struct {
	rdb    redis.UniversalClient
	limits Limits
	o      Options
	keys   []string
	waiter string

	// turn is held by the caller that asks Redis; queued counts the
	// callers in Acquire (the holder of turn included).
	turn   chan struct{}
	queued atomic.Int64
	// wake tells the caller holding turn that this process released a
	// permit, so a wait for concurrency need not run to its poll.
	wake chan struct{}

	mu   sync.Mutex
	held map[string]struct{}
	seq  atomic.Uint64
}

// pollConcurrency is how often a caller waiting for a permit another
// process holds asks again; releases in this process wake it at once.
// maxPoll bounds any wait between two asks, so that the waiting report
// stays fresh and a raised limit or a Redis restart is noticed.
const (
	pollConcurrency = 20 * time.Millisecond
	maxPoll         = time.Second
	releaseTimeout  = 5 * time.Second
)

// New returns a limiter drawing from o.Budget.
func New(rdb redis.UniversalClient, limits Limits, o Options) *Limiter {
	if o.Lease <= 0 {
		o.Lease = 15 * time.Second
	}
	return &Limiter{
		rdb: rdb, limits: limits, o: o,
		keys:   Keys(o.Budget),
		waiter: strings.ReplaceAll(o.Party, "|", "_") + "|" + o.Holder,
		turn:   make(chan struct{}, 1),
		wake:   make(chan struct{}, 1),
		held:   map[string]struct{}{},
	}
}

// Limits are the limits this limiter enforces.
func (l *Limiter) Limits() Limits { return l.limits }

// Link is the link name the limiter's metrics carry.
func (l *Limiter) Link() string { return l.o.Link }

// Acquire waits for a permit to make one call that will use about tokens
// tokens (0 when the call is not metered in tokens), or until ctx ends. The
// wait holds no permit: concurrency is only taken together with the rates,
// in one script.
func (l *Limiter) Acquire(ctx context.Context, tokens int64) (Release, error) {
	tokens = max(tokens, 0)
	l.queued.Add(1)
	defer l.queued.Add(-1)
	start := time.Now()
	select {
	case l.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-l.turn }()
	for {
		a, err := l.try(ctx, tokens)
		if err != nil {
			return nil, err
		}
		if a.granted {
			l.o.Metrics.granted(l.o.Link, time.Since(start), a.permit != "")
			return l.release(a.permit, tokens), nil
		}
		l.o.Metrics.denied(l.o.Link, a.why)
		d := a.wait
		if d < 0 {
			d = pollConcurrency
		}
		// Jitter spreads the processes that were told the same time.
		d = min(d, maxPoll) + rand.N(2*time.Millisecond)
		if err := l.sleep(ctx, d); err != nil {
			return nil, err
		}
	}
}

// answer is one ask of the budget.
type answer struct {
	granted bool
	// permit is the id of the concurrency permit granted, "" when the
	// budget has no concurrency limit.
	permit string
	// wait is how long until the budget may grant; negative: until a
	// permit is released.
	wait time.Duration
	why  string
}

// try asks the budget once.
func (l *Limiter) try(ctx context.Context, tokens int64) (answer, error) {
	permit := l.o.Holder + ":" + strconv.FormatUint(l.seq.Add(1), 36)
	res, err := acquireScript.Run(ctx, l.rdb, l.keys,
		l.limits.RequestsPerMinute, l.limits.TokensPerMinute, l.limits.MaxConcurrent, tokens,
		permit, l.o.Lease.Milliseconds(), l.o.Party, l.waiter, l.queued.Load()).Slice()
	if err != nil {
		return answer{}, fmt.Errorf("limit %s: %w", l.o.Budget, err)
	}
	if len(res) != 5 {
		return answer{}, fmt.Errorf("limit %s: unexpected reply %v", l.o.Budget, res)
	}
	g, _ := res[0].(int64)
	wait, _ := res[1].(int64)
	ppm, _ := res[3].(int64)
	why, _ := res[4].(string)
	l.o.Metrics.effective(l.o.Link, l.limits, float64(ppm)/1e6)
	a := answer{granted: g == 1, wait: time.Duration(wait) * time.Millisecond, why: why}
	if wait < 0 {
		a.wait = -1
	}
	if a.granted {
		if l.limits.MaxConcurrent > 0 {
			a.permit = permit
			l.mu.Lock()
			l.held[permit] = struct{}{}
			l.mu.Unlock()
		}
	}
	return a, nil
}

func (l *Limiter) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-l.wake:
		return nil
	case <-t.C:
		return nil
	}
}

func (l *Limiter) release(permit string, estimate int64) Release {
	var once sync.Once
	return func(actual int64) {
		once.Do(func() {
			if permit != "" {
				l.mu.Lock()
				delete(l.held, permit)
				l.mu.Unlock()
			}
			l.o.Metrics.released(l.o.Link, permit != "")
			delta := max(actual, 0) - estimate
			if permit != "" || (delta != 0 && l.limits.TokensPerMinute > 0) {
				// The caller's context may have ended with its call: the
				// permit must come back anyway.
				ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
				defer cancel()
				// A failed release is not retried: the lease returns the
				// permit within one heartbeat.
				_ = releaseScript.Run(ctx, l.rdb, l.keys, permit, delta, l.limits.TokensPerMinute).Err()
			}
			select {
			case l.wake <- struct{}{}:
			default:
			}
		})
	}
}

// Throttled tells the budget that the vendor refused a call as too many
// (HTTP 429) and asked for retryAfter (0 when it did not): every process
// slows down, not only this one.
func (l *Limiter) Throttled(ctx context.Context, retryAfter time.Duration) error {
	l.o.Metrics.throttled(l.o.Link)
	ppm, err := throttleScript.Run(ctx, l.rdb, l.keys, max(retryAfter, 0).Milliseconds()).Int64()
	if err != nil {
		return fmt.Errorf("limit %s: %w", l.o.Budget, err)
	}
	l.o.Metrics.effective(l.o.Link, l.limits, float64(ppm)/1e6)
	return nil
}

// Renew extends the leases of the permits this process holds. Call it with
// the worker heartbeat, every third of the lease.
func (l *Limiter) Renew(ctx context.Context) error {
	l.mu.Lock()
	args := make([]any, 0, len(l.held)+1)
	args = append(args, l.o.Lease.Milliseconds())
	for p := range l.held {
		args = append(args, p)
	}
	l.mu.Unlock()
	if len(args) == 1 {
		return nil
	}
	if err := renewScript.Run(ctx, l.rdb, l.keys, args...).Err(); err != nil {
		return fmt.Errorf("limit %s: renew permits: %w", l.o.Budget, err)
	}
	return nil
}
