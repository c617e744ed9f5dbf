package pipeline

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vcon-operator/vcon-operator/internal/links"
	"github.com/vcon-operator/vcon-operator/internal/ratelimit"
)

// Dead-letter reasons, a bounded set for the reason label. The full reason
// text is recorded beside the uuid (queue.DLQReason), never in a label.
const (
	ReasonTimeout      = "timeout"
	ReasonNotFound     = "not_found"
	ReasonMalformed    = "malformed"
	ReasonLinkError    = "link_error"
	ReasonStorageError = "storage_error"
	// ReasonOutcomeFailed: Redis refused the vCon's outcome (an egress list
	// or storage key holds another type); the text names the key.
	ReasonOutcomeFailed = "outcome_failed"
	// ReasonTooLarge: the body is over the worker's size limit and was not
	// read.
	ReasonTooLarge = "too_large"
	// ReasonRedeliveryLimit: the vCon was delivered Chain.MaxDeliveries
	// times without an outcome (a poison pill that kills its worker).
	ReasonRedeliveryLimit = "redelivery_limit"
	// ReasonPanic: a link or storage panicked on the vCon.
	ReasonPanic = "panic"
	// ReasonWrongForm: the vCon reached a link that cannot work on its
	// form (a signed or encrypted vCon at a link that reads content, an
	// unsigned one at links.encrypt).
	ReasonWrongForm = "wrong_form"
	// ReasonSignatureInvalid and ReasonDecryptionFailed are given by
	// links.verify and links.decrypt (links.ReasonError).
	ReasonSignatureInvalid = links.ReasonSignatureInvalid
	ReasonDecryptionFailed = links.ReasonDecryptionFailed
	// ReasonUnsupportedCritical: the vCon's critical list names an
	// extension the worker does not support (Options.SupportedExtensions);
	// the draft forbids processing it, so no link ran.
	ReasonUnsupportedCritical = "unsupported_critical"
)

// reasons are every dead-letter reason, for series that exist at zero.
var reasons = []string{ReasonTimeout, ReasonNotFound, ReasonMalformed, ReasonLinkError, ReasonStorageError, ReasonOutcomeFailed, ReasonTooLarge, ReasonRedeliveryLimit, ReasonPanic, ReasonWrongForm, ReasonSignatureInvalid, ReasonDecryptionFailed, ReasonUnsupportedCritical}

// Outcomes of a link or a storage write, for the outcome label.
const (
	OutcomeContinue = "continue"
	OutcomeForward  = "forward" // continued with another uuid
	OutcomeRedact   = "redact"  // continued with a redacted copy
	OutcomeHalt     = "halt"
	OutcomeError    = "error"
	OutcomeSuccess  = "success"
	OutcomeRetry    = "retry"
	OutcomeFailure  = "failure"
)

// Metrics are the worker's Prometheus series. The two counters the
// monitoring guide divides (errors / processed) carry exactly the same
// label names, so the division matches series one to one. Labels are
// bounded: chain, link and storage names come from the config, never a uuid.
type Metrics struct {
	Processed       *prometheus.CounterVec
	Errors          *prometheus.CounterVec
	Duration        *prometheus.HistogramVec
	LinkDuration    *prometheus.HistogramVec
	LinkOutcomes    *prometheus.CounterVec
	StorageWrites   *prometheus.CounterVec
	StorageDuration *prometheus.HistogramVec
	DeadLetters     *prometheus.CounterVec
	InFlight        *prometheus.GaugeVec
	Reaped          *prometheus.CounterVec
	Orphans         *prometheus.CounterVec
	OutcomeRefusals *prometheus.CounterVec
	Panics          *prometheus.CounterVec
	RetriesAsked    *prometheus.CounterVec
	// StorageDeadLetters counts the failed writes put on a storage's DLQ.
	StorageDeadLetters *prometheus.CounterVec
	// Limits are the per-Link series of the links' limiters.
	Limits *ratelimit.Metrics
}

// NewMetrics creates the series and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	buckets := []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	m := &Metrics{
		Processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vcon_processed_total",
			Help: "vCons that finished their chain, whatever the outcome (stored, filtered or dead-lettered).",
		}, []string{"chain"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vcon_processing_errors_total",
			Help: "vCons that were dead-lettered.",
		}, []string{"chain"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vcon_processing_duration_seconds",
			Help:    "Time from taking a vCon to finishing it.",
			Buckets: buckets,
		}, []string{"chain"}),
		LinkDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vcon_link_duration_seconds",
			Help:    "Time one link took on one vCon.",
			Buckets: buckets,
		}, []string{"chain", "link"}),
		LinkOutcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vcon_link_outcomes_total",
			Help: "Link results by outcome (continue, forward, halt, error).",
		}, []string{"chain", "link", "outcome"}),
		StorageWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vcon_storage_writes_total",
			Help: "Storage write attempts by outcome (success, retry, failure).",
		}, []string{"chain", "storage", "outcome"}),
		StorageDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vcon_storage_write_duration_seconds",
			Help:    "Time one storage write attempt took.",
			Buckets: buckets,
		}, []string{"chain", "storage"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vcon_dead_letters_total",
			Help: "vCons dead-lettered, by reason (timeout, not_found, malformed, link_error, storage_error, outcome_failed, too_large, redelivery_limit, panic).",
		}, []string{"chain", "reason"}),
		InFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vcon_worker_inflight",
			Help: "vCons this worker process is working on.",
		}, []string{"chain"}),
		Reaped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vcon_worker_reaped_total",
			Help: "In-flight vCons of dead workers this worker returned to their ingress list.",
		}, []string{"chain"}),
		Orphans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vcon_worker_orphans_returned_total",
			Help: "vCons found in this worker's own in-flight list without the worker holding them (a take whose reply was lost), returned to their ingress list.",
		}, []string{"chain"}),
		OutcomeRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vcon_worker_outcome_refusals_total",
			Help: "Outcome writes Redis refused (a list or key of another type): the vCon is dead-lettered, or kept in flight when its DLQ is the key at fault.",
		}, []string{"chain"}),
	}
	m.Panics = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vcon_worker_panics_total",
		Help: "Panics in a link or storage the worker recovered from (the vCon was dead-lettered with reason panic).",
	}, []string{"chain"})
	m.RetriesAsked = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vcon_retries_scheduled_total",
		Help: "vCons that failed for a reason that may pass and wait in their ingress list's retry set, by reason.",
	}, []string{"chain", "reason"})
	m.StorageDeadLetters = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vcon_storage_dead_letters_total",
		Help: "Storage writes that failed for good and were put on DLQ:storage:{storage} while the vCon went on to egress (storage_failure dead_letter_storage).",
	}, []string{"chain", "storage"})
	reg.MustRegister(m.Processed, m.Errors, m.Duration, m.LinkDuration, m.LinkOutcomes,
		m.StorageWrites, m.StorageDuration, m.DeadLetters, m.InFlight, m.Reaped, m.Orphans, m.OutcomeRefusals,
		m.Panics, m.RetriesAsked, m.StorageDeadLetters)
	limits, err := ratelimit.NewMetrics(reg)
	if err != nil {
		panic(err) // as MustRegister above: a name clash is a programming error
	}
	m.Limits = limits
	return m
}

// init makes the series of a chain exist at zero from the start, so rate()
// and the error ratio are defined before the first vCon or error.
func (m *Metrics) init(chain string, linkNames, storageNames []string) {
	m.Processed.WithLabelValues(chain)
	m.Errors.WithLabelValues(chain)
	m.InFlight.WithLabelValues(chain)
	m.Reaped.WithLabelValues(chain)
	m.Orphans.WithLabelValues(chain)
	m.OutcomeRefusals.WithLabelValues(chain)
	m.Panics.WithLabelValues(chain)
	for _, r := range reasons {
		m.DeadLetters.WithLabelValues(chain, r)
	}
	for _, l := range linkNames {
		for _, o := range []string{OutcomeContinue, OutcomeHalt, OutcomeError} {
			m.LinkOutcomes.WithLabelValues(chain, l, o)
		}
	}
	for _, s := range storageNames {
		for _, o := range []string{OutcomeSuccess, OutcomeRetry, OutcomeFailure} {
			m.StorageWrites.WithLabelValues(chain, s, o)
		}
		m.StorageDeadLetters.WithLabelValues(chain, s)
	}
}

// series are the handles of one chain's per-vCon series, looked up once
// per processor: WithLabelValues hashes its labels and takes a lock on
// every call, which a worker paid about seven times per vCon. A series
// that init does not make exist at zero is resolved at its first use, as
// WithLabelValues would, so /metrics lists the same series at every
// moment.
type series struct {
	inFlight  prometheus.Gauge
	processed prometheus.Counter
	duration  lazySeries[prometheus.Observer]
	links     map[string]*linkHandles
	storages  map[string]*storageHandles
}

// linkHandles are one link's series.
type linkHandles struct {
	duration lazySeries[prometheus.Observer]
	outcomes map[string]*lazySeries[prometheus.Counter]
}

// storageHandles are one storage's series.
type storageHandles struct {
	duration                lazySeries[prometheus.Observer]
	success, retry, failure prometheus.Counter
}

// lazySeries is a series resolved on first use.
type lazySeries[T any] struct {
	once    sync.Once
	resolve func() T
	handle  T
}

func newLazy[T any](resolve func() T) lazySeries[T] { return lazySeries[T]{resolve: resolve} }

func (l *lazySeries[T]) get() T {
	l.once.Do(func() { l.handle = l.resolve() })
	return l.handle
}

// linkOutcomes are the outcomes a link's run ends with (runLink).
var linkOutcomes = []string{OutcomeContinue, OutcomeForward, OutcomeRedact, OutcomeHalt, OutcomeError}

// newSeries resolves chain's series; init must have run.
func (m *Metrics) newSeries(chain string, linkNames, storageNames []string) *series {
	s := &series{
		inFlight:  m.InFlight.WithLabelValues(chain),
		processed: m.Processed.WithLabelValues(chain),
		duration:  newLazy(func() prometheus.Observer { return m.Duration.WithLabelValues(chain) }),
		links:     make(map[string]*linkHandles, len(linkNames)),
		storages:  make(map[string]*storageHandles, len(storageNames)),
	}
	for _, l := range linkNames {
		ls := &linkHandles{
			duration: newLazy(func() prometheus.Observer { return m.LinkDuration.WithLabelValues(chain, l) }),
			outcomes: make(map[string]*lazySeries[prometheus.Counter], len(linkOutcomes)),
		}
		for _, o := range linkOutcomes {
			c := newLazy(func() prometheus.Counter { return m.LinkOutcomes.WithLabelValues(chain, l, o) })
			ls.outcomes[o] = &c
		}
		s.links[l] = ls
	}
	for _, st := range storageNames {
		s.storages[st] = &storageHandles{
			duration: newLazy(func() prometheus.Observer { return m.StorageDuration.WithLabelValues(chain, st) }),
			success:  m.StorageWrites.WithLabelValues(chain, st, OutcomeSuccess),
			retry:    m.StorageWrites.WithLabelValues(chain, st, OutcomeRetry),
			failure:  m.StorageWrites.WithLabelValues(chain, st, OutcomeFailure),
		}
	}
	return s
}

// link is the series of the link named name (every link of the chain has
// them; another name, never seen, gets its own).
func (s *series) link(m *Metrics, chain, name string) *linkHandles {
	if ls, ok := s.links[name]; ok {
		return ls
	}
	return m.newSeries(chain, []string{name}, nil).links[name]
}

// storage is link's counterpart for storages.
func (s *series) storage(m *Metrics, chain, name string) *storageHandles {
	if ss, ok := s.storages[name]; ok {
		return ss
	}
	return m.newSeries(chain, nil, []string{name}).storages[name]
}
