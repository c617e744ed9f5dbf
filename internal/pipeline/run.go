package pipeline

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/vcon-operator/vcon-operator/internal/links"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/storage"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// bodyBuffers recycles the buffers documents are encoded into: a vCon's
// encoding is one of the largest allocations of its processing, and
// reusing it spares the collector most of them.
var bodyBuffers sync.Pool

func getBodyBuffer() []byte {
	if b, ok := bodyBuffers.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, 8<<10)
}

// putBodyBuffer keeps b for reuse unless it is unusually large (one huge
// vCon must not pin its memory for the life of the worker).
func putBodyBuffer(b []byte) {
	if cap(b) == 0 || cap(b) > 1<<20 {
		return
	}
	bodyBuffers.Put(&b)
}

// run executes links and storages. It returns either what to commit or why
// the vCon fails. state is what the queue remembers of the vCon: a poison
// pill (too many deliveries without an outcome) fails before anything
// runs, and a vCon back from a retry or a replay resumes after the links
// it completed.
func (p *Processor) run(ctx context.Context, it queue.Item, body vconstore.Body, readErr error, state queue.State) (*outcome, *failure) {
	ctx, cancel := context.WithTimeout(ctx, p.chain.Timeout)
	defer cancel()
	out := &outcome{uuid: it.UUID, prev: body, clearState: !state.Empty()}
	if n := state.Deliveries; n >= p.chain.MaxDeliveries {
		// Not decoded, not run: whatever killed the last n workers that
		// held it would kill this one too.
		return nil, &failure{reason: ReasonRedeliveryLimit, err: fmt.Errorf("delivered %d times without an outcome (the worker holding it stopped each time: killed, out of memory, or its heartbeat lost); the limit is %d", n, p.chain.MaxDeliveries)}
	}
	if readErr != nil {
		if errors.Is(readErr, vconstore.ErrWrongType) {
			return nil, &failure{reason: ReasonMalformed, err: errors.New("the body key holds neither a string nor a JSON document")}
		}
		if errors.Is(readErr, vconstore.ErrTooLarge) {
			// Not decoded: one oversized document must not take the
			// worker's memory (and every other vCon in flight) with it.
			return nil, &failure{reason: ReasonTooLarge, err: errors.New(strings.TrimPrefix(readErr.Error(), vconstore.Key(it.UUID)+": "))}
		}
		data, fail := p.readThrough(ctx, it.UUID)
		if fail != nil {
			return nil, fail
		}
		body = vconstore.Body{Data: data}
		out.recache = true
	}
	v, fail := parseBody(body.Data, it.UUID)
	if fail != nil {
		return nil, fail
	}
	out.restoreTTL = !out.recache && body.PTTL > 0 && body.PTTL <= p.opts.QueuedRetention

	resume := resumePoint(p.chain.Links, state.Completed)
	completed := linkNames(p.chain.Links[:resume])
	forwarded := false
	for _, step := range p.chain.Links[resume:] {
		res, err := p.runLink(ctx, step, v)
		if err != nil {
			f := p.classify(ctx, ReasonLinkError, "link "+step.Name, err)
			if !forwarded {
				p.keepProgress(f, out, v, nil, completed, len(completed) > resume)
			}
			return nil, f
		}
		completed = append(completed, step.Name)
		out.addEffects(out.uuid, res)
		if res.Halt {
			out.halted = true
			break
		}
		if res.NextUUID != "" && res.NextUUID != v.UUID() {
			// Finish the current document, then go on with the other one.
			if err := p.writeBody(ctx, out, v); err != nil {
				return nil, p.classify(ctx, ReasonLinkError, "link "+step.Name, err)
			}
			next, err := p.bodies.Get(ctx, res.NextUUID)
			if err != nil {
				return nil, p.classify(ctx, ReasonNotFound, "link "+step.Name, fmt.Errorf("forwarded vCon: %w", err))
			}
			if v, fail = parseBody(next.Data, res.NextUUID); fail != nil {
				return nil, fail
			}
			out.uuid, out.prev, out.recache = res.NextUUID, next, false
			// Progress is kept for the vCon the chain was given; the one
			// it now runs on is another's.
			forwarded, out.restoreTTL = true, false
		}
	}
	vcon.Normalize(v)
	data, err := v.AppendMarshal(getBodyBuffer())
	if err != nil {
		return nil, &failure{reason: ReasonMalformed, err: err}
	}
	out.body = data
	if out.halted {
		return out, nil
	}
	if fail := p.store(ctx, out, v, data); fail != nil {
		if !forwarded {
			p.keepProgress(fail, out, v, data, completed, len(completed) > resume)
		}
		return nil, fail
	}
	return out, nil
}

// keepProgress records on a failure what the vCon's links completed, so
// that a retry or a replay resumes after them, and, when links ran in this
// run (ran), the document holding their results, written before the vCon
// waits or is dead-lettered: transcription and analysis already paid for
// are not paid for again. data is the document's encoding when already
// made.
func (p *Processor) keepProgress(f *failure, out *outcome, v *vcon.VCon, data []byte, completed []string, ran bool) {
	f.completed = completed
	if !ran {
		return
	}
	if data == nil {
		vcon.Normalize(v)
		var err error
		if data, err = v.AppendMarshal(getBodyBuffer()); err != nil {
			// The failure stands; the links run again next time.
			f.completed = completed[:0:0]
			return
		}
	}
	f.progress = &progress{body: data, prev: out.prev, recache: out.recache}
}

// resumePoint is how many leading links of the chain the vCon completed in
// an earlier run: as many as the recorded names match, in order. A chain
// edited since (a link renamed or moved) resumes at the first difference.
func resumePoint(steps []Step, completed []string) int {
	n := 0
	for n < len(steps) && n < len(completed) && steps[n].Name == completed[n] {
		n++
	}
	return n
}

func linkNames(steps []Step) []string {
	names := make([]string, len(steps))
	for i, s := range steps {
		names[i] = s.Name
	}
	return names
}

// parseBody decodes and checks a body. The reason names the field paths at
// fault, never their values. data is a Redis reply (or a storage's read)
// that nothing writes into, so the document's long strings are its bytes,
// not copies: a large vCon is held once.
func parseBody(data []byte, uuid string) (*vcon.VCon, *failure) {
	v, err := vcon.ParseReadOnly(data)
	if err != nil {
		return nil, &failure{reason: ReasonMalformed, err: errors.New(strings.TrimPrefix(err.Error(), "vcon: "))}
	}
	if errs := vcon.Validate(v); len(errs) > 0 {
		paths := make([]string, 0, 3)
		for i, e := range errs {
			if i == 3 {
				paths = append(paths, fmt.Sprintf("and %d more", len(errs)-3))
				break
			}
			paths = append(paths, e.Error())
		}
		return nil, &failure{reason: ReasonMalformed, err: errors.New(strings.Join(paths, "; "))}
	}
	if !strings.EqualFold(v.UUID(), uuid) {
		return nil, &failure{reason: ReasonMalformed, err: errors.New("the document's uuid differs from its key")}
	}
	return v, nil
}

func (p *Processor) runLink(ctx context.Context, step Step, v *vcon.VCon) (links.Result, error) {
	ss := p.spans.link(step.Name)
	ctx, span := p.tracer.Start(ctx, ss.name, ss.opts...)
	defer span.End()
	start := time.Now()
	res, err := recovered(p, ss.name, v.UUID(), func() (links.Result, error) { return step.Link.Run(ctx, v) })
	p.metrics.LinkDuration.WithLabelValues(p.chain.Name, step.Name).Observe(time.Since(start).Seconds())
	outcome := OutcomeContinue
	switch {
	case err == nil && ctx.Err() != nil:
		err = ctx.Err()
		fallthrough
	case err != nil:
		outcome = OutcomeError
		span.SetStatus(codes.Error, "link failed")
	case res.Halt:
		outcome = OutcomeHalt
	case res.NextUUID != "" && res.NextUUID != v.UUID():
		outcome = OutcomeForward
	}
	span.SetAttributes(attribute.String("vcon.outcome", outcome))
	p.metrics.LinkOutcomes.WithLabelValues(p.chain.Name, step.Name, outcome).Inc()
	return res, err
}

// classify turns a step error into a failure, recognising the chain
// timeout and a panic, and says whether it may pass on a later attempt.
func (p *Processor) classify(ctx context.Context, reason, step string, err error) *failure {
	var pe *panicError
	switch {
	case errors.As(err, &pe):
		return &failure{reason: ReasonPanic, step: step, err: err}
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return &failure{reason: ReasonTimeout, step: step, err: fmt.Errorf("chain timeout of %s exceeded", p.chain.Timeout), retryable: true}
	}
	return &failure{reason: reason, step: step, err: err, retryable: retryable(reason, err)}
}

// panicError is a link or storage that panicked. Its text names the step
// and the panic value's type (a runtime error's own text, which holds no
// data); the value itself could quote the vCon and is never kept.
type panicError struct{ what string }

func (e *panicError) Error() string { return e.what }

// recovered runs f, turning a panic into a *panicError: that vCon is
// dead-lettered and the worker lives on. The stack goes to the log (code
// locations, never the vCon's content).
func recovered[T any](p *Processor, step, uuid string, f func() (T, error)) (res T, err error) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		what := fmt.Sprintf("%s panicked (%T)", step, r)
		if re, ok := r.(runtime.Error); ok {
			what = fmt.Sprintf("%s panicked: %s", step, re.Error())
		}
		p.metrics.Panics.WithLabelValues(p.chain.Name).Inc()
		p.log.Error("recovered a panic; the vCon is dead-lettered", "step", step, "uuid", uuid, "panic_type", fmt.Sprintf("%T", r), "stack", string(debug.Stack()))
		var zero T
		res, err = zero, &panicError{what: what}
	}()
	return f()
}

// store writes every storage, in parallel, each with retries. Storages whose
// write is a Redis command are queued for the commit instead.
func (p *Processor) store(ctx context.Context, out *outcome, v *vcon.VCon, data []byte) *failure {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first *failure
	)
	for _, sink := range p.chain.Storages {
		if _, ok := sink.Storage.(storage.Pipelined); ok {
			out.pipelined = append(out.pipelined, pipelinedSave{sink: sink, v: v})
			continue
		}
		wg.Add(1)
		go func(sink Sink) {
			defer wg.Done()
			if err := p.save(ctx, sink, v); err != nil {
				mu.Lock()
				if first == nil {
					first = p.classify(ctx, ReasonStorageError, "storage "+sink.Name, err)
				}
				mu.Unlock()
			}
		}(sink)
	}
	wg.Wait()
	return first
}

func (p *Processor) save(ctx context.Context, sink Sink, v *vcon.VCon) error {
	ss := p.spans.storage(sink.Name)
	ctx, span := p.tracer.Start(ctx, ss.name, ss.opts...)
	defer span.End()
	wait := p.opts.StorageBackoff
	var err error
	for attempt := 1; attempt <= p.opts.StorageAttempts; attempt++ {
		start := time.Now()
		callCtx, cancel := context.WithTimeout(ctx, p.opts.StorageCallTimeout)
		_, err = recovered(p, "storage "+sink.Name, v.UUID(), func() (struct{}, error) { return struct{}{}, sink.Storage.Save(callCtx, v) })
		if err != nil && callCtx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("attempt timed out after %s: %w", p.opts.StorageCallTimeout, err)
		}
		cancel()
		p.metrics.StorageDuration.WithLabelValues(p.chain.Name, sink.Name).Observe(time.Since(start).Seconds())
		if err == nil {
			p.metrics.StorageWrites.WithLabelValues(p.chain.Name, sink.Name, OutcomeSuccess).Inc()
			return nil
		}
		// A permanent error (a document over the storage's size limit)
		// fails the same way every time: dead-letter it now, with its
		// reason, instead of after every backoff. So does a panic.
		var pe *panicError
		if ctx.Err() != nil || attempt == p.opts.StorageAttempts || storage.IsPermanent(err) || errors.As(err, &pe) {
			break
		}
		p.metrics.StorageWrites.WithLabelValues(p.chain.Name, sink.Name, OutcomeRetry).Inc()
		p.log.Info("storage write failed, retrying", "storage", sink.Name, "attempt", attempt, "error", err)
		if !sleep(ctx, wait) {
			break
		}
		wait = min(2*wait, p.opts.StorageBackoffMax)
	}
	p.metrics.StorageWrites.WithLabelValues(p.chain.Name, sink.Name, OutcomeFailure).Inc()
	span.SetStatus(codes.Error, "storage write failed")
	if ctx.Err() != nil && err == nil {
		err = ctx.Err()
	}
	return err
}

// readThrough looks for a missing body in the config's storages
// (Chain.ReadFrom), unless VCON_STORAGE_FALLBACK_ENABLED turned it off.
// A vCon that no storage has is not_found; one that a failing storage
// may hold fails as that storage's error, retried when it may pass.
func (p *Processor) readThrough(ctx context.Context, uuid string) ([]byte, *failure) {
	if !p.opts.ReadThrough {
		return nil, &failure{reason: ReasonNotFound, err: errors.New("no body in Redis (reading it back from storages is off: VCON_STORAGE_FALLBACK_ENABLED=false)")}
	}
	data, from, err := storage.ReadBack(ctx, p.chain.ReadFrom, uuid)
	switch {
	case err == nil:
		p.log.Info("vCon missing from Redis, read back from a storage", "storage", from, "uuid", uuid)
		return data, nil
	case errors.Is(err, storage.ErrNotFound):
		return nil, &failure{reason: ReasonNotFound, err: errors.New("no body in Redis or in any storage")}
	}
	return nil, p.classify(ctx, ReasonStorageError, "read back", fmt.Errorf("no body in Redis, and no storage that answered has it: %w", err))
}

// writeBody writes the current document back before a link switches to
// another vCon.
func (p *Processor) writeBody(ctx context.Context, out *outcome, v *vcon.VCon) error {
	vcon.Normalize(v)
	data, err := v.Marshal()
	if err != nil {
		return err
	}
	if out.recache {
		return p.bodies.Create(ctx, out.uuid, data, p.opts.ReadThroughTTL)
	}
	return p.bodies.Put(ctx, out.uuid, data, out.prev)
}
