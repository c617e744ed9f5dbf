package links

// AI usage per vCon: what each LLM and transcription call cost, recorded
// in the shape conserver's send_ai_usage_data_for_tracking posts
// (common/lib/ai_usage.py: created_at, record_id, type, sub_type,
// unit_type, input_units, output_units, ai_model). Each record is
// appended to the vCon's "ai_usage" attachment, counted in the
// vcon_ai_* metrics per chain, link and model, and, when the link has
// send_ai_usage_data_to_url, posted there as conserver does, one POST
// per call with ai_usage_api_token as a bearer token.
//
// A post that fails is logged and counted, and the vCon goes on: the
// record is on the vCon and in the metrics already, and failing the vCon
// would run the link again on a retry, paying the vendor a second time
// for the same work. conserver, too, only logs a refused post.

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/metrics"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vcon-operator/vcon-operator/internal/httpx"
	"github.com/vcon-operator/vcon-operator/internal/options"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// AIUsagePurpose is the purpose of the attachment that lists a vCon's AI
// usage records.
const AIUsagePurpose = "ai_usage"

// aiUsageType is conserver's record type for work done on a vCon.
const aiUsageType = "VCON_PROCESSING"

// The units of a record (conserver's unit_type).
const (
	unitTokens  = "tokens"
	unitSeconds = "seconds"
)

// usagePolicy is how a usage post is retried: briefly, since the vCon
// waits for it. Tests make its waits instant.
var usagePolicy = httpx.Policy{Retries: 2, Base: 500 * time.Millisecond, Max: 5 * time.Second, MaxRetryAfter: 5 * time.Second}

// usageTimeout bounds one usage post (conserver waits 30 s, once).
const usageTimeout = 10 * time.Second

// usageNow is the clock of created_at; tests fix it.
var usageNow = time.Now

// callUsage is what a vendor said one call cost: tokens, when it bills by
// token, and seconds of audio it heard, when it says.
type callUsage struct {
	inputTokens, outputTokens float64
	// tokens says the vendor reported tokens (zero tokens is a report).
	tokens  bool
	seconds float64
}

// add sums o into u (the parts of one recording).
func (u *callUsage) add(o callUsage) {
	u.inputTokens += o.inputTokens
	u.outputTokens += o.outputTokens
	u.tokens = u.tokens || o.tokens
	u.seconds += o.seconds
}

// aiUsageRecord is one call's cost, field for field what conserver posts.
type aiUsageRecord struct {
	CreatedAt   string `json:"created_at"`
	RecordID    string `json:"record_id"`
	Type        string `json:"type"`
	SubType     string `json:"sub_type"`
	UnitType    string `json:"unit_type"`
	InputUnits  int64  `json:"input_units"`
	OutputUnits int64  `json:"output_units"`
	AIModel     string `json:"ai_model"`
}

// usageReporter records the usage of one link's calls.
type usageReporter struct {
	chain, link, subType string
	metrics              *usageMetrics
	logger               *slog.Logger
	// target is empty when no usage URL is configured.
	target httpx.Target
	post   httpx.Post
}

// newUsageReporter reads conserver's usage options from o. subType is
// conserver's sub_type for the link (ANALYZE, OPENAI_TRANSCRIBE, ...).
func newUsageReporter(link, subType string, o *options.Reader, deps Deps) (*usageReporter, error) {
	m, err := newUsageMetrics(deps.Metrics)
	if err != nil {
		return nil, err
	}
	r := &usageReporter{chain: deps.Chain, link: link, subType: subType, metrics: m, logger: deps.Logger}
	if r.logger == nil {
		r.logger = slog.Default()
	}
	if raw := o.URL("send_ai_usage_data_to_url", ""); raw != "" {
		if t, err := httpx.ParseTarget(raw); err == nil {
			r.target = t
		}
	}
	token := o.Secret("ai_usage_api_token")
	r.post = httpx.Post{Client: deps.HTTP, Timeout: usageTimeout}
	if token != "" {
		r.post.Headers = map[string]string{"Authorization": "Bearer " + token}
	}
	return r, nil
}

// recordTokens records a call billed by token.
func (r *usageReporter) recordTokens(ctx context.Context, v *vcon.VCon, model string, input, output float64) {
	r.metrics.tokens.WithLabelValues(r.chain, r.link, model, "input").Add(input)
	r.metrics.tokens.WithLabelValues(r.chain, r.link, model, "output").Add(output)
	r.record(ctx, v, model, unitTokens, input, output)
}

// recordTranscription records a transcription: by token when the vendor
// counted tokens (gpt-4o-transcribe), else by the seconds of audio
// (Deepgram, whisper-1, Groq). The seconds are counted either way.
func (r *usageReporter) recordTranscription(ctx context.Context, v *vcon.VCon, model string, u callUsage, seconds float64) {
	r.metrics.audioSeconds.WithLabelValues(r.chain, r.link, model).Add(seconds)
	if u.tokens {
		r.recordTokens(ctx, v, model, u.inputTokens, u.outputTokens)
		return
	}
	r.record(ctx, v, model, unitSeconds, seconds, 0)
}

func (r *usageReporter) record(ctx context.Context, v *vcon.VCon, model, unit string, input, output float64) {
	rec := aiUsageRecord{
		// Python's isoformat() of an aware UTC time, with Z for +00:00.
		CreatedAt: usageNow().UTC().Format("2006-01-02T15:04:05.000000Z"),
		RecordID:  v.UUID(),
		Type:      aiUsageType,
		SubType:   r.subType,
		UnitType:  unit,
		// conserver posts whole units (Deepgram's seconds rounded).
		InputUnits:  int64(math.Round(input)),
		OutputUnits: int64(math.Round(output)),
		AIModel:     model,
	}
	addAIUsage(v, rec)
	if r.target.URL == "" {
		return
	}
	body, _ := json.Marshal(rec) // strings and integers always encode
	attempts, err := httpx.Retry(ctx, usagePolicy, func(ctx context.Context) error {
		return r.post.Send(ctx, r.target, v.UUID(), body)
	})
	if err != nil {
		r.metrics.posts.WithLabelValues(r.chain, r.link, "failed").Inc()
		r.logger.Warn("AI usage not delivered to send_ai_usage_data_to_url; the vCon goes on",
			"link", r.link, "vcon", v.UUID(), "attempts", attempts, "error", err)
		return
	}
	r.metrics.posts.WithLabelValues(r.chain, r.link, "ok").Inc()
}

// addAIUsage appends rec to the vCon's ai_usage attachment, creating it.
// The body is a JSON list of records, encoding "json", as tags are kept.
func addAIUsage(v *vcon.VCon, rec aiUsageRecord) {
	var att map[string]any
	for _, a := range v.List(vcon.Attachments) {
		if a["purpose"] == AIUsagePurpose {
			att = a
			break
		}
	}
	if att == nil {
		att = map[string]any{"purpose": AIUsagePurpose}
		v.Append(vcon.Attachments, att)
	}
	var records []any
	if body, ok := decodedBody(att).([]any); ok {
		records = body
	}
	records = append(records, rec)
	att["body"] = jsonString(records)
	att["encoding"] = "json"
}

// usageMetrics are the AI usage counters. The names and labels are in
// docs/monitoring.md and the chart's dashboard: keep them.
type usageMetrics struct {
	tokens, audioSeconds, posts *prometheus.CounterVec
}

func newUsageMetrics(reg prometheus.Registerer) (*usageMetrics, error) {
	m := &usageMetrics{
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vcon_ai_tokens_total",
			Help: "Tokens that LLM and transcription calls were billed, by chain, link, model and kind (input or output).",
		}, []string{"chain", "link", "model", "kind"}),
		audioSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vcon_ai_audio_seconds_total",
			Help: "Seconds of audio sent to transcription vendors, by chain, link and model.",
		}, []string{"chain", "link", "model"}),
		posts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vcon_ai_usage_posts_total",
			Help: "AI usage records posted to send_ai_usage_data_to_url, by chain, link and outcome (ok or failed).",
		}, []string{"chain", "link", "outcome"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	for _, c := range []**prometheus.CounterVec{&m.tokens, &m.audioSeconds, &m.posts} {
		if *c, err = metrics.RegisterOnce(reg, *c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
