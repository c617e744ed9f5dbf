package links

import (
	"github.com/vcon-operator/vcon-operator/internal/metrics"

	"github.com/prometheus/client_golang/prometheus"
)

// vendorMetrics count what the links that call model and transcription
// vendors spend. The names and labels are in docs and alerts: keep them.
type vendorMetrics struct {
	requests, tokens *prometheus.CounterVec
}

// newVendorMetrics registers the collectors on reg once: every link asks,
// and a second registration reuses the first one's collectors. A nil reg
// counts into collectors nobody scrapes (a factory called without New).
func newVendorMetrics(reg prometheus.Registerer) (*vendorMetrics, error) {
	m := &vendorMetrics{
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vcon_llm_tokens_total",
			Help: "Tokens reported by model vendors, by link name, configured model and kind (prompt or completion).",
		}, []string{"link", "model", "kind"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vcon_llm_requests_total",
			Help: "HTTP requests to model vendors, by link name, configured model and outcome (ok, rate_limited, server_error, client_error, transport_error, invalid_response).",
		}, []string{"link", "model", "outcome"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.tokens, err = metrics.RegisterOnce(reg, m.tokens); err != nil {
		return nil, err
	}
	if m.requests, err = metrics.RegisterOnce(reg, m.requests); err != nil {
		return nil, err
	}
	return m, nil
}

// forLink labels the counters with one link's name.
func (m *vendorMetrics) forLink(link string) linkMetrics { return linkMetrics{m: m, link: link} }

// linkMetrics is one link's view of vendorMetrics (an openai.Metrics).
type linkMetrics struct {
	m    *vendorMetrics
	link string
}

func (l linkMetrics) Request(model, outcome string) {
	l.m.requests.WithLabelValues(l.link, model, outcome).Inc()
}

func (l linkMetrics) Tokens(model string, prompt, completion float64) {
	l.m.tokens.WithLabelValues(l.link, model, "prompt").Add(prompt)
	l.m.tokens.WithLabelValues(l.link, model, "completion").Add(completion)
}

// recorder is Request for one model, as httpx.Call.Record wants it.
func (l linkMetrics) recorder(model string) func(outcome string) {
	return func(outcome string) { l.Request(model, outcome) }
}

// toleratedErrors counts the failures a link with strict: false logged and
// went on from, as conserver does (a jq program that raised filters its
// vCon out, a webhook's non-2xx answer is passed over). The vCon leaves no
// dead letter, so this counter is where such failures show.
func toleratedErrors(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vcon_link_tolerated_errors_total",
		Help: "Failures a link with strict: false logged and went on from, as conserver does, by link name and kind (jq_error: the vCon was filtered out; webhook_answer: a non-2xx answer, the chain went on).",
	}, []string{"link", "kind"})
	if reg == nil {
		return c, nil
	}
	return metrics.RegisterOnce(reg, c)
}
