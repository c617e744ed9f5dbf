package links

// links.analyze: for each dialog, send the text of its source analysis (a
// transcript by default) to a chat model with a prompt and append the answer
// as a new analysis. conserver's module of the same name.

import (
	"context"
	"fmt"

	"github.com/vcon-operator/vcon-operator/internal/openai"
	"github.com/vcon-operator/vcon-operator/internal/options"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

func init() { Register("links.analyze", newAnalyze) }

type analyzeLink struct{ *llmLink }

func newAnalyze(name string, raw map[string]any, deps Deps) (Link, error) {
	o := options.New(raw)
	l, err := newLLMLink(name, o, deps, llmDefaults{
		analysisType: "summary",
		model:        "gpt-3.5-turbo-16k",
		temperature:  floatPtr(0),
		systemPrompt: "You are a helpful assistant.",
		sourceType:   "transcript",
		textLocation: "body.paragraphs.transcript",
		usageSubType: "ANALYZE",
	})
	if err != nil {
		return nil, err
	}
	if err := o.Err(); err != nil {
		return nil, err
	}
	return &analyzeLink{l}, nil
}

func (l *analyzeLink) Run(ctx context.Context, v *vcon.VCon) (Result, error) {
	if !l.selected(v) {
		return Continue, nil
	}
	vendor := openai.VendorName(l.client.Endpoint, l.model)
	err := l.eachSource(ctx, v, func(index int, text string) error {
		answer, err := l.chat(ctx, v, l.request(l.systemPrompt, l.prompt+"\n\n"+text))
		if err != nil {
			return err
		}
		addAnalysis(v, l.analysisType, index, vendor, answer, "none", map[string]any{
			"vendor_schema": map[string]any{"model": l.model, "prompt": l.prompt},
		})
		return nil
	})
	if err != nil {
		return Continue, fmt.Errorf("analyze %s: %w", l.analysisType, err)
	}
	return Continue, nil
}
