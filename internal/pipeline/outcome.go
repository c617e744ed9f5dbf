package pipeline

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/vcon-operator/vcon-operator/internal/links"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/storage"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// failure is why a vCon is dead-lettered (or, when retryable and attempts
// are left, waits for a delayed retry).
type failure struct {
	reason    string // one of the Reason* constants
	step      string
	err       error
	retryable bool
	// completed names the links the vCon has completed (this run's and an
	// earlier one's); progress is the document holding this run's results,
	// written with the failure so they are not paid for again.
	completed []string
	progress  *progress
	// effects are the kept effects of the completed links (effects.go).
	effects []byte
}

// progress is a failed vCon's document as its completed links left it.
type progress struct {
	body    []byte
	prev    vconstore.Body
	recache bool
}

func (f *failure) text() string {
	if f.step != "" {
		return fmt.Sprintf("%s: %s: %v", f.reason, f.step, f.err)
	}
	return fmt.Sprintf("%s: %v", f.reason, f.err)
}

// outcome is what a successful run leaves to write.
type outcome struct {
	uuid      string  // the vCon the chain ended on (links may switch)
	body      []byte  // the document to write back (normalised)
	buf       *[]byte // body's pooled buffer (getBodyBuffer)
	prev      vconstore.Body
	halted    bool
	pipelined []pipelinedSave
	recache   bool // body came from a storage: create the key
	// What the links asked for (links.Result), applied by the commit only.
	routes []route
	ttls   []bodyTTL
	// clearState: the queue remembers something of the vCon (deliveries,
	// attempts, completed links) that its outcome makes moot.
	clearState bool
	// restoreTTL: the body's TTL was no longer than the queued retention
	// it was extended to when taken; the processed body gets the normal
	// expiry back (a link's TTL still wins).
	restoreTTL bool
	// drop are the uuids of unredacted originals a link replaced by a
	// redacted vCon: their bodies are deleted with the outcome, so that no
	// later chain, reader of the API or replay finds them in Redis. Until
	// the outcome applies, the original stays, so a crash redelivers it
	// and the chain redacts it again, to the same redacted uuid.
	drop []string
	// storageDLQ are the storage writes that failed in a chain that
	// dead-letters them alone: the commit puts the uuid on each one's
	// DLQ, with its reason, in the same step as the egress pushes.
	storageDLQ []storageFailure
}

// storageFailure is a storage write that failed for good.
type storageFailure struct {
	storage string
	f       *failure
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
	body []byte // v's encoding; nil means the outcome's body
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
	switch {
	case out.recache:
		err = p.bodies.QueueCreate(ctx, writes, out.uuid, out.body, p.opts.ReadThroughTTL)
	case !bodyUnchanged(out):
		err = p.bodies.QueuePut(ctx, writes, out.uuid, out.body, out.prev)
	}
	if err != nil {
		return err
	}
	// A body pushed on is queued again, for the next chain or a reader of
	// egress: it keeps the queued retention. One at the end of its road
	// gets the normal expiry back, counted from now, when its TTL was no
	// longer than the retention it was extended to. A link's TTL wins.
	if len(out.routes) > 0 || (!out.halted && len(p.chain.Egress) > 0) {
		p.bodies.QueueExtendRead(ctx, writes, out.uuid, out.prev, p.opts.QueuedRetention)
	} else if out.restoreTTL && !hasTTL(out.ttls, out.uuid) {
		p.bodies.QueueExpire(ctx, writes, out.uuid, p.opts.ReadThroughTTL)
	}
	for _, t := range out.ttls {
		p.bodies.QueueExpire(ctx, writes, t.uuid, t.ttl)
	}
	// A failed write waits on its storage's DLQ for a replay that reads
	// the body from Redis: the body keeps at least the DLQ expiry (a
	// longer TTL, or none, stays), after whatever TTL a link set, as
	// conserver extends it after its links ran. The entries ride with the
	// writes, so the script applies them with the egress pushes or not at
	// all: no crash leaves egress pushed without them, or them without
	// egress.
	if len(out.storageDLQ) > 0 {
		p.bodies.QueueExtend(ctx, writes, out.uuid, p.opts.DLQExpiry)
		now := time.Now().UTC()
		for _, sf := range out.storageDLQ {
			queue.QueueStorageDeadLetter(writes, sf.storage, out.uuid, queue.DLQReason{
				Reason: sf.f.text(), Chain: p.chain.Name, Step: sf.f.step, At: now,
			})
		}
	}
	for _, u := range out.drop {
		writes.Del(ctx, vconstore.Key(u))
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
		if !p.passThrough() {
			ss := p.spans.storage(s.sink.Name)
			_, sp := p.tracer.Start(ctx, ss.name, ss.opts...)
			spans = append(spans, sp)
		}
		body := s.body
		if body == nil {
			body = out.body
		}
		s.sink.Storage.(storage.Pipelined).AppendSave(writes, s.v, body)
	}
	// On one server the pushes follow the writes in the same script; a
	// cluster sends them in a round trip of their own, after the writes.
	pushes := writes
	if p.cluster {
		pushes = p.outcomePipeline()
	}
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
	pipes := []redis.Pipeliner{writes}
	if p.cluster {
		pipes = append(pipes, pushes)
		err := queue.ExecChecked(ctx, p.rdb, pipes...)
		endSpans(err)
		if err != nil {
			return err
		}
		pipes = []redis.Pipeliner{p.rdb.Pipeline()}
	}
	last := pipes[len(pipes)-1]
	if out.clearState {
		queue.QueueClearState(last, it)
	}
	p.worker.QueueDone(last, it)
	queueNext(last)
	err = queue.ExecChecked(ctx, p.rdb, pipes...)
	endSpans(err)
	if err == nil {
		for _, s := range out.pipelined {
			p.series.storage(p.metrics, p.chain.Name, s.sink.Name).success.Inc()
		}
		for _, sf := range out.storageDLQ {
			p.metrics.StorageDeadLetters.WithLabelValues(p.chain.Name, sf.storage).Inc()
			p.log.Warn("storage write dead-lettered; the vCon went on to egress", "uuid", out.uuid, "storage", sf.storage,
				"dlq", queue.StorageDLQKey(sf.storage), "reason", sf.f.reason)
		}
	}
	return err
}

func hasTTL(ttls []bodyTTL, uuid string) bool {
	for _, t := range ttls {
		if t.uuid == uuid {
			return true
		}
	}
	return false
}

// deadLetter writes the document its completed links left (when they ran
// in this run), puts the item on DLQ:{ingress} with its reason, the links
// it completed and its earlier attempts, gives the body the DLQ expiry,
// remembers the completed links for a replay, and takes it out of flight
// (last, in its own round trip on a cluster, so the DLQ entry exists
// before the in-flight one goes).
func (p *Processor) deadLetter(ctx context.Context, it queue.Item, f *failure, state queue.State, queueNext func(redis.Pipeliner) *queue.PendingTake) error {
	pipe := p.outcomePipeline()
	if err := p.queueProgress(ctx, pipe, it, f); err != nil {
		return err
	}
	queue.QueueDeadLetter(pipe, it, queue.DLQReason{
		Reason: f.text(), Chain: p.chain.Name, Step: f.step, At: time.Now().UTC(),
		Completed: f.completed, Attempts: state.Attempts,
	})
	p.bodies.QueueExpire(ctx, pipe, it.UUID, p.opts.DLQExpiry)
	if p.cluster {
		if err := queue.ExecChecked(ctx, p.rdb, pipe); err != nil {
			return err
		}
		pipe = p.rdb.Pipeline()
	}
	if !state.Empty() || len(f.completed) > 0 {
		queue.QueueKeepProgress(pipe, it, nil, f.completed, f.effects)
	}
	p.worker.QueueDone(pipe, it)
	queueNext(pipe)
	return queue.ExecChecked(ctx, p.rdb, pipe)
}

// scheduleRetry writes the document its completed links left, keeps the
// body for at least the wait plus the queued retention, and moves the item
// from flight to its list's retry set, due at due, with this attempt
// added to its attempts. The move is one step in the list's slot, so a
// crash leaves the vCon either in flight (reaped, run again) or waiting,
// never both.
func (p *Processor) scheduleRetry(ctx context.Context, it queue.Item, f *failure, state queue.State, due time.Time, queueNext func(redis.Pipeliner) *queue.PendingTake) error {
	pipe := p.outcomePipeline()
	if err := p.queueProgress(ctx, pipe, it, f); err != nil {
		return err
	}
	p.bodies.QueueExtend(ctx, pipe, it.UUID, p.opts.QueuedRetention+time.Until(due))
	if p.cluster {
		if err := queue.ExecChecked(ctx, p.rdb, pipe); err != nil {
			return err
		}
		pipe = p.rdb.Pipeline()
	}
	attempts := append(slices.Clone(state.Attempts), queue.Attempt{Reason: f.text(), Step: f.step, At: time.Now().UTC()})
	queue.QueueScheduleRetry(pipe, it, due, attempts, f.completed, f.effects)
	p.worker.QueueDone(pipe, it)
	queueNext(pipe)
	return queue.ExecChecked(ctx, p.rdb, pipe)
}

// queueProgress queues the write of a failed vCon's document as its
// completed links left it, when they ran in this run.
func (p *Processor) queueProgress(ctx context.Context, pipe redis.Pipeliner, it queue.Item, f *failure) error {
	if f.progress == nil {
		return nil
	}
	if f.progress.recache {
		return p.bodies.QueueCreate(ctx, pipe, it.UUID, f.progress.body, p.opts.ReadThroughTTL)
	}
	return p.bodies.QueuePut(ctx, pipe, it.UUID, f.progress.body, f.progress.prev)
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
	return sizedPipeline(p.rdb)
}

// pipelineRoom is how many commands sizedPipeline makes room for: a
// vCon's read (six) or the outcome of the usual chain (six, eight with a
// trace context to push).
const pipelineRoom = 8

// sizedPipeline is rdb.Pipeline() with room for pipelineRoom commands.
// Queued one at a time, the commands grew the pipeline's slice from one
// to eight in four allocations, per pipeline and vCon; queueing that many
// empty slots and discarding them sizes it in one. The pipeline is the
// same otherwise (Discard only empties its queue).
func sizedPipeline(rdb redis.UniversalClient) redis.Pipeliner {
	pipe := rdb.Pipeline()
	if pp, ok := pipe.(*redis.Pipeline); ok {
		var room [pipelineRoom]redis.Cmder
		_ = pp.BatchProcess(context.Background(), room[:]...)
		pp.Discard()
	}
	return pipe
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
