package pipeline

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// ErrStopped is returned when the worker stopped before the vCon's outcome
// was written; the vCon is still in flight and is returned to its ingress
// list by the worker's release (or by a reaper).
var ErrStopped = errors.New("worker stopped before the vCon was finished")

// Process runs the chain on one taken item and writes its outcome. ctx is
// the worker's hard-stop context: when it ends, Process returns ErrStopped
// without writing an outcome.
func (p *Processor) Process(ctx context.Context, it queue.Item) error {
	_, _, err := p.ProcessThenTake(ctx, it, nil)
	return err
}

// ProcessThenTake is Process, and when takeNext (asked just before the
// outcome is written; nil means never) says so, the outcome's round trip
// also takes the next uuid of the same ingress list: next is that item,
// in flight like any other. Taking in the outcome's transaction saves the
// round trip a separate take costs per vCon.
func (p *Processor) ProcessThenTake(ctx context.Context, it queue.Item, takeNext func() bool) (next queue.Item, took bool, err error) {
	start := time.Now()
	chain := p.chain.Name
	p.series.inFlight.Inc()
	defer p.series.inFlight.Dec()

	// One round trip: the body (whatever its type), the producer's trace
	// context and what the queue remembers of the vCon (deliveries,
	// attempts, completed links). The body's TTL is extended to the queued
	// retention in the same trip, after its TTL was read: a vCon in flight
	// or waiting for a retry never loses its body to a producer's short
	// TTL.
	var (
		body    vconstore.Body
		readErr error
		tcRaw   string
		state   queue.State
	)
	err = p.retryRedis(ctx, false, func() error {
		pipe := sizedPipeline(p.rdb)
		pending := p.bodies.QueueGet(ctx, pipe, it.UUID)
		extend := pending.QueueExtend(ctx, pipe, p.opts.QueuedRetention)
		tcCmd := pipe.LPop(ctx, queue.ContextKey(it.List, it.UUID))
		stateCmd := queue.QueueReadItemState(ctx, pipe, it)
		cmds, _ := pipe.Exec(ctx)
		for _, c := range cmds {
			if e := c.Err(); e != nil && !errors.Is(e, redis.Nil) && c != tcCmd && c != extend && !isProbeErr(e) {
				return e
			}
		}
		var stErr error
		if state, stErr = stateCmd.Result(); stErr != nil {
			// A field written by hand: go on with what decoded rather
			// than hold the vCon.
			p.log.Warn("vcon state does not decode; ignoring the bad fields", "uuid", it.UUID, "list", it.List, "error", stErr)
		}
		// A context key of another type is a producer's mistake: process
		// the vCon without the trace rather than retry forever.
		if e := tcCmd.Err(); e != nil && !errors.Is(e, redis.Nil) && !isProbeErr(e) {
			return e
		}
		tcRaw = tcCmd.Val()
		body, readErr = pending.Result()
		if readErr != nil && !errors.Is(readErr, vconstore.ErrNotFound) && !errors.Is(readErr, vconstore.ErrWrongType) && !errors.Is(readErr, vconstore.ErrTooLarge) {
			return readErr
		}
		return nil
	})
	if err != nil {
		return queue.Item{}, false, err
	}

	if tcRaw != "" {
		ctx = queue.ContextWithRecord(ctx, tcRaw)
	}
	ctx, span := p.startSpan(ctx, p.spans.process, p.spans.processOpts)
	defer span.End()
	// Set after the start, and only when recorded: no sampler the worker
	// can be configured with reads attributes.
	recording := span.IsRecording()
	if recording {
		p.spans.setProcessAttributes(span, it.List, it.UUID)
	}

	isolated := p.admit(ctx, it, state)
	run := p.started(start)
	outcome, fail := p.run(ctx, it, body, readErr, state)
	p.finished(run)
	p.endAdmission(ctx, it, isolated)
	if errors.Is(ctx.Err(), context.Canceled) {
		return queue.Item{}, false, ErrStopped
	}
	// The successor's take rides in the outcome's round trip; a retried
	// outcome queues it again (a take whose reply was lost leaves a uuid
	// in flight that this worker does not know of: the orphan sweep of
	// the heartbeat returns it).
	var pendingNext *queue.PendingTake
	queueNext := func(pipe redis.Pipeliner) *queue.PendingTake {
		pendingNext = nil
		if takeNext != nil && takeNext() {
			pendingNext = p.worker.QueueTake(pipe, it.List)
		}
		return pendingNext
	}
	if fail == nil {
		err = p.retryOutcome(ctx, it, false, func() error { return p.commit(ctx, it, outcome, queueNext) })
		refused, isRefusal := refusal(err)
		switch {
		case isRefusal:
			// Written nowhere (or, after a command error, in part, but
			// still in flight): the DLQ is where it can be found.
			fail = &failure{reason: ReasonOutcomeFailed, err: refused}
			p.metrics.OutcomeRefusals.WithLabelValues(chain).Inc()
		case err != nil:
			return queue.Item{}, false, err
		default:
			p.worker.Forget(it)
			// Written and no longer referenced: the commands that carried it
			// are done, and storages copy what they keep.
			putBodyBuffer(outcome.buf)
			if recording {
				span.SetAttributes(p.spans.wasFiltered(outcome.halted)...)
			}
		}
	}
	retried := false
	if fail != nil && fail.retryable {
		due, again := p.chain.Retry.nextAttempt(len(state.Attempts)+1, fail.err, time.Now())
		if again {
			err = p.retryOutcome(ctx, it, false, func() error { return p.scheduleRetry(ctx, it, fail, state, due, queueNext) })
			switch _, isRefusal := refusal(err); {
			case isRefusal:
				// A key of ours holds another type: the DLQ is where
				// the vCon can still be found.
				p.metrics.OutcomeRefusals.WithLabelValues(chain).Inc()
				p.log.Error("retry refused by Redis; dead-lettering instead", "uuid", it.UUID, "list", it.List, "error", err)
			case err != nil:
				return queue.Item{}, false, err
			default:
				p.worker.Forget(it)
				span.SetStatus(codes.Error, fail.reason)
				span.SetAttributes(attribute.String("vcon.retry_reason", fail.reason), attribute.Int("vcon.attempt", len(state.Attempts)+1))
				p.metrics.RetriesAsked.WithLabelValues(chain, fail.reason).Inc()
				p.log.Info("vcon failed, retry scheduled", "uuid", it.UUID, "list", it.List, "reason", fail.reason, "step", fail.step,
					"attempt", len(state.Attempts)+1, "due_in", time.Until(due).Round(time.Millisecond).String())
				fail, retried = nil, true
			}
		}
	}
	if fail != nil {
		span.SetStatus(codes.Error, fail.reason)
		span.SetAttributes(attribute.String("vcon.dlq_reason", fail.reason))
		// A dead letter that cannot be written (DLQ:{list} holds another
		// type) keeps the vCon in flight, retried until the key is fixed:
		// there is no other list left to keep it in.
		err = p.retryOutcome(ctx, it, true, func() error {
			err := p.deadLetter(ctx, it, fail, state, queueNext)
			if _, isRefusal := refusal(err); isRefusal {
				p.metrics.OutcomeRefusals.WithLabelValues(chain).Inc()
				p.log.Error("dead letter refused by Redis; the vCon stays in flight until the key is fixed", "uuid", it.UUID, "list", it.List, "error", err)
			}
			return err
		})
		if err != nil {
			return queue.Item{}, false, err
		}
		p.worker.Forget(it)
		p.metrics.Errors.WithLabelValues(chain).Inc()
		p.metrics.DeadLetters.WithLabelValues(chain, fail.reason).Inc()
		p.log.Warn("vcon dead-lettered", "uuid", it.UUID, "list", it.List, "reason", fail.reason, "step", fail.step)
	}
	if !retried {
		// A vCon waiting for a retry has not finished its chain.
		p.series.processed.Inc()
		p.series.duration.get().Observe(time.Since(start).Seconds())
	}
	if pendingNext != nil {
		next, took = pendingNext.Item()
	}
	return next, took, nil
}

// admit waits until the vCon may run. A suspect (its last delivery ended
// with its worker dead) runs alone, recorded as such in Redis, so that the
// reaper blames it alone if this worker dies too; every other vCon runs
// beside the others. endAdmission, given what admit returned, ends the
// run's admission (a func returned to end it was an allocation per vCon).
func (p *Processor) admit(ctx context.Context, it queue.Item, state queue.State) (isolated bool) {
	if state.Deliveries == 0 || state.Deliveries >= p.chain.MaxDeliveries {
		// A poison pill is dead-lettered without running: no need to
		// isolate it.
		p.isolation.RLock()
		return false
	}
	p.isolation.Lock()
	if err := p.worker.Isolate(ctx, it); err != nil {
		// Blame falls on every vCon in flight if this worker dies now;
		// that is the worst case, not a loss.
		p.log.Warn("could not record an isolated run", "uuid", it.UUID, "error", err)
	}
	p.log.Info("running a vCon alone: it was in flight when a worker died", "uuid", it.UUID, "list", it.List, "deliveries", state.Deliveries)
	return true
}

// endAdmission ends the admission admit gave the vCon it.
func (p *Processor) endAdmission(ctx context.Context, it queue.Item, isolated bool) {
	if !isolated {
		p.isolation.RUnlock()
		return
	}
	if err := p.worker.EndIsolation(context.WithoutCancel(ctx), it); err != nil {
		p.log.Warn("could not clear an isolated run's record", "uuid", it.UUID, "error", err)
	}
	p.isolation.Unlock()
}

// refusal is err as a *queue.OutcomeError, when it is one. The target of
// errors.As escapes, so declaring it only once there is an error keeps
// it off the heap for every outcome written.
func refusal(err error) (*queue.OutcomeError, bool) {
	if err == nil {
		return nil, false
	}
	var refused *queue.OutcomeError
	if errors.As(err, &refused) {
		return refused, true
	}
	return nil, false
}

// isProbeErr: a probe of the read failing by design. Without the JSON
// module every read's JSON.GET fails so, hence a test that does not
// allocate (strings.ToLower of the message did, per vCon).
func isProbeErr(err error) bool {
	s := err.Error()
	return strings.HasPrefix(s, "WRONGTYPE") || containsFold(s, "unknown command")
}

// containsFold reports whether sub, in lower case, is within s in any
// case.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}
