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
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/vcon-operator/vcon-operator/internal/apiwire"
	"github.com/vcon-operator/vcon-operator/internal/links"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/ratelimit"
	"github.com/vcon-operator/vcon-operator/internal/storage"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// Step is a configured link with its config name.
type Step struct {
	Name string
	Link links.Link
	// Originals are the storages that receive the unredacted original
	// when the link returns a Redacted vCon (links.OriginalStorer), and
	// nothing else of the chain.
	Originals []Sink
}

// LinkLimits bound a link's vendor calls within Budget, the Redis budget
// every worker running the link shares (limits: in the config).
type LinkLimits struct {
	ratelimit.Limits
	Budget string
}

// Sink is a configured storage with its config name.
type Sink = storage.Named

// Chain is what the processor runs for each vCon.
type Chain struct {
	Name     string
	Ingress  []string
	Egress   []string
	Links    []Step
	Storages []Sink
	// ReadFrom is where a body missing from Redis is read back from, in
	// order: every storage of the config, not only the chain's own, in
	// the file's order, as conserver reads back from its whole storages:
	// section (Build fills it; those that cannot read are passed over).
	ReadFrom []Sink
	// Limits are the limits of the links that have them, by link name.
	Limits map[string]LinkLimits
	// Timeout bounds links and storages for one vCon; 0 takes the
	// processor's DefaultTimeout (a chain is never unbounded).
	Timeout time.Duration
	// MaxDeliveries: a vCon whose deliveries ended this many times
	// without an outcome (each time its worker died) is dead-lettered
	// with reason redelivery_limit when taken again, instead of taking
	// down the next worker; 0 takes DefaultMaxDeliveries.
	MaxDeliveries int
	// Retry is when a failure that may pass is tried again later; the
	// zero policy dead-letters at the first failure.
	Retry RetryPolicy
	// StorageDeadLetters: a storage write that still fails after its
	// retries puts the uuid on that storage's DLQ (DLQ:storage:{name},
	// conserver's since its PR #197) and the vCon goes on to the other
	// storages and egress. False (the zero value) fails the whole vCon,
	// retried as Retry says and then dead-lettered before egress.
	StorageDeadLetters bool
}

// Options tune the processor; zero values take conserver's defaults.
type Options struct {
	// DLQExpiry becomes the body's TTL when it is dead-lettered (VCON_DLQ_EXPIRY).
	DLQExpiry time.Duration
	// ContextExpiry is the TTL of trace-context records written for egress
	// lists (VCON_CONTEXT_EXPIRY).
	ContextExpiry time.Duration
	// ReadThroughTTL is the TTL of a body re-cached from a storage, and the
	// one a body gets back at the end of its chains (VCON_REDIS_EXPIRY).
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
	// QueuedRetention is the least TTL a body keeps from the moment it is
	// taken until its outcome (VCON_QUEUED_RETENTION): a vCon in flight or
	// waiting for a retry never loses its body to the TTL the producer
	// gave it; a processed body whose TTL was no longer than that gets
	// ReadThroughTTL back.
	QueuedRetention time.Duration
	// SupportedExtensions are the extensions a vCon's critical list may
	// name (--supported-extensions, VCON_SUPPORTED_EXTENSIONS); a vCon
	// naming any other is dead-lettered as unsupported_critical before a
	// link runs. nil means vcon.DefaultSupportedExtensions.
	SupportedExtensions []string
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
	if o.QueuedRetention <= 0 {
		o.QueuedRetention = apiwire.DefaultQueuedRetention
	}
	if o.SupportedExtensions == nil {
		o.SupportedExtensions = vcon.DefaultSupportedExtensions
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
	series  *series
	log     *slog.Logger
	tracer  trace.Tracer
	spans   spanKit
	cluster bool
	// gates are the limiters of the links that have limits, by name.
	gates map[string]*ratelimit.Limiter

	// isolation lets a suspect (a vCon that was in flight when a worker
	// died) run alone: it takes the write lock, every other run a read
	// lock. A second death is then the suspect's alone.
	isolation sync.RWMutex

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
	if chain.MaxDeliveries <= 0 {
		chain.MaxDeliveries = DefaultMaxDeliveries
	}
	chain.Retry = chain.Retry.withDefaults()
	p := &Processor{
		running: map[uint64]time.Time{},
		gates:   map[string]*ratelimit.Limiter{},
		rdb:     rdb, bodies: bodies, worker: worker, chain: chain, opts: opts, metrics: m,
		log:     log.With("chain", chain.Name),
		tracer:  otel.Tracer("github.com/vcon-operator/vcon-operator/internal/pipeline"),
		spans:   newSpanKit(chain),
		cluster: queue.IsCluster(rdb),
	}
	linkNames := make([]string, len(chain.Links))
	for i, l := range chain.Links {
		linkNames[i] = l.Name
		if lim := chain.Limits[l.Name]; !lim.IsZero() {
			// The Chain is the party that shares the budget fairly with
			// other Chains; the lease is the heartbeat's, which renews it.
			p.gates[l.Name] = ratelimit.New(rdb, lim.Limits, ratelimit.Options{
				Budget: lim.Budget, Party: chain.Name, Holder: worker.ID(), Lease: worker.HeartbeatTTL(),
				Link: l.Name, Metrics: m.Limits,
			})
		}
	}
	storageNames := make([]string, 0, len(chain.Storages))
	for _, s := range chain.Storages {
		storageNames = append(storageNames, s.Name)
	}
	for _, l := range chain.Links {
		for _, s := range l.Originals {
			storageNames = append(storageNames, s.Name)
		}
	}
	m.init(chain.Name, linkNames, storageNames)
	p.series = m.newSeries(chain.Name, linkNames, storageNames)
	return p
}

// renewLimits extends the leases of the permits this worker holds, with
// its heartbeat.
func (p *Processor) renewLimits(ctx context.Context) error {
	var errs []error
	for _, g := range p.gates {
		errs = append(errs, g.Renew(ctx))
	}
	return errors.Join(errs...)
}

// started records a vCon's run from at; finished(id) ends the record.
// (An id rather than a func that ends it: that closure was an allocation
// per vCon.)
func (p *Processor) started(at time.Time) (id uint64) {
	p.runningMu.Lock()
	p.runSeq++
	id = p.runSeq
	p.running[id] = at
	p.runningMu.Unlock()
	return id
}

// finished ends the record started returned id for.
func (p *Processor) finished(id uint64) {
	p.runningMu.Lock()
	delete(p.running, id)
	p.runningMu.Unlock()
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
