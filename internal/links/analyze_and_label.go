package links

// links.analyze_and_label: the model returns {"labels": [...]} and each
// label becomes a tag, as conserver shapes it.

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/vcon-operator/vcon-operator/internal/httpx"
	"github.com/vcon-operator/vcon-operator/internal/options"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

func init() { Register("links.analyze_and_label", newAnalyzeAndLabel) }

const (
	labelSystemPrompt = "You are a helpful assistant that analyzes text and provides relevant labels."
	labelPrompt       = "Analyze this transcript and provide a list of relevant labels for categorization. " +
		"Return your response as a JSON object with a single key 'labels' containing an array of strings."
)

type labelLink struct{ *llmLink }

func newAnalyzeAndLabel(name string, raw map[string]any, deps Deps) (Link, error) {
	o := options.New(raw)
	l, err := newLLMLink(name, o, deps, llmDefaults{
		prompt:       labelPrompt,
		analysisType: "labeled_analysis",
		model:        "gpt-4-turbo",
		temperature:  floatPtr(0.2),
		systemPrompt: labelSystemPrompt,
		sourceType:   "transcript",
		textLocation: "body.paragraphs.transcript",
		jsonResponse: true,
		usageSubType: "ANALYZE_AND_LABEL",
	})
	if err != nil {
		return nil, err
	}
	if err := o.Err(); err != nil {
		return nil, err
	}
	return &labelLink{l}, nil
}

func (l *labelLink) Run(ctx context.Context, v *vcon.VCon) (Result, error) {
	if !l.selected(v) {
		return Continue, nil
	}
	err := l.eachSource(ctx, v, func(index int, text string) error {
		answer, err := l.chat(ctx, v, l.request(l.systemPrompt, l.prompt+"\n\n"+text))
		if err != nil {
			return err
		}
		schema := map[string]any{"model": l.model, "prompt": l.prompt}
		parsed, perr := decodeJSON([]byte(answer))
		if perr != nil {
			// conserver keeps an unparsable answer as plain text and
			// records why, so the vCon is not analysed again forever.
			schema["parse_error"] = httpx.JSONError(perr)
			addAnalysis(v, l.analysisType, index, "openai", answer, "none", map[string]any{"vendor_schema": schema})
			l.logger.Warn("model answer is not JSON; stored as text", "link", l.name, "vcon", v.UUID(), "dialog", index)
			return nil
		}
		addAnalysis(v, l.analysisType, index, "openai", answer, "json", map[string]any{"vendor_schema": schema})
		obj, _ := parsed.(map[string]any)
		labels, _ := obj["labels"].([]any)
		for _, label := range labels {
			if s := labelText(label); s != "" {
				vcon.AddTag(v, s, s)
			}
		}
		return nil
	})
	if err != nil {
		return Continue, fmt.Errorf("analyze_and_label %s: %w", l.analysisType, err)
	}
	return Continue, nil
}

// labelText is a label as text (models sometimes answer numbers).
func labelText(label any) string {
	switch t := label.(type) {
	case string:
		return strings.TrimSpace(t)
	case json.Number:
		return t.String()
	case bool:
		return fmt.Sprint(t)
	}
	return ""
}
