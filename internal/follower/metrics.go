package follower

import (
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vcon-operator/vcon-operator/internal/httpx"
)

// Outcomes of a followed vCon, for the outcome label.
const (
	// OutcomeFollowed: written here and queued on every ingress list.
	OutcomeFollowed = "followed"
	// OutcomeDeadLettered: upstream could not give it, or Redis refused
	// to queue it; it is on DLQ:{first ingress list} with the reason.
	OutcomeDeadLettered = "dead_lettered"
	// OutcomeReturned: popped, not recordable here, pushed back upstream.
	OutcomeReturned = "returned"
	// OutcomeLost: popped, and neither recorded here nor pushed back; the
	// error log names the uuids.
	OutcomeLost = "lost"
)

// Reasons a poll stopped, for the reason label. Every one leaves the
// pending vCons for the next poll.
const (
	ErrUnauthorized  = "unauthorized"         // upstream refused the token (401, 403)
	ErrUpstream      = "upstream_error"       // upstream answered another error status
	ErrUnavailable   = "upstream_unreachable" // no answer: network, timeout
	ErrInvalidAnswer = "invalid_answer"       // the egress answer is not a list of uuids
	ErrLocalRedis    = "local_redis"          // the local Redis failed, or the lease was lost
)

var (
	outcomes = []string{OutcomeFollowed, OutcomeDeadLettered, OutcomeReturned, OutcomeLost}
	reasons  = []string{ErrUnauthorized, ErrUpstream, ErrUnavailable, ErrInvalidAnswer, ErrLocalRedis}
)

// Metrics are the followers' series, labelled by follower name.
type Metrics struct {
	vcons   *prometheus.CounterVec
	errors  *prometheus.CounterVec
	pending *prometheus.GaugeVec
	leader  *prometheus.GaugeVec
}

// NewMetrics registers the followers' series on reg (none when nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		vcons: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vcon_follower_vcons_total",
			Help: "vCons a follower popped upstream, by outcome: followed (queued here), dead_lettered, returned (pushed back upstream), lost.",
		}, []string{"follower", "outcome"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vcon_follower_errors_total",
			Help: "Follower polls stopped by an error, by reason; pending vCons wait for the next poll.",
		}, []string{"follower", "reason"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vcon_follower_pending",
			Help: "vCons a follower popped upstream and has not yet queued here or dead-lettered.",
		}, []string{"follower"}),
		leader: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vcon_follower_leader",
			Help: "1 when this worker holds the follower's lease and polls upstream.",
		}, []string{"follower"}),
	}
	if reg != nil {
		reg.MustRegister(m.vcons, m.errors, m.pending, m.leader)
	}
	return m
}

// init makes a follower's series exist at zero.
func (m *Metrics) init(name string) {
	for _, o := range outcomes {
		m.vcons.WithLabelValues(name, o)
	}
	for _, r := range reasons {
		m.errors.WithLabelValues(name, r)
	}
	m.pending.WithLabelValues(name)
	m.leader.WithLabelValues(name)
}

func (m *Metrics) error(name, reason string) { m.errors.WithLabelValues(name, reason).Inc() }

// upstreamReason classifies a failed upstream call.
func upstreamReason(err error) string {
	var se *httpx.StatusError
	switch {
	case errors.As(err, &se) && (se.Status == http.StatusUnauthorized || se.Status == http.StatusForbidden):
		return ErrUnauthorized
	case errors.As(err, &se):
		return ErrUpstream
	}
	return ErrUnavailable
}
