package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/vcon-operator/vcon-operator/internal/queue"
)

// RunnerOptions tune how a worker takes work.
type RunnerOptions struct {
	// Concurrency is how many vCons are processed at once.
	Concurrency int
	// GracePeriod is how long a stopping worker lets in-flight vCons finish
	// before it cancels them and returns them to their ingress lists.
	GracePeriod time.Duration
	// BlockFor is how long one BLMOVE waits on an empty list. Work that
	// arrives meanwhile is taken at once; the wait only bounds how quickly
	// a stop is noticed.
	BlockFor time.Duration
	// PromoteEvery is how often due retries move to the head of their
	// ingress lists (one script per list): how late a retry may start.
	PromoteEvery time.Duration
}

// Runner takes vCons from a chain's ingress lists and processes them.
type Runner struct {
	proc   *Processor
	worker *queue.Worker
	opts   RunnerOptions
	log    *slog.Logger

	// waiting counts fetchers blocked on a slot and handoffs the finished
	// vCons that promised one a slot (instead of taking their successor).
	// While handoffs < waiting, the next vCon to finish hands its slot
	// over; every fetcher that gets a slot settles one promise, so each
	// wait costs one handoff, and a fetcher is never left waiting while
	// chains keep their slots.
	waiting, handoffs atomic.Int32
}

// NewRunner returns a runner for proc's chain.
func NewRunner(proc *Processor, opts RunnerOptions, log *slog.Logger) *Runner {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 1
	}
	if opts.GracePeriod <= 0 {
		opts.GracePeriod = 25 * time.Second
	}
	if opts.BlockFor <= 0 {
		opts.BlockFor = time.Second
	}
	if opts.PromoteEvery <= 0 {
		opts.PromoteEvery = time.Second
	}
	return &Runner{proc: proc, worker: proc.worker, opts: opts, log: log.With("chain", proc.chain.Name)}
}

// Run processes work until ctx ends, then stops taking work, lets what is in
// flight finish within the grace period, returns the rest to the head of
// its ingress lists and unregisters. It returns nil after a clean stop.
func (r *Runner) Run(ctx context.Context) error {
	lists := r.proc.chain.Ingress
	// Registering before the first take makes every in-flight list visible
	// to reapers from the start.
	for {
		err := r.worker.Heartbeat(ctx, lists)
		if err == nil {
			break
		}
		r.log.Warn("cannot register with redis, retrying", "error", err)
		if !sleep(ctx, time.Second) {
			return nil
		}
	}

	// hardStop ends processing after the grace period; it outlives ctx.
	hardStop, stopProcessing := context.WithCancel(context.Background())
	defer stopProcessing()

	// The heartbeat outlives ctx until in-flight work is finished: a worker
	// in its grace period still owns its in-flight list.
	hbCtx, stopHeartbeat := context.WithCancel(context.Background())
	defer stopHeartbeat()
	var background sync.WaitGroup
	background.Add(2)
	go func() { defer background.Done(); r.heartbeat(hbCtx, lists) }()
	go func() { defer background.Done(); r.promoteDue(ctx, lists) }()

	// A FIFO semaphore shared by one fetcher per ingress list: each fetcher
	// holds at most one taken vCon while it waits for a slot, and slots are
	// granted in turn, so a busy list cannot starve another.
	slots := semaphore.NewWeighted(int64(r.opts.Concurrency))
	var processing sync.WaitGroup
	var fetchers sync.WaitGroup
	for _, list := range lists {
		fetchers.Add(1)
		go func(list string) {
			defer fetchers.Done()
			r.fetch(ctx, hardStop, list, slots, &processing)
		}(list)
	}
	fetchers.Wait()

	// Stopping: no new work is taken. Let what is in flight finish.
	done := make(chan struct{})
	go func() { processing.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(r.opts.GracePeriod):
		r.log.Warn("grace period over, returning unfinished vCons to their ingress lists")
		stopProcessing()
		<-done
	}
	stopHeartbeat()
	background.Wait()
	releaseCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := r.worker.Release(releaseCtx, lists)
	if err != nil {
		r.log.Error("could not return in-flight vCons; reapers will once the heartbeat expires", "error", err)
		return nil
	}
	r.log.Info("worker stopped", "returned", n)
	return nil
}

// fetch takes one vCon at a time from list and hands it to a free slot. It
// takes before it waits for a slot: a fetcher that held a slot while
// blocked on an empty list would keep a vCon pushed to another list
// waiting for up to BlockFor. A taken vCon is in flight from the start, so
// one that waits for a slot when the worker stops is returned by Release.
func (r *Runner) fetch(ctx, hardStop context.Context, list string, slots *semaphore.Weighted, processing *sync.WaitGroup) {
	for {
		it, ok, err := r.worker.Take(ctx, list, r.opts.BlockFor)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.Warn("cannot take work", "list", list, "error", err)
			sleep(ctx, time.Second)
			continue
		}
		if !ok {
			if ctx.Err() != nil {
				return
			}
			continue
		}
		r.waiting.Add(1)
		err = slots.Acquire(ctx, 1)
		r.waiting.Add(-1)
		r.settleHandoff()
		if err != nil {
			return // stopping: Release returns the taken vCon to the head of list
		}
		r.start(ctx, hardStop, it, slots, processing)
		// While slots are free and no other list waits for one (TryAcquire
		// fails when there are waiters, which keeps the turns fair), take
		// more in one round trip: a take per round trip would cap a
		// list's throughput at one vCon per Redis latency.
		n := 0
		for n < r.opts.Concurrency && ctx.Err() == nil && slots.TryAcquire(1) {
			n++
		}
		if n > 0 {
			items, err := r.worker.TakeUpTo(ctx, list, n)
			for _, it := range items {
				r.start(ctx, hardStop, it, slots, processing)
			}
			slots.Release(int64(n - len(items)))
			if err != nil && ctx.Err() == nil {
				r.log.Warn("cannot take work", "list", list, "error", err)
			}
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// start processes a taken vCon in its own goroutine, holding one slot.
// While no fetcher waits for a slot, a finished vCon's outcome also takes
// its successor from the same list and the goroutine keeps its slot; when
// one waits, the next vCon to finish (one, not every one finishing
// meanwhile) gives its slot up, so turns between lists stay fair. With
// the fetcher alone taking, a busy list would get at most one vCon per
// Redis round trip, however many slots are free.
func (r *Runner) start(ctx, hardStop context.Context, it queue.Item, slots *semaphore.Weighted, processing *sync.WaitGroup) {
	processing.Add(1)
	takeNext := func() bool { return ctx.Err() == nil && !r.promiseHandoff() }
	go func() {
		defer processing.Done()
		// The slot's own child of hardStop, for all the vCons it runs:
		// each vCon's chain timeout (run's context.WithTimeout) registers
		// with, and on its end leaves, this context instead of hardStop,
		// whose lock every slot would otherwise take twice per vCon.
		// hardStop's cancellation still reaches every vCon through it.
		stop, cancelStop := context.WithCancel(hardStop)
		defer cancelStop()
		for {
			next, took, err := r.proc.ProcessThenTake(stop, it, takeNext)
			if err != nil && !errors.Is(err, ErrStopped) {
				r.log.Error("vcon left in flight", "uuid", it.UUID, "error", err)
			}
			if !took || ctx.Err() != nil {
				// The list was empty, the slot went to a waiting fetcher,
				// or the worker is stopping: the fetcher refills free
				// slots, and a successor taken as the worker stopped stays
				// in flight for Release to return.
				slots.Release(1)
				return
			}
			it = next
		}
	}()
}

// promiseHandoff reports whether a finishing vCon should give its slot to
// a waiting fetcher, and counts the promise if so.
func (r *Runner) promiseHandoff() bool {
	for {
		h := r.handoffs.Load()
		if h >= r.waiting.Load() {
			return false
		}
		if r.handoffs.CompareAndSwap(h, h+1) {
			return true
		}
	}
}

// settleHandoff is called by a fetcher that got a slot (or gave up): one
// promise fewer is outstanding.
func (r *Runner) settleHandoff() {
	for {
		h := r.handoffs.Load()
		if h <= 0 || r.handoffs.CompareAndSwap(h, h-1) {
			return
		}
	}
}

// promoteDue moves due retries to the head of the ingress lists, every
// PromoteEvery, until ctx ends (a stopping worker takes no more work, so it
// has no reason to promote any).
func (r *Runner) promoteDue(ctx context.Context, lists []string) {
	t := time.NewTicker(r.opts.PromoteEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := queue.PromoteDue(ctx, r.proc.rdb, lists); err != nil && ctx.Err() == nil {
			r.log.Warn("promoting due retries failed", "error", err)
		}
	}
}

// heartbeat keeps the registration alive, reaps the work of dead workers
// and sweeps this worker's orphans, every third of the heartbeat TTL, until
// ctx ends.
func (r *Runner) heartbeat(ctx context.Context, lists []string) {
	t := time.NewTicker(r.worker.HeartbeatTTL() / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := r.worker.Heartbeat(ctx, lists); err != nil && ctx.Err() == nil {
			r.log.Warn("heartbeat failed", "error", err)
		}
		if err := r.proc.renewLimits(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("renewing the links' permits failed; they return to the budget when their lease ends", "error", err)
		}
		n, err := queue.Reap(ctx, r.proc.rdb, lists)
		if err == nil && n > 0 {
			r.proc.metrics.Reaped.WithLabelValues(r.proc.chain.Name).Add(float64(n))
			r.log.Info("returned work of dead workers to the ingress lists", "count", n)
		}
		n, err = r.worker.SweepOrphans(ctx, lists)
		if n > 0 {
			r.proc.metrics.Orphans.WithLabelValues(r.proc.chain.Name).Add(float64(n))
			r.log.Warn("returned vCons this worker had in flight without knowing it (a take's reply was lost)", "count", n)
		}
		if err != nil && ctx.Err() == nil {
			r.log.Warn("orphan sweep failed", "error", err)
		}
	}
}
