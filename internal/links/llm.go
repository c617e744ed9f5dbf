package links

// What the LLM links (links.analyze, analyze_and_label, check_and_tag,
// analyze_vcon) share: the options they all read, conserver's only_if and
// sampling_rate filters, and the per-dialog walk.

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"

	"github.com/vcon-operator/vcon-operator/internal/openai"
	"github.com/vcon-operator/vcon-operator/internal/options"
	"github.com/vcon-operator/vcon-operator/internal/secrets"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// llmDefaults are one module's conserver defaults.
type llmDefaults struct {
	prompt, analysisType, model, systemPrompt string
	temperature                               *float64
	sourceType, textLocation                  string
	jsonResponse                              bool
	// usageSubType is the sub_type of the link's AI usage records.
	usageSubType string
}

// llmLink is what every LLM link reads from its options.
type llmLink struct {
	name     string
	logger   *slog.Logger
	client   *openai.Client
	usage    *usageReporter
	onlyIf   *onlyIfFilter
	sampling samplingRate

	prompt, analysisType, model, systemPrompt string
	temperature                               *float64
	responseFormat                            any
	sourceType, textLocation                  string
}

func floatPtr(f float64) *float64 { return &f }

// newLLMLink reads the options every LLM link shares from o; the caller
// reads its own and returns o.Err().
func newLLMLink(name string, o *options.Reader, deps Deps, def llmDefaults) (*llmLink, error) {
	l := &llmLink{name: name, logger: deps.Logger}
	if l.logger == nil {
		l.logger = slog.Default()
	}
	var err error
	if l.client, err = newLLMClient(name, o, deps); err != nil {
		return nil, err
	}
	if l.usage, err = newUsageReporter(name, def.usageSubType, o, deps); err != nil {
		return nil, err
	}
	l.onlyIf = parseOnlyIf(o)
	l.sampling = parseSamplingRate(o)
	l.prompt = o.String("prompt", def.prompt)
	l.analysisType = o.String("analysis_type", def.analysisType)
	l.model = o.String("model", def.model)
	l.systemPrompt = o.String("system_prompt", def.systemPrompt)
	for _, s := range []struct{ key, value string }{{"analysis_type", l.analysisType}, {"model", l.model}} {
		if s.value == "" && o.Has(s.key) {
			o.Failf(s.key, "must not be empty")
		}
	}
	l.temperature = def.temperature
	if o.Has("temperature") {
		t := o.Float("temperature", 0)
		l.temperature = &t
	}
	if def.jsonResponse {
		l.responseFormat = map[string]any{"type": "json_object"}
	}
	if o.Has("response_format") {
		if rf, ok := o.Raw("response_format").(map[string]any); ok {
			l.responseFormat = rf
		} else {
			o.Fail("response_format", "a map like {type: json_object}")
		}
	}
	src := o.Map("source")
	l.sourceType = src.String("analysis_type", def.sourceType)
	l.textLocation = src.String("text_location", def.textLocation)
	return l, nil
}

// selected applies only_if and sampling_rate, logging why a vCon is skipped.
func (l *llmLink) selected(v *vcon.VCon) bool {
	if !l.onlyIf.included(v) {
		l.logger.Info("link skipped: only_if did not match", "link", l.name, "vcon", v.UUID())
		return false
	}
	if !l.sampling.pick() {
		l.logger.Info("link skipped: not sampled", "link", l.name, "vcon", v.UUID())
		return false
	}
	return true
}

// eachSource calls fn for every dialog that has source text and no analysis
// of the link's type yet, in dialog order (conserver's loop).
func (l *llmLink) eachSource(ctx context.Context, v *vcon.VCon, fn func(index int, text string) error) error {
	for index := range v.List(vcon.Dialog) {
		if err := ctx.Err(); err != nil {
			return err
		}
		src := vcon.FindAnalysis(v, index, l.sourceType)
		if src == nil {
			l.logger.Debug("dialog has no source analysis", "link", l.name, "vcon", v.UUID(), "dialog", index, "source_type", l.sourceType)
			continue
		}
		text := textAt(src, l.textLocation)
		if text == "" {
			l.logger.Warn("source analysis has no text at text_location", "link", l.name, "vcon", v.UUID(), "dialog", index, "text_location", l.textLocation)
			continue
		}
		if vcon.FindAnalysis(v, index, l.analysisType) != nil {
			l.logger.Debug("dialog already analysed", "link", l.name, "vcon", v.UUID(), "dialog", index, "analysis_type", l.analysisType)
			continue
		}
		if err := fn(index, text); err != nil {
			return fmt.Errorf("dialog %d: %w", index, err)
		}
	}
	return nil
}

// chat asks the model and records on v what the call cost.
func (l *llmLink) chat(ctx context.Context, v *vcon.VCon, req openai.ChatRequest) (string, error) {
	answer, err := l.client.Chat(ctx, req)
	if err != nil {
		return "", err
	}
	var input, output float64
	if u := answer.Usage; u != nil {
		input, output = u.PromptTokens, u.CompletionTokens
	}
	l.usage.recordTokens(ctx, v, req.Model, input, output)
	return answer.Content, nil
}

func (l *llmLink) request(system, user string) openai.ChatRequest {
	return openai.ChatRequest{
		Model: l.model,
		Messages: []openai.Message{
			{Role: "system", Content: system},
			{Role: "user", Content: user},
		},
		Temperature:    l.temperature,
		ResponseFormat: l.responseFormat,
	}
}

// included applies an only_if filter (nil passes everything).
func (f *onlyIfFilter) included(v *vcon.VCon) bool {
	if f == nil {
		return true
	}
	for _, e := range v.List(f.section) {
		if f.section == vcon.Attachments {
			if e["purpose"] != f.target && e["type"] != f.target {
				continue
			}
		} else if e["type"] != f.target {
			continue
		}
		if f.target == "tags" {
			if tags, ok := decodedBody(e).([]any); ok {
				for _, t := range tags {
					if t == f.includes {
						return true
					}
				}
			}
			continue
		}
		if s, ok := e["body"].(string); ok && strings.Contains(s, f.includes) {
			return true
		}
	}
	return false
}

// onlyIfFilter is conserver's vCon-level filter: run the link only when some
// entry of `section` (analysis or attachments) with type/purpose `target`
// has a string body containing `includes`; for tags, when the tag list holds
// `includes` exactly.
type onlyIfFilter struct {
	section, target, includes string
}

func parseOnlyIf(o *options.Reader) *onlyIfFilter {
	m := o.Map("only_if")
	if m.Empty() {
		return nil
	}
	f := &onlyIfFilter{section: m.String("section", ""), target: m.First("purpose", "type"), includes: m.String("includes", "")}
	if f.section != "analysis" && f.section != "attachments" {
		m.Fail("section", `"analysis" or "attachments"`)
	}
	if !m.Has("includes") {
		m.Failf("includes", "required")
	}
	return f
}

// samplingRate is conserver's sampling_rate: a rate in (0,1) runs the link on
// that fraction of vCons; 0 or absent (and 1) means always.
type samplingRate float64

// samplingRandom is replaced by tests.
var samplingRandom = rand.Float64

func parseSamplingRate(o *options.Reader) samplingRate {
	r := o.Float("sampling_rate", 1)
	if r < 0 || r > 1 {
		o.Fail("sampling_rate", "a number between 0 and 1")
		return 1
	}
	return samplingRate(r)
}

func (s samplingRate) pick() bool {
	return s == 0 || samplingRandom() < float64(s)
}

// sensitiveOption says whether an option must stay out of anything written
// into a vCon (vendor_schema) or a log: credentials, and endpoints, which may
// carry tokens in their paths.
func sensitiveOption(key string) bool {
	if secrets.IsCredentialKey(key) {
		return true
	}
	// Where the vendor lives is not the vCon's business either: an
	// internal host name, or a URL that carries a token in its query.
	k := strings.ToLower(key)
	return strings.Contains(k, "url") || strings.Contains(k, "endpoint")
}

// publicOptions copies opts without sensitive keys, for vendor_schema.
func publicOptions(opts map[string]any) map[string]any {
	out := make(map[string]any, len(opts))
	for k, v := range opts {
		if !sensitiveOption(k) {
			out[k] = v
		}
	}
	return out
}
