// Package pipeline runs a chain on each vCon a worker takes: links in order,
// then storages, then egress, and dead-letters what fails. It is strict
// where conserver is weak: storages are written (and retried) before
// egress, a failed write dead-letters instead of vanishing, a chain timeout
// is enforced, and nothing leaves the worker's in-flight list until its
// outcome is written.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/vcon-operator/vcon-operator/internal/apiwire"
	"github.com/vcon-operator/vcon-operator/internal/links"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/storage"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// Step is a configured link with its config name.
type Step struct {
	Name string
	Link links.Link
}

// Sink is a configured storage with its config name.
type Sink struct {
	Name    string
	Storage storage.Storage
}

// Chain is what the processor runs for each vCon.
type Chain struct {
	Name     string
	Ingress  []string
	Egress   []string
	Links    []Step
	Storages []Sink
	// Timeout bounds links and storages for one vCon; 0 takes the
	// processor's DefaultTimeout (a chain is never unbounded).
	Timeout time.Duration
}

// Options tune the processor; zero values take conserver's defaults.
type Options struct {
	// DLQExpiry becomes the body's TTL when it is dead-lettered (VCON_DLQ_EXPIRY).
	DLQExpiry time.Duration
	// ContextExpiry is the TTL of trace-context records written for egress
	// lists (VCON_CONTEXT_EXPIRY).
	ContextExpiry time.Duration
	// ReadThroughTTL is the TTL of a body re-cached from a storage.
	ReadThroughTTL time.Duration
	// ReadThrough reads missing bodies from storages that can Get
	// (VCON_STORAGE_FALLBACK_ENABLED).
	ReadThrough bool
	// StorageAttempts is how often a failing storage write is tried before
	// the vCon is dead-lettered; StorageBackoff the first wait, doubled
	// each time up to StorageBackoffMax.
	StorageAttempts   int
	StorageBackoff    time.Duration
	StorageBackoffMax time.Duration
	// CommitBackoffMax caps the wait between attempts to write a vCon's
	// outcome to Redis, which are repeated until they succeed or the
	// worker stops (the vCon stays in flight meanwhile).
	CommitBackoffMax time.Duration
	// DefaultTimeout bounds a chain that sets no timeout (conserver has
	// none, so a hung dependency would hold a slot forever).
	DefaultTimeout time.Duration
	// StorageCallTimeout bounds one storage write attempt, so that one
	// hung attempt leaves time for the next within the chain's timeout.
	StorageCallTimeout time.Duration
	// StallGrace is how long past its chain's timeout a vCon may still be
	// running before the processor reports it stalled: by then a link or
	// storage ignored the cancellation, and only a restart frees the slot.
	StallGrace time.Duration
}

// Defaults of the options above (docs/migrating-from-conserver.md).
const (
	DefaultChainTimeout       = 10 * time.Minute
	DefaultStorageCallTimeout = time.Minute
	DefaultStallGrace         = time.Minute
	// DefaultDLQExpiry is the TTL of a dead-lettered vCon's body, a week
	// (VCON_DLQ_EXPIRY). Trace contexts and read-through bodies take
	// apiwire's defaults, which the API shares.
	DefaultDLQExpiry = 7 * 24 * time.Hour
)

func (o *Options) defaults() {
	if o.DLQExpiry == 0 {
		o.DLQExpiry = DefaultDLQExpiry
	}
	if o.ContextExpiry == 0 {
		o.ContextExpiry = queue.DefaultContextTTL
	}
	if o.ReadThroughTTL == 0 {
		o.ReadThroughTTL = apiwire.DefaultVconTTL
	}
	if o.StorageAttempts == 0 {
		o.StorageAttempts = 5
	}
	if o.StorageBackoff == 0 {
		o.StorageBackoff = 200 * time.Millisecond
	}
	if o.StorageBackoffMax == 0 {
		o.StorageBackoffMax = 10 * time.Second
	}
	if o.CommitBackoffMax == 0 {
		o.CommitBackoffMax = 5 * time.Second
	}
	if o.DefaultTimeout <= 0 {
		o.DefaultTimeout = DefaultChainTimeout
	}
	if o.StorageCallTimeout <= 0 {
		o.StorageCallTimeout = DefaultStorageCallTimeout
	}
	if o.StallGrace <= 0 {
		o.StallGrace = DefaultStallGrace
	}
}

// Processor runs one chain.
type Processor struct {
	rdb     redis.UniversalClient
	bodies  *vconstore.Store
	worker  *queue.Worker
	chain   Chain
	opts    Options
	metrics *Metrics
	log     *slog.Logger
	tracer  trace.Tracer
	cluster bool
	getters []Sink

	// running holds the start of every vCon between its read and the end
	// of its links and storages, for Stalled.
	runningMu sync.Mutex
	running   map[uint64]time.Time
	runSeq    uint64
}

// NewProcessor returns a processor for chain, taking work as worker.
func NewProcessor(rdb redis.UniversalClient, bodies *vconstore.Store, worker *queue.Worker, chain Chain, opts Options, m *Metrics, log *slog.Logger) *Processor {
	opts.defaults()
	if chain.Timeout <= 0 {
		chain.Timeout = opts.DefaultTimeout
	}
	p := &Processor{
		running: map[uint64]time.Time{},
		rdb:     rdb, bodies: bodies, worker: worker, chain: chain, opts: opts, metrics: m,
		log:     log.With("chain", chain.Name),
		tracer:  otel.Tracer("github.com/vcon-operator/vcon-operator/internal/pipeline"),
		cluster: queue.IsCluster(rdb),
	}
	for _, s := range chain.Storages {
		if _, ok := s.Storage.(storage.Getter); ok {
			p.getters = append(p.getters, s)
		}
	}
	linkNames := make([]string, len(chain.Links))
	for i, l := range chain.Links {
		linkNames[i] = l.Name
	}
	storageNames := make([]string, len(chain.Storages))
	for i, s := range chain.Storages {
		storageNames[i] = s.Name
	}
	m.init(chain.Name, linkNames, storageNames)
	return p
}

// started records a vCon's run from at; the returned func ends the record.
func (p *Processor) started(at time.Time) (finished func()) {
	p.runningMu.Lock()
	p.runSeq++
	id := p.runSeq
	p.running[id] = at
	p.runningMu.Unlock()
	return func() {
		p.runningMu.Lock()
		delete(p.running, id)
		p.runningMu.Unlock()
	}
}

// Stalled counts the vCons still running StallGrace past the chain's
// timeout at now. Their context was cancelled long ago, so a link or
// storage ignores it and holds the slot for good: the worker reports
// unhealthy, and the restart returns them (redelivered by the reaper).
func (p *Processor) Stalled(now time.Time) int {
	bound := p.chain.Timeout + p.opts.StallGrace
	p.runningMu.Lock()
	defer p.runningMu.Unlock()
	n := 0
	for _, at := range p.running {
		if now.Sub(at) > bound {
			n++
		}
	}
	return n
}

// ChainName is the name of the chain p runs.
func (p *Processor) ChainName() string { return p.chain.Name }

// failure is why a vCon is dead-lettered.
type failure struct {
	reason string // one of the Reason* constants
	step   string
	err    error
}

func (f *failure) text() string {
	if f.step != "" {
		return fmt.Sprintf("%s: %s: %v", f.reason, f.step, f.err)
	}
	return fmt.Sprintf("%s: %v", f.reason, f.err)
}

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

func isProbeErr(err error) bool {
	s := err.Error()
	return strings.HasPrefix(s, "WRONGTYPE") || strings.Contains(strings.ToLower(s), "unknown command")
}

// outcome is what a successful run leaves to write.
type outcome struct {
	uuid      string // the vCon the chain ended on (links may switch)
	body      []byte // the document to write back (normalised)
	prev      vconstore.Body
	halted    bool
	pipelined []pipelinedSave
	recache   bool // body came from a storage: create the key
	// What the links asked for (links.Result), applied by the commit only.
	routes []route
	ttls   []bodyTTL
}

// route is a push of uuid onto list that a link asked for.
type route struct{ list, uuid string }

// bodyTTL is the expiry a link gave the body of uuid.
type bodyTTL struct {
	uuid string
	ttl  time.Duration
}

// addEffects records the effects of a link's result on the vCon it ran on,
// uuid. A later TTL for the same vCon replaces an earlier one: the last
// link to set one wins, as each EXPIRE replaced the one before.
func (o *outcome) addEffects(uuid string, res links.Result) {
	for _, l := range res.Routes {
		o.routes = append(o.routes, route{list: l, uuid: uuid})
	}
	if res.TTL <= 0 {
		return
	}
	for i := range o.ttls {
		if o.ttls[i].uuid == uuid {
			o.ttls[i].ttl = res.TTL
			return
		}
	}
	o.ttls = append(o.ttls, bodyTTL{uuid: uuid, ttl: res.TTL})
}

type pipelinedSave struct {
	sink Sink
	v    *vcon.VCon
}

// run executes links and storages. It returns either what to commit or why
// the vCon fails.
func (p *Processor) run(ctx context.Context, it queue.Item, body vconstore.Body, readErr error) (*outcome, *failure) {
	ctx, cancel := context.WithTimeout(ctx, p.chain.Timeout)
	defer cancel()
	out := &outcome{uuid: it.UUID, prev: body}
	if readErr != nil {
		if errors.Is(readErr, vconstore.ErrWrongType) {
			return nil, &failure{reason: ReasonMalformed, err: errors.New("the body key holds neither a string nor a JSON document")}
		}
		if errors.Is(readErr, vconstore.ErrTooLarge) {
			// Not decoded: one oversized document must not take the
			// worker's memory (and every other vCon in flight) with it.
			return nil, &failure{reason: ReasonTooLarge, err: errors.New(strings.TrimPrefix(readErr.Error(), vconstore.Key(it.UUID)+": "))}
		}
		data, ok := p.readThrough(ctx, it.UUID)
		if !ok {
			return nil, &failure{reason: ReasonNotFound, err: errors.New("no body in Redis or in any storage")}
		}
		body = vconstore.Body{Data: data}
		out.recache = true
	}
	v, fail := parseBody(body.Data, it.UUID)
	if fail != nil {
		return nil, fail
	}

	for _, step := range p.chain.Links {
		res, err := p.runLink(ctx, step, v)
		if err != nil {
			return nil, p.classify(ctx, ReasonLinkError, "link "+step.Name, err)
		}
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
		return nil, fail
	}
	return out, nil
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
	ctx, span := p.tracer.Start(ctx, "link "+step.Name, trace.WithAttributes(attribute.String("vcon.link", step.Name)))
	defer span.End()
	start := time.Now()
	res, err := step.Link.Run(ctx, v)
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

// classify turns a step error into a failure, recognising the chain timeout.
func (p *Processor) classify(ctx context.Context, reason, step string, err error) *failure {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &failure{reason: ReasonTimeout, step: step, err: fmt.Errorf("chain timeout of %s exceeded", p.chain.Timeout)}
	}
	return &failure{reason: reason, step: step, err: err}
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
	ctx, span := p.tracer.Start(ctx, "storage "+sink.Name, trace.WithAttributes(attribute.String("vcon.storage", sink.Name)))
	defer span.End()
	wait := p.opts.StorageBackoff
	var err error
	for attempt := 1; attempt <= p.opts.StorageAttempts; attempt++ {
		start := time.Now()
		callCtx, cancel := context.WithTimeout(ctx, p.opts.StorageCallTimeout)
		err = sink.Storage.Save(callCtx, v)
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
		// reason, instead of after every backoff.
		if ctx.Err() != nil || attempt == p.opts.StorageAttempts || storage.IsPermanent(err) {
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

// readThrough looks for a missing body in the storages that can read back.
func (p *Processor) readThrough(ctx context.Context, uuid string) ([]byte, bool) {
	if !p.opts.ReadThrough {
		return nil, false
	}
	for _, s := range p.getters {
		data, err := s.Storage.(storage.Getter).Get(ctx, uuid)
		if err == nil && len(data) > 0 {
			return data, true
		}
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			p.log.Info("read-through failed", "storage", s.Name, "uuid", uuid, "error", err)
		}
	}
	return nil, false
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

// commit writes a finished vCon's results and takes it out of flight in one
// round trip: body and the TTLs links set, storages that are Redis
// commands, then the pushes links asked for (even when the chain halted)
// and egress pushes, each with its trace context, then the in-flight
// removal. Pushing only here, after the body and with the removal, is what
// keeps a link's push from being repeated by a redelivery or read before
// the body. On a cluster the pushes go in a second round trip, once the
// writes are applied, and the removal in a third, once the pushes are.
func (p *Processor) commit(ctx context.Context, it queue.Item, out *outcome, queueNext func(redis.Pipeliner) *queue.PendingTake) error {
	writes := p.outcomePipeline()
	var err error
	if out.recache {
		err = p.bodies.QueueCreate(ctx, writes, out.uuid, out.body, p.opts.ReadThroughTTL)
	} else {
		err = p.bodies.QueuePut(ctx, writes, out.uuid, out.body, out.prev)
	}
	if err != nil {
		return err
	}
	for _, t := range out.ttls {
		p.bodies.QueueExpire(ctx, writes, t.uuid, t.ttl)
	}
	// Storages written by the commit get their span too, ended with the
	// round trip that carries their write.
	var spans []trace.Span
	endSpans := func(err error) {
		for _, sp := range spans {
			if err != nil {
				sp.SetStatus(codes.Error, "storage write failed")
			}
			sp.End()
		}
		spans = nil
	}
	for _, s := range out.pipelined {
		_, sp := p.tracer.Start(ctx, "storage "+s.sink.Name, trace.WithAttributes(attribute.String("vcon.storage", s.sink.Name)))
		spans = append(spans, sp)
		s.sink.Storage.(storage.Pipelined).AppendSave(writes, s.v, out.body)
	}
	pushes := p.outcomePipeline()
	// A halted vCon still gets the pushes its links asked for (a router
	// that filters the original has routed it); only egress is skipped.
	for _, r := range out.routes {
		queue.QueuePush(ctx, pushes, r.list, p.opts.ContextExpiry, r.uuid)
	}
	if !out.halted {
		for _, l := range p.chain.Egress {
			queue.QueuePush(ctx, pushes, l, p.opts.ContextExpiry, out.uuid)
		}
	}
	pipes := []redis.Pipeliner{writes, pushes}
	if p.cluster {
		err := queue.ExecChecked(ctx, p.rdb, pipes...)
		endSpans(err)
		if err != nil {
			return err
		}
		pipes = []redis.Pipeliner{p.rdb.Pipeline()}
	}
	last := pipes[len(pipes)-1]
	p.worker.QueueDone(last, it)
	queueNext(last)
	err = queue.ExecChecked(ctx, p.rdb, pipes...)
	endSpans(err)
	if err == nil {
		for _, s := range out.pipelined {
			p.metrics.StorageWrites.WithLabelValues(p.chain.Name, s.sink.Name, OutcomeSuccess).Inc()
		}
	}
	return err
}

// deadLetter puts the item on DLQ:{ingress} with its reason, gives the body
// the DLQ expiry, and takes it out of flight (last, in its own round trip on
// a cluster, so the DLQ entry exists before the in-flight one goes).
func (p *Processor) deadLetter(ctx context.Context, it queue.Item, f *failure, queueNext func(redis.Pipeliner) *queue.PendingTake) error {
	pipe := p.outcomePipeline()
	queue.QueueDeadLetter(pipe, it, queue.DLQReason{Reason: f.text(), Chain: p.chain.Name, Step: f.step, At: time.Now().UTC()})
	p.bodies.QueueExpire(ctx, pipe, it.UUID, p.opts.DLQExpiry)
	if p.cluster {
		if err := queue.ExecChecked(ctx, p.rdb, pipe); err != nil {
			return err
		}
		pipe = p.rdb.Pipeline()
	}
	p.worker.QueueDone(pipe, it)
	queueNext(pipe)
	return queue.ExecChecked(ctx, p.rdb, pipe)
}

// outcomePipeline collects the commands of a vCon's outcome, which
// queue.ExecChecked sends. On one server they run as one script that
// applies all of them or, when a key has the wrong type, none: a worker
// killed while sending it leaves all or nothing too (a plain pipeline cut
// short could push to egress and leave the vCon in flight, so it would be
// pushed again after its redelivery). A cluster cannot run a script across
// slots; there the pushes and the in-flight removal go in round trips of
// their own instead, each after the writes it depends on.
func (p *Processor) outcomePipeline() redis.Pipeliner {
	return p.rdb.Pipeline()
}

// retryOutcome writes an outcome until it is written once. An outcome is
// one transaction ending with the in-flight removal (on one server), so
// when an attempt failed ambiguously (e.g. Redis restarting after it ran
// the EXEC but before the reply), the item having left flight means the
// outcome was applied: repeating it would push to egress twice.
//
// A refusal (*queue.OutcomeError) would repeat: it is returned at once
// unless retryRefusals is set (a dead letter has nowhere else to go).
func (p *Processor) retryOutcome(ctx context.Context, it queue.Item, retryRefusals bool, write func() error) error {
	attempt := 0
	return p.retryRedis(ctx, retryRefusals, func() error {
		attempt++
		if attempt > 1 && !p.cluster {
			inFlight, err := p.worker.StillInFlight(ctx, it)
			if err != nil {
				return err
			}
			if !inFlight {
				return nil
			}
		}
		return write()
	})
}

// retryRedis repeats a Redis step until it succeeds or ctx ends: a vCon's
// outcome must be written, and while Redis is away the vCon simply stays in
// flight.
func (p *Processor) retryRedis(ctx context.Context, retryRefusals bool, f func() error) error {
	wait := 50 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ErrStopped
		}
		var refused *queue.OutcomeError
		if errors.As(err, &refused) {
			if !retryRefusals {
				return err
			}
		} else {
			p.log.Warn("redis unavailable, retrying", "error", err)
		}
		if !sleep(ctx, wait) {
			return ErrStopped
		}
		wait = min(2*wait, p.opts.CommitBackoffMax)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
