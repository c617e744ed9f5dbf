package links

// links.analyze: for each dialog, send the text of its source analysis (a
// transcript by default) to a chat model with a prompt and append the answer
// as a new analysis. conserver's module of the same name; its siblings
// analyze_and_label and check_and_tag share the per-dialog walk below.

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/vcon-operator/vcon-operator/internal/openai"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

func init() { Register("links.analyze", newAIAnalyze) }

// aiLLMDefaults are one module's conserver defaults.
type aiLLMDefaults struct {
	prompt, analysisType, model, systemPrompt string
	temperature                               *float64
	sourceType, textLocation                  string
	jsonResponse                              bool
}

// aiLLM is what every LLM link reads from its options.
type aiLLM struct {
	name     string
	logger   *slog.Logger
	client   *openai.Client
	onlyIf   *aiOnlyIf
	sampling aiSampler

	prompt, analysisType, model, systemPrompt string
	temperature                               *float64
	responseFormat                            any
	sourceType, textLocation                  string
}

func aiFloatPtr(f float64) *float64 { return &f }

func newAILLM(name string, raw map[string]any, deps Deps, def aiLLMDefaults) (*aiLLM, error) {
	o := aiOpts(raw)
	l := &aiLLM{name: name, logger: deps.Logger}
	if l.logger == nil {
		l.logger = slog.Default()
	}
	var err error
	if l.client, err = newLLMClient(name, o, deps); err != nil {
		return nil, err
	}
	if l.onlyIf, err = aiParseOnlyIf(o); err != nil {
		return nil, err
	}
	if l.sampling, err = aiParseSampling(o); err != nil {
		return nil, err
	}
	for _, s := range []struct {
		dst      *string
		key, def string
		required bool
	}{
		{&l.prompt, "prompt", def.prompt, false},
		{&l.analysisType, "analysis_type", def.analysisType, true},
		{&l.model, "model", def.model, true},
		{&l.systemPrompt, "system_prompt", def.systemPrompt, false},
	} {
		if *s.dst, err = o.str(s.key, s.def); err != nil {
			return nil, err
		}
		if s.required && *s.dst == "" {
			return nil, fmt.Errorf("option %q must not be empty", s.key)
		}
	}
	if l.temperature, err = o.optFloat("temperature", def.temperature); err != nil {
		return nil, err
	}
	if def.jsonResponse {
		l.responseFormat = map[string]any{"type": "json_object"}
	}
	if o.set("response_format") {
		rf, ok := aiAsMap(o["response_format"])
		if !ok {
			return nil, aiOptError("response_format", `a mapping like {type: json_object}`, o["response_format"])
		}
		l.responseFormat = map[string]any(rf)
	}
	src, err := o.mapping("source")
	if err != nil {
		return nil, err
	}
	if l.sourceType, err = src.str("analysis_type", def.sourceType); err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	if l.textLocation, err = src.str("text_location", def.textLocation); err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	return l, nil
}

// selected applies only_if and sampling_rate, logging why a vCon is skipped.
func (l *aiLLM) selected(v *vcon.VCon) bool {
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
func (l *aiLLM) eachSource(ctx context.Context, v *vcon.VCon, fn func(index int, text string) error) error {
	for index := range v.List(vcon.Dialog) {
		if err := ctx.Err(); err != nil {
			return err
		}
		src := vcon.FindAnalysis(v, index, l.sourceType)
		if src == nil {
			l.logger.Debug("dialog has no source analysis", "link", l.name, "vcon", v.UUID(), "dialog", index, "source_type", l.sourceType)
			continue
		}
		text := aiTextAt(src, l.textLocation)
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

func (l *aiLLM) request(system, user string) openai.ChatRequest {
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

type aiAnalyze struct{ *aiLLM }

func newAIAnalyze(name string, raw map[string]any, deps Deps) (Link, error) {
	l, err := newAILLM(name, raw, deps, aiLLMDefaults{
		analysisType: "summary",
		model:        "gpt-3.5-turbo-16k",
		temperature:  aiFloatPtr(0),
		systemPrompt: "You are a helpful assistant.",
		sourceType:   "transcript",
		textLocation: "body.paragraphs.transcript",
	})
	if err != nil {
		return nil, err
	}
	return &aiAnalyze{l}, nil
}

func (l *aiAnalyze) Run(ctx context.Context, v *vcon.VCon) (Result, error) {
	if !l.selected(v) {
		return Continue, nil
	}
	vendor := openai.VendorName(l.client.Endpoint, l.model)
	err := l.eachSource(ctx, v, func(index int, text string) error {
		answer, err := l.client.Chat(ctx, l.request(l.systemPrompt, l.prompt+"\n\n"+text))
		if err != nil {
			return err
		}
		aiAddAnalysis(v, l.analysisType, index, vendor, answer, "none", map[string]any{
			"vendor_schema": map[string]any{"model": l.model, "prompt": l.prompt},
		})
		return nil
	})
	if err != nil {
		return Continue, fmt.Errorf("analyze %s: %w", l.analysisType, err)
	}
	return Continue, nil
}
