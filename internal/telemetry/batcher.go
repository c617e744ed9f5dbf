package telemetry

import (
	"context"
	"errors"
	"os"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// batcher is the span processor of a worker that exports: the batch span
// processor of sdktrace, in what it does (a queue of ended spans, exported
// a batch at a time, when a batch is full or the schedule delay has
// passed, spans dropped while the queue is full; the same OTEL_BSP_*
// variables), but not in what it costs. sdktrace's hands every ended span
// over a channel to its goroutine, which a traced worker woke about three
// times per vCon (a span per vCon, link and storage), each wake a trip
// through the scheduler and often a futex; the batcher appends the span
// to a slice under a lock and wakes its goroutine once per batch.
type batcher struct {
	exporter sdktrace.SpanExporter
	opts     batchOptions

	// queued is set when the exporter takes the queue's entries as they
	// are (our OTLP exporter): the fast path's spans are only exported
	// through it.
	queued queuedExporter
	plain  []sdktrace.ReadOnlySpan // a batch for any other exporter, reused

	mu      sync.Mutex
	queue   []queuedSpan
	spare   []queuedSpan // the last exported batch's slice, cleared
	stopped bool

	kick     chan struct{}      // a batch is full (capacity 1: a wake is never lost)
	flushes  chan chan struct{} // ForceFlush: closed once what was queued is exported
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// batchOptions are sdktrace's BatchSpanProcessorOptions that the OTEL_BSP_*
// variables set.
type batchOptions struct {
	delay, timeout     time.Duration
	maxQueue, maxBatch int
}

// batchOptionsFromEnv reads the options as sdktrace.NewBatchSpanProcessor
// does: integers (milliseconds for the durations), a value that is not one
// leaving the default, a batch no larger than the queue.
func batchOptionsFromEnv() batchOptions {
	o := batchOptions{
		delay:    time.Duration(envInt("OTEL_BSP_SCHEDULE_DELAY", sdktrace.DefaultScheduleDelay)) * time.Millisecond,
		timeout:  time.Duration(envInt("OTEL_BSP_EXPORT_TIMEOUT", sdktrace.DefaultExportTimeout)) * time.Millisecond,
		maxQueue: envInt("OTEL_BSP_MAX_QUEUE_SIZE", sdktrace.DefaultMaxQueueSize),
		maxBatch: envInt("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", sdktrace.DefaultMaxExportBatchSize),
	}
	if o.maxBatch > o.maxQueue {
		o.maxBatch = min(sdktrace.DefaultMaxExportBatchSize, o.maxQueue)
	}
	// sdktrace would drop every span with a queue of none and export none
	// with batches of none; one is the least that works.
	o.maxQueue, o.maxBatch = max(o.maxQueue, 1), max(o.maxBatch, 1)
	if o.delay <= 0 {
		o.delay = sdktrace.DefaultScheduleDelay * time.Millisecond
	}
	return o
}

func envInt(key string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(key)); err == nil {
		return n
	}
	return def
}

// queuedSpan is an ended span in the batcher's queue: the SDK's, or the
// fast path's (fastspan.go).
type queuedSpan struct {
	sdk  sdktrace.ReadOnlySpan
	fast *spanRecord
}

// queuedExporter exports a batch of the queue's entries.
type queuedExporter interface {
	exportQueued(ctx context.Context, spans []queuedSpan) error
}

func newBatcher(exporter sdktrace.SpanExporter, opts batchOptions) *batcher {
	b := &batcher{
		exporter: exporter,
		opts:     opts,
		queue:    make([]queuedSpan, 0, opts.maxBatch),
		kick:     make(chan struct{}, 1),
		flushes:  make(chan chan struct{}),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	b.queued, _ = exporter.(queuedExporter)
	go b.run()
	return b
}

func (b *batcher) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd queues a sampled span of the SDK, or drops it when the queue is
// full.
func (b *batcher) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	b.enqueue(queuedSpan{sdk: s})
}

// enqueue queues an ended sampled span, or drops it when the queue is
// full.
func (b *batcher) enqueue(s queuedSpan) {
	b.mu.Lock()
	if b.stopped || len(b.queue) >= b.opts.maxQueue {
		b.mu.Unlock()
		if s.fast != nil {
			releaseRecord(s.fast) // dropped: nothing refers to it
		}
		return
	}
	b.queue = append(b.queue, s)
	full := len(b.queue) >= b.opts.maxBatch
	b.mu.Unlock()
	if full {
		select {
		case b.kick <- struct{}{}:
		default: // a wake is already pending
		}
	}
}

// run exports until Shutdown, then exports what is left.
func (b *batcher) run() {
	defer close(b.done)
	timer := time.NewTimer(b.opts.delay)
	defer timer.Stop()
	for {
		select {
		case <-b.stop:
			b.exportQueued(true)
			return
		case <-b.kick:
			b.exportQueued(false)
		case <-timer.C:
			b.exportQueued(true)
		case flushed := <-b.flushes:
			b.exportQueued(true)
			close(flushed)
		}
		timer.Reset(b.opts.delay)
	}
}

// exportQueued exports the queue, a batch at a time; unless all is set,
// only full batches, the rest waiting for more spans or the schedule
// delay, as sdktrace's processor exports. The queue's slice swaps with the
// previous batch's, so that queueing allocates nothing once both have
// grown to a batch.
func (b *batcher) exportQueued(all bool) {
	b.mu.Lock()
	taken := b.queue
	keep := 0
	if !all {
		keep = len(taken) % b.opts.maxBatch
	}
	b.queue = append(b.spare[:0], taken[len(taken)-keep:]...)
	b.mu.Unlock()
	for spans := taken[:len(taken)-keep]; len(spans) > 0; {
		n := min(len(spans), b.opts.maxBatch)
		b.export(spans[:n])
		spans = spans[n:]
	}
	clear(taken) // the exported spans are garbage now
	b.mu.Lock()
	b.spare = taken[:0]
	if cap(b.spare) > 2*b.opts.maxQueue {
		b.spare = nil // a burst's slice is not kept
	}
	b.mu.Unlock()
}

func (b *batcher) export(spans []queuedSpan) {
	ctx := context.Background()
	if b.opts.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, b.opts.timeout, errors.New("processor export timeout"))
		defer cancel()
	}
	var err error
	if b.queued != nil {
		err = b.queued.exportQueued(ctx, spans)
	} else {
		// Only the SDK's spans reach another exporter: the fast path is
		// chosen only with ours.
		b.plain = b.plain[:0]
		for _, s := range spans {
			if s.sdk != nil {
				b.plain = append(b.plain, s.sdk)
			}
		}
		err = b.exporter.ExportSpans(ctx, b.plain)
		clear(b.plain)
	}
	if err != nil {
		otel.Handle(err)
	}
}

// ForceFlush exports every span ended before the call.
func (b *batcher) ForceFlush(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	flushed := make(chan struct{})
	select {
	case b.flushes <- flushed:
	case <-b.done:
		return nil // shut down
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-flushed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown exports what is queued, then shuts the exporter down. Spans
// that end afterwards are dropped; a second Shutdown does nothing.
func (b *batcher) Shutdown(ctx context.Context) error {
	var err error
	b.stopOnce.Do(func() {
		b.mu.Lock()
		b.stopped = true
		b.mu.Unlock()
		close(b.stop)
		wait := make(chan error, 1)
		go func() {
			<-b.done
			wait <- b.exporter.Shutdown(ctx)
		}()
		select {
		case err = <-wait:
		case <-ctx.Done():
			err = ctx.Err()
		}
	})
	return err
}
