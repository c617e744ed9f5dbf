package ratelimit

import (
	"time"

	"github.com/vcon-operator/vcon-operator/internal/metrics"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the per-Link series of the limiters of one process. The
// names are in docs/monitoring.md and the chart's alerts: keep them.
type Metrics struct {
	throttledC *prometheus.CounterVec
	inUse      *prometheus.GaugeVec
	effectiveG *prometheus.GaugeVec
	wait       *prometheus.HistogramVec
	deniedC    *prometheus.CounterVec
}

// NewMetrics registers the collectors on reg (once: a second call with the
// same registerer reuses them). A nil reg counts into collectors nobody
// scrapes.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		throttledC: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vcon_link_throttled_total",
			Help: "Calls a link's vendor refused as too many (HTTP 429), each of which slowed the link's shared budget.",
		}, []string{"link"}),
		inUse: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vcon_link_permits_in_use",
			Help: "Concurrency permits of a link's budget this process holds (sum over pods for the fleet).",
		}, []string{"link"}),
		effectiveG: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vcon_link_effective_rate_per_minute",
			Help: "What a link's shared budget allows now, per minute, after the vendor's 429s (dimension requests or tokens).",
		}, []string{"link", "dimension"}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vcon_link_limit_wait_seconds",
			Help:    "How long calls of a link waited for its limits before they were sent.",
			Buckets: []float64{0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"link"}),
		deniedC: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vcon_link_limit_waits_total",
			Help: "Times a call of a link was told to wait, by the limit that held it (requests, tokens, concurrency, retry_after, fairness).",
		}, []string{"link", "reason"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.throttledC, err = metrics.RegisterOnce(reg, m.throttledC); err != nil {
		return nil, err
	}
	if m.inUse, err = metrics.RegisterOnce(reg, m.inUse); err != nil {
		return nil, err
	}
	if m.effectiveG, err = metrics.RegisterOnce(reg, m.effectiveG); err != nil {
		return nil, err
	}
	if m.wait, err = metrics.RegisterOnce(reg, m.wait); err != nil {
		return nil, err
	}
	if m.deniedC, err = metrics.RegisterOnce(reg, m.deniedC); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Metrics) effective(link string, l Limits, factor float64) {
	if m == nil {
		return
	}
	if l.RequestsPerMinute > 0 {
		m.effectiveG.WithLabelValues(link, "requests").Set(float64(l.RequestsPerMinute) * factor)
	}
	if l.TokensPerMinute > 0 {
		m.effectiveG.WithLabelValues(link, "tokens").Set(float64(l.TokensPerMinute) * factor)
	}
}

func (m *Metrics) granted(link string, waited time.Duration, permit bool) {
	if m == nil {
		return
	}
	m.wait.WithLabelValues(link).Observe(waited.Seconds())
	if permit {
		m.inUse.WithLabelValues(link).Inc()
	}
}

func (m *Metrics) released(link string, permit bool) {
	if m != nil && permit {
		m.inUse.WithLabelValues(link).Dec()
	}
}

func (m *Metrics) denied(link, why string) {
	if m != nil {
		m.deniedC.WithLabelValues(link, why).Inc()
	}
}

func (m *Metrics) throttled(link string) {
	if m != nil {
		m.throttledC.WithLabelValues(link).Inc()
	}
}
