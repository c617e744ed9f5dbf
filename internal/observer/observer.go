// Package observer measures every Chain's queues in Redis on a fixed poll
// interval and tells the Chain reconciler when the figures change. Chains on
// one Redis are measured together, in one pipelined round trip per server
// (per node on a cluster), however many Chains there are; the same round
// trip returns work orphaned by dead workers to its ingress lists.
package observer

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/redis/go-redis/v9"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/ratelimit"
	"github.com/vcon-operator/vcon-operator/internal/redisconn"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// Observation is the latest measurement of one Chain.
type Observation struct {
	queue.Depths
	// At is when the figures were measured (for stale ones: when they were
	// last measured successfully).
	At time.Time
	// Stale is true when the last poll could not reach Redis; the figures
	// are the last known ones.
	Stale bool
	// Err says why Redis could not be reached; empty when it could.
	Err string
	// Measured is false until the first successful measurement.
	Measured bool
	// Links are the budgets of the Chain's links that have limits, read
	// in the same round trip.
	Links []LinkUsage
}

// LinkBudget is a link of a Chain whose limits are held in a budget in
// the Chain's Redis (internal/ratelimit).
type LinkBudget struct {
	Link, Budget string
}

// LinkUsage is how much of a link's budget is used, as measured.
type LinkUsage struct {
	Link string
	// Factor is the share of the configured rates the vendor's 429s leave
	// (1 when it has not throttled recently).
	Factor float64
	// RequestsPerMinute and TokensPerMinute are what every Chain sharing
	// the budget was granted since the previous poll; RatesKnown is false
	// at the first poll and after the budget was reset.
	RequestsPerMinute, TokensPerMinute float64
	RatesKnown                         bool
	// InUse is the concurrency permits held; Waiting is how many of this
	// Chain's vCons wait for a permit (the limit binds while it is not 0).
	InUse, Waiting int64
}

// Fresh is whether the figures are a current measurement: measured, and
// Redis reachable at the last poll. Nothing is decided on figures that are
// not.
func (o Observation) Fresh() bool { return o.Measured && !o.Stale }

type tracked struct {
	url    string
	target queue.Target
	links  []LinkBudget
}

// Observer is a manager.Runnable.
type Observer struct {
	interval time.Duration
	log      logr.Logger
	open     func(url string) (redis.UniversalClient, error)

	mu      sync.Mutex
	tracked map[types.NamespacedName]tracked
	last    map[types.NamespacedName]Observation
	// budgets are the last readings of each Chain's link budgets, by
	// budget, from which the next poll's rates are computed.
	budgets map[types.NamespacedName]map[string]ratelimit.Sample
	clients map[string]redis.UniversalClient

	events     chan event.GenericEvent
	roundTrips atomic.Int64
	polls      atomic.Int64

	// KeepBodies, when set, is the least TTL the observer keeps on the
	// bodies of vCons waiting in ingress lists (the queued retention):
	// each poll extends the next keepBatch of every non-empty list, so a
	// backlog's bodies stay alive whoever wrote them. keepCursor is where
	// each list's next window starts.
	KeepBodies time.Duration
	keepCursor map[string]int64
}

// keepBatch bounds the bodies one poll extends per list: a backlog of
// 100,000 is swept every 200 polls (under seven minutes at 2 s), far
// within any TTL worth having.
const keepBatch = 500

// New returns an observer polling every interval.
func New(interval time.Duration, log logr.Logger) *Observer {
	return &Observer{
		interval: interval,
		log:      log,
		open:     redisconn.Open,
		tracked:  map[types.NamespacedName]tracked{},
		last:     map[types.NamespacedName]Observation{},
		budgets:  map[types.NamespacedName]map[string]ratelimit.Sample{},
		clients:  map[string]redis.UniversalClient{},
		events:   make(chan event.GenericEvent, 1024),

		keepCursor: map[string]int64{},
	}
}

// Events delivers a Chain whenever its observation changes; the Chain
// controller watches it through a channel source.
func (o *Observer) Events() <-chan event.GenericEvent { return o.events }

// Track starts (or updates) measuring a Chain and the budgets of its
// links that have limits. The reconciler calls it with the Redis URL it
// resolved; a changed target is measured at the next poll.
func (o *Observer) Track(key types.NamespacedName, url string, target queue.Target, links ...LinkBudget) {
	o.mu.Lock()
	defer o.mu.Unlock()
	prev, ok := o.tracked[key]
	o.tracked[key] = tracked{url: url, target: target, links: links}
	if ok && prev.url != url {
		delete(o.last, key)
		delete(o.budgets, key)
	}
}

// Forget stops measuring a Chain and drops its figures (and so its series).
func (o *Observer) Forget(key types.NamespacedName) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.tracked, key)
	delete(o.last, key)
	delete(o.budgets, key)
}

// Get returns a Chain's latest observation.
func (o *Observer) Get(key types.NamespacedName) (Observation, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	obs, ok := o.last[key]
	return obs, ok
}

// Snapshot returns every Chain's latest observation.
func (o *Observer) Snapshot() map[types.NamespacedName]Observation {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make(map[types.NamespacedName]Observation, len(o.last))
	for k, v := range o.last {
		out[k] = v
	}
	return out
}

// RoundTrips is the number of Redis round trips made by polls so far, and
// Polls the number of polls: the benchmark checks one per server per poll.
func (o *Observer) RoundTrips() int64 { return o.roundTrips.Load() }
func (o *Observer) Polls() int64      { return o.polls.Load() }

// NeedLeaderElection: only the leader measures (and reaps).
func (o *Observer) NeedLeaderElection() bool { return true }

// Start polls until ctx ends.
func (o *Observer) Start(ctx context.Context) error {
	t := time.NewTicker(o.interval)
	defer t.Stop()
	defer o.closeClients()
	for {
		o.Poll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Poll returns the orphaned work of every tracked Chain to its ingress
// lists and measures the Chain, once.
func (o *Observer) Poll(ctx context.Context) {
	o.polls.Add(1)
	byURL := map[string][]types.NamespacedName{}
	o.mu.Lock()
	targets := make(map[types.NamespacedName]tracked, len(o.tracked))
	for k, t := range o.tracked {
		byURL[t.url] = append(byURL[t.url], k)
		targets[k] = t
	}
	o.mu.Unlock()

	var wg sync.WaitGroup
	for url, keys := range byURL {
		wg.Add(1)
		go func(url string, keys []types.NamespacedName) {
			defer wg.Done()
			o.pollServer(ctx, url, keys, targets)
		}(url, keys)
	}
	wg.Wait()
	o.closeUnused()
}

func (o *Observer) pollServer(ctx context.Context, url string, keys []types.NamespacedName, targets map[types.NamespacedName]tracked) {
	rdb, err := o.client(url)
	var depths []queue.Depths
	readings := make([][]ratelimit.Sample, len(keys))
	if err == nil {
		depths, readings, err = o.measure(ctx, rdb, keys, targets)
		o.roundTrips.Add(1)
		if err == nil && o.KeepBodies > 0 {
			o.keepBodies(ctx, rdb, depths)
		}
	}
	now := time.Now()
	var notify []types.NamespacedName
	o.mu.Lock()
	for i, k := range keys {
		if _, still := o.tracked[k]; !still {
			continue
		}
		prev, had := o.last[k]
		var next Observation
		if err != nil {
			next = prev
			next.Stale, next.Err = true, err.Error()
			if !had {
				next.At = now
			}
		} else {
			next = Observation{Depths: depths[i], At: now, Measured: true, Links: o.linkUsage(k, targets[k].links, readings[i])}
			if next.Reaped > 0 {
				o.log.Info("returned orphaned in-flight vCons to the ingress lists", "chain", k.String(), "count", next.Reaped)
			}
		}
		o.last[k] = next
		if !had || changed(prev, next) {
			notify = append(notify, k)
		}
	}
	o.mu.Unlock()
	for _, k := range notify {
		if !o.notify(ctx, k) {
			return
		}
	}
}

// pollTimeout bounds one server's poll. It is longer than the interval: a
// poll slower than that only delays the next one (the ticker drops
// ticks), while a deadline of one interval turned a slow poll into
// RedisUnreachable for every Chain on the server. With 10,000 Chains on a
// busy machine, building and sending the one round trip took longer than
// the 2 s interval, and the connection pool refused it with "context
// deadline exceeded". A Redis that refuses or resets fails at once
// whatever the deadline; only one that accepts and never answers is
// waited for this long.
func (o *Observer) pollTimeout() time.Duration { return max(5*o.interval, 10*time.Second) }

// measure reaps and measures the queues of keys, and reads their links'
// budgets, in one pipelined round trip.
func (o *Observer) measure(ctx context.Context, rdb redis.UniversalClient, keys []types.NamespacedName, targets map[types.NamespacedName]tracked) ([]queue.Depths, [][]ratelimit.Sample, error) {
	pctx, cancel := context.WithTimeout(ctx, o.pollTimeout())
	defer cancel()
	pipe := rdb.Pipeline()
	list := make([]queue.Target, len(keys))
	for i, k := range keys {
		list[i] = targets[k].target
	}
	m := queue.QueueReapAndMeasure(pctx, pipe, list)
	budgetCmds := make([][]*ratelimit.MeasureCmd, len(keys))
	for i, k := range keys {
		for _, l := range targets[k].links {
			// The worker's party in the budget is its chain's name.
			budgetCmds[i] = append(budgetCmds[i], ratelimit.QueueMeasure(pctx, pipe, l.Budget, k.Name))
		}
	}
	readings := make([][]ratelimit.Sample, len(keys))
	if pipe.Len() == 0 {
		return make([]queue.Depths, len(keys)), readings, nil
	}
	if _, err := pipe.Exec(pctx); err != nil {
		return nil, nil, fmt.Errorf("measure queues: %w", err)
	}
	depths, err := m.Depths()
	if err != nil {
		return nil, nil, err
	}
	for i, cmds := range budgetCmds {
		for j, c := range cmds {
			s, err := c.Result()
			if err != nil {
				return nil, nil, fmt.Errorf("read the budget of link %s: %w", targets[keys[i]].links[j].Link, err)
			}
			readings[i] = append(readings[i], s)
		}
	}
	return depths, readings, nil
}

// linkUsage turns a Chain's budget readings into usage, with the rates
// since the previous reading, and keeps the readings for the next poll.
// Called with o.mu held.
func (o *Observer) linkUsage(k types.NamespacedName, links []LinkBudget, readings []ratelimit.Sample) []LinkUsage {
	if len(links) == 0 {
		delete(o.budgets, k)
		return nil
	}
	prev := o.budgets[k]
	next := make(map[string]ratelimit.Sample, len(links))
	out := make([]LinkUsage, 0, len(links))
	for i, l := range links {
		s := readings[i]
		next[l.Budget] = s
		u := LinkUsage{Link: l.Link, Factor: s.Factor, InUse: s.InUse, Waiting: s.Waiting}
		if p, ok := prev[l.Budget]; ok {
			if r, ok := ratelimit.RatesBetween(p, s); ok {
				u.RequestsPerMinute, u.TokensPerMinute, u.RatesKnown = r.Requests, r.Tokens, true
			} else if !s.At.After(p.At) && s.Granted >= p.Granted {
				// No time passed on Redis's clock (two polls in one
				// millisecond): the next rate is counted from the older
				// reading, so the grants between are not lost.
				next[l.Budget] = p
			}
		}
		out = append(out, u)
	}
	o.budgets[k] = next
	return out
}

// keepBodies extends the bodies of the next window of every non-empty
// ingress list just measured. Only a server with a backlog pays for it.
func (o *Observer) keepBodies(ctx context.Context, rdb redis.UniversalClient, depths []queue.Depths) {
	var windows []queue.KeepWindow
	o.mu.Lock()
	for _, d := range depths {
		for _, l := range d.Lists {
			if l.Kind != queue.KindIngress || l.Length == 0 {
				continue
			}
			start := o.keepCursor[l.List]
			if start >= l.Length {
				start = 0
			}
			windows = append(windows, queue.KeepWindow{List: l.List, Start: start, Count: keepBatch})
		}
	}
	o.mu.Unlock()
	if len(windows) == 0 {
		return
	}
	kctx, cancel := context.WithTimeout(ctx, max(o.interval, time.Second))
	defer cancel()
	counts, err := queue.KeepQueuedBodies(kctx, rdb, windows, o.KeepBodies, vconstore.Key)
	o.roundTrips.Add(2)
	if err != nil {
		o.log.Info("could not extend the bodies of queued vCons", "error", err.Error())
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, w := range windows {
		next := w.Start + int64(counts[i])
		if int64(counts[i]) < w.Count {
			next = 0 // the list ended: start over from its head
		}
		o.keepCursor[w.List] = next
	}
}

// changed ignores the measurement time: an idle Chain is not re-reconciled
// (nor its status rewritten) every poll.
func changed(a, b Observation) bool {
	a.At, b.At = time.Time{}, time.Time{}
	a.Reaped, b.Reaped = 0, 0
	return !reflect.DeepEqual(a, b)
}

// notify waits until the controller takes the event (or the observer
// stops, returning false). An event must not be dropped when the channel is
// full, as when every Chain of a Redis that went down changes at once:
// nothing else reconciles a Chain whose figures changed. The lock is not
// held, so Track, Get and the metrics are not held up meanwhile.
func (o *Observer) notify(ctx context.Context, k types.NamespacedName) bool {
	ch := &vconv1.Chain{ObjectMeta: metav1.ObjectMeta{Name: k.Name, Namespace: k.Namespace}}
	select {
	case o.events <- event.GenericEvent{Object: ch}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (o *Observer) client(url string) (redis.UniversalClient, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if c, ok := o.clients[url]; ok {
		return c, nil
	}
	c, err := o.open(url)
	if err != nil {
		return nil, err
	}
	o.clients[url] = c
	return c, nil
}

func (o *Observer) closeUnused() {
	o.mu.Lock()
	defer o.mu.Unlock()
	used := map[string]bool{}
	for _, t := range o.tracked {
		used[t.url] = true
	}
	for url, c := range o.clients {
		if !used[url] {
			_ = c.Close()
			delete(o.clients, url)
		}
	}
}

func (o *Observer) closeClients() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for url, c := range o.clients {
		_ = c.Close()
		delete(o.clients, url)
	}
}
