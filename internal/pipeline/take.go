package pipeline

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

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
	p.metrics.InFlight.WithLabelValues(chain).Inc()
	defer p.metrics.InFlight.WithLabelValues(chain).Dec()

	// One round trip: the body (whatever its type) and the producer's
	// trace context.
	var (
		body    vconstore.Body
		readErr error
		tcRaw   string
	)
	err = p.retryRedis(ctx, false, func() error {
		pipe := p.rdb.Pipeline()
		pending := p.bodies.QueueGet(ctx, pipe, it.UUID)
		tcCmd := pipe.LPop(ctx, queue.ContextKey(it.List, it.UUID))
		cmds, _ := pipe.Exec(ctx)
		for _, c := range cmds {
			if e := c.Err(); e != nil && !errors.Is(e, redis.Nil) && c != tcCmd && !isProbeErr(e) {
				return e
			}
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
		if tc, err := queue.ParseTraceContext(tcRaw); err == nil {
			ctx = tc.ContextWithRemote(ctx)
		}
	}
	ctx, span := p.tracer.Start(ctx, "vcon.process "+chain, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("vcon.chain", chain), attribute.String("vcon.ingress_list", it.List), attribute.String("vcon.uuid", it.UUID)))
	defer span.End()

	finished := p.started(start)
	outcome, fail := p.run(ctx, it, body, readErr)
	finished()
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
		var refused *queue.OutcomeError
		switch {
		case errors.As(err, &refused):
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
			putBodyBuffer(outcome.body)
			span.SetAttributes(attribute.Bool("vcon.filtered", outcome.halted))
		}
	}
	if fail != nil {
		span.SetStatus(codes.Error, fail.reason)
		span.SetAttributes(attribute.String("vcon.dlq_reason", fail.reason))
		// A dead letter that cannot be written (DLQ:{list} holds another
		// type) keeps the vCon in flight, retried until the key is fixed:
		// there is no other list left to keep it in.
		err = p.retryOutcome(ctx, it, true, func() error {
			err := p.deadLetter(ctx, it, fail, queueNext)
			var refused *queue.OutcomeError
			if errors.As(err, &refused) {
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
	p.metrics.Processed.WithLabelValues(chain).Inc()
	p.metrics.Duration.WithLabelValues(chain).Observe(time.Since(start).Seconds())
	if pendingNext != nil {
		next, took = pendingNext.Item()
	}
	return next, took, nil
}

func isProbeErr(err error) bool {
	s := err.Error()
	return strings.HasPrefix(s, "WRONGTYPE") || strings.Contains(strings.ToLower(s), "unknown command")
}
