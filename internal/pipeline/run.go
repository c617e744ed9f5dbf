package pipeline

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/codes"

	"github.com/vcon-operator/vcon-operator/internal/httpx"
	"github.com/vcon-operator/vcon-operator/internal/links"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/storage"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// bodyBuffers recycles the buffers documents are encoded into: a vCon's
// encoding is one of the largest allocations of its processing, and
// reusing it spares the collector most of them. A buffer travels in the
// box the pool holds it in (outcome.buf), so that putting it back does
// not box it again: &b on every put was an allocation per vCon.
var bodyBuffers sync.Pool

// getBodyBuffer returns an empty buffer in its box.
func getBodyBuffer() *[]byte {
	if b, ok := bodyBuffers.Get().(*[]byte); ok {
		*b = (*b)[:0]
		return b
	}
	b := make([]byte, 0, 8<<10)
	return &b
}

// putBodyBuffer keeps b for reuse unless it is unusually large (one huge
// vCon must not pin its memory for the life of the worker).
func putBodyBuffer(b *[]byte) {
	if b == nil || cap(*b) == 0 || cap(*b) > 1<<20 {
		return
	}
	bodyBuffers.Put(b)
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
	if ext := vcon.UnsupportedCritical(v, p.opts.SupportedExtensions); len(ext) > 0 {
		// draft-ietf-vcon-vcon-core, critical: an implementation that does
		// not support a listed extension must not process the vCon except
		// to reject it. No link runs.
		return nil, &failure{reason: ReasonUnsupportedCritical, err: fmt.Errorf("%s (this worker supports %s; see --supported-extensions)",
			strings.Join(ext, ", "), supportedList(p.opts.SupportedExtensions))}
	}

	resume := resumePoint(p.chain.Links, state.Completed)
	completed := linkNames(p.chain.Links[:resume])
	// The links resumed after asked for routes or a TTL in an earlier
	// run: this run's outcome applies them.
	effects := resumedEffects(state.Effects, completed)
	for _, e := range effects {
		out.addEffects(out.uuid, links.Result{Routes: e.Routes, TTL: e.TTL})
	}
	forwarded := false
	// original is the vCon as it was when the chain's first redaction
	// replaced it: a failure after that keeps its progress (and resumes)
	// as of before the redaction, so a retry redacts again and never
	// runs a later link on the unredacted document.
	var original *snapshot
	keep := func(f *failure, v *vcon.VCon, data []byte) {
		switch {
		case original != nil:
			p.keepProgress(f, &outcome{prev: original.prev, recache: original.recache}, original.v, nil, original.completed, len(original.completed) > resume)
			f.effects = encodeEffects(original.effects, f.completed)
		case !forwarded:
			p.keepProgress(f, out, v, data, completed, len(completed) > resume)
			f.effects = encodeEffects(effects, f.completed)
		}
	}
	for _, step := range p.chain.Links[resume:] {
		if form := v.Form(); !links.Accepts(step.Link, form) {
			// A signed or encrypted vCon is its signer's document: a link
			// that reads or changes content would see only the envelope.
			f := &failure{reason: ReasonWrongForm, step: "link " + step.Name, err: wrongForm(step.Link, form)}
			if !forwarded {
				p.keepProgress(f, out, v, nil, completed, len(completed) > resume)
				f.effects = encodeEffects(effects, f.completed)
			}
			return nil, f
		}
		res, err := p.runLink(ctx, step, v)
		if err != nil {
			f := p.classify(ctx, ReasonLinkError, "link "+step.Name, err)
			keep(f, v, nil)
			return nil, f
		}
		if res.Redacted != nil {
			if original == nil && !forwarded {
				original = &snapshot{v: v, completed: slices.Clone(completed), effects: slices.Clone(effects), prev: out.prev, recache: out.recache}
			}
			if f := p.redacted(ctx, step, out, v, res); f != nil {
				keep(f, v, nil)
				return nil, f
			}
			v = res.Redacted
		}
		completed = append(completed, step.Name)
		out.addEffects(out.uuid, res)
		if e, ok := effectOf(step.Name, res); ok {
			effects = append(effects, e)
		}
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
	buf := getBodyBuffer()
	data, err := v.AppendMarshal(*buf)
	if err != nil {
		return nil, &failure{reason: ReasonMalformed, err: err}
	}
	*buf = data // the box holds the buffer as grown
	out.body, out.buf = data, buf
	if out.halted {
		return out, nil
	}
	if fail := p.store(ctx, out, v); fail != nil {
		keep(fail, v, data)
		return nil, fail
	}
	return out, nil
}

// snapshot is a vCon as it was before a redaction replaced it.
type snapshot struct {
	v         *vcon.VCon
	completed []string
	effects   []linkEffect
	prev      vconstore.Body
	recache   bool
}

// redacted switches the chain from v to the redacted vCon a link returned:
// the original is written to the link's original storages (and nowhere
// else), its body is deleted by the outcome, the routes earlier links
// asked for it go with the redacted uuid, and a TTL they set for it is
// moot. The redacted vCon's body is created by the outcome.
func (p *Processor) redacted(ctx context.Context, step Step, out *outcome, v *vcon.VCon, res links.Result) *failure {
	red := res.Redacted
	if id := red.UUID(); !vcon.ValidUUID(id) || strings.EqualFold(id, v.UUID()) {
		return &failure{reason: ReasonLinkError, step: "link " + step.Name, err: errors.New("the redacted vCon needs a valid uuid of its own")}
	}
	if res.Halt || res.NextUUID != "" {
		return &failure{reason: ReasonLinkError, step: "link " + step.Name, err: errors.New("a link returning a redacted vCon cannot also halt or forward")}
	}
	if fail := p.storeOriginal(ctx, step, out, v); fail != nil {
		return fail
	}
	orig, id := v.UUID(), red.UUID()
	out.drop = append(out.drop, orig)
	for i := range out.routes {
		if out.routes[i].uuid == orig {
			out.routes[i].uuid = id
		}
	}
	out.ttls = slices.DeleteFunc(out.ttls, func(t bodyTTL) bool { return t.uuid == orig })
	// The body is new: created, with the normal expiry, by the outcome.
	out.uuid, out.prev, out.recache, out.restoreTTL = id, vconstore.Body{}, true, false
	return nil
}

// storeOriginal writes the unredacted vCon to the redacting link's
// original storages, in parallel and with retries as the chain's own
// storages are; those that are Redis commands go in the outcome.
func (p *Processor) storeOriginal(ctx context.Context, step Step, out *outcome, v *vcon.VCon) *failure {
	if len(step.Originals) == 0 {
		return nil
	}
	vcon.Normalize(v)
	var data []byte
	for _, sink := range step.Originals {
		if _, ok := sink.Storage.(storage.Pipelined); ok && data == nil {
			var err error
			if data, err = v.Marshal(); err != nil {
				return &failure{reason: ReasonMalformed, err: err}
			}
		}
	}
	return p.saveAll(ctx, step.Originals, v, data, out, false)
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
		if data, err = v.AppendMarshal(*getBodyBuffer()); err != nil {
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
	if v.Secured() {
		// Only the envelope can be checked without a key; the links that
		// open it (links.verify, links.decrypt) check the rest.
		if err := vcon.CheckSecured(v); err != nil {
			return nil, &failure{reason: ReasonMalformed, err: err}
		}
	} else if errs := vcon.Validate(v); len(errs) > 0 {
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
	ctx, span := p.startSpan(ctx, ss.name, ss.opts)
	defer span.End()
	if g := p.gates[step.Name]; g != nil {
		// Every vendor call the link makes waits for the Link's shared
		// budget (httpx.Admit). The wait counts toward the chain timeout.
		ctx = httpx.WithGate(ctx, g)
	}
	ls := p.series.link(p.metrics, p.chain.Name, step.Name)
	start := time.Now()
	res, err := recovered(p, ss.name, v.UUID(), func() (links.Result, error) { return step.Link.Run(ctx, v) })
	ls.duration.get().Observe(time.Since(start).Seconds())
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
	case res.Redacted != nil:
		outcome = OutcomeRedact
	case res.NextUUID != "" && res.NextUUID != v.UUID():
		outcome = OutcomeForward
	}
	if span.IsRecording() {
		span.SetAttributes(ss.ended(outcome)...)
	}
	ls.outcomes[outcome].get().Inc()
	return res, err
}

// wrongForm says why link l does not run on a vCon in form f.
func wrongForm(l links.Link, f vcon.Form) error {
	switch _, knowsForms := l.(links.FormLink); {
	case !knowsForms:
		return fmt.Errorf("the vCon is %s and this link works on unsigned vCons: open it first (links.verify, links.decrypt)", f)
	case f == vcon.Unsigned:
		return errors.New("the vCon is unsigned and this link takes signed vCons: sign it first (links.sign)")
	}
	return fmt.Errorf("the vCon is %s, a form this link does not take", f)
}

// classify turns a step error into a failure, recognising the chain
// timeout, a panic and a link's own reason, and says whether it may pass
// on a later attempt.
func (p *Processor) classify(ctx context.Context, reason, step string, err error) *failure {
	var (
		pe *panicError
		re *links.ReasonError
	)
	switch {
	case errors.As(err, &pe):
		return &failure{reason: ReasonPanic, step: step, err: err}
	case errors.As(err, &re):
		return &failure{reason: re.Reason, step: step, err: re.Err}
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
// write is a Redis command are queued for the commit instead. A write that
// still fails fails the vCon, or, when the chain dead-letters failed
// writes alone (Chain.StorageDeadLetters), is left for the commit to put
// on that storage's DLQ while the vCon goes on.
func (p *Processor) store(ctx context.Context, out *outcome, v *vcon.VCon) *failure {
	return p.saveAll(ctx, p.chain.Storages, v, nil, out, p.chain.StorageDeadLetters)
}

// saveAll writes v to sinks in parallel, each with retries, and queues
// those whose write is a Redis command in out's commit, with body (nil:
// the outcome's body). A write that still fails goes to out's storage
// DLQ entries when deadLetters is set, and fails the vCon otherwise: the
// unredacted originals of links.redact never set it, so a failed
// original write never lets the chain go on.
func (p *Processor) saveAll(ctx context.Context, sinks []Sink, v *vcon.VCon, body []byte, out *outcome, deadLetters bool) *failure {
	if allPipelined(sinks) {
		// Nothing to wait for (storage.redis_storage alone, the usual
		// chain): no goroutines, no lock.
		for _, sink := range sinks {
			out.pipelined = append(out.pipelined, pipelinedSave{sink: sink, v: v, body: body})
		}
		return nil
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first *failure
	)
	for _, sink := range sinks {
		if _, ok := sink.Storage.(storage.Pipelined); ok {
			out.pipelined = append(out.pipelined, pipelinedSave{sink: sink, v: v, body: body})
			continue
		}
		wg.Add(1)
		go func(sink Sink) {
			defer wg.Done()
			if err := p.save(ctx, sink, v); err != nil {
				f := p.classify(ctx, ReasonStorageError, "storage "+sink.Name, err)
				mu.Lock()
				defer mu.Unlock()
				if deadLetters {
					out.storageDLQ = append(out.storageDLQ, storageFailure{storage: sink.Name, f: f})
				} else if first == nil {
					first = f
				}
			}
		}(sink)
	}
	wg.Wait()
	return first
}

func allPipelined(sinks []Sink) bool {
	for _, sink := range sinks {
		if _, ok := sink.Storage.(storage.Pipelined); !ok {
			return false
		}
	}
	return true
}

func (p *Processor) save(ctx context.Context, sink Sink, v *vcon.VCon) error {
	ss := p.spans.storage(sink.Name)
	ctx, span := p.startSpan(ctx, ss.name, ss.opts)
	defer span.End()
	series := p.series.storage(p.metrics, p.chain.Name, sink.Name)
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
		series.duration.get().Observe(time.Since(start).Seconds())
		if err == nil {
			series.success.Inc()
			return nil
		}
		// A permanent error (a document over the storage's size limit)
		// fails the same way every time: dead-letter it now, with its
		// reason, instead of after every backoff. So does a panic.
		var pe *panicError
		if ctx.Err() != nil || attempt == p.opts.StorageAttempts || storage.IsPermanent(err) || errors.As(err, &pe) {
			break
		}
		series.retry.Inc()
		p.log.Info("storage write failed, retrying", "storage", sink.Name, "attempt", attempt, "error", err)
		if !sleep(ctx, wait) {
			break
		}
		wait = min(2*wait, p.opts.StorageBackoffMax)
	}
	series.failure.Inc()
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

func supportedList(exts []string) string {
	if len(exts) == 0 {
		return "none"
	}
	return strings.Join(exts, ", ")
}
