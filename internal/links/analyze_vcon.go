package links

// links.analyze_vcon: the whole vCon (dialog bodies removed by default, to
// save tokens and keep media away from the model) goes to a chat model that
// must answer JSON; the answer becomes one analysis on dialog 0.

import (
	"context"
	"fmt"

	"github.com/vcon-operator/vcon-operator/internal/httpx"
	"github.com/vcon-operator/vcon-operator/internal/options"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

func init() { Register("links.analyze_vcon", newAnalyzeVCon) }

type analyzeVConLink struct {
	*llmLink
	removeBodies bool
}

func newAnalyzeVCon(name string, raw map[string]any, deps Deps) (Link, error) {
	o := options.New(raw)
	l, err := newLLMLink(name, o, deps, llmDefaults{
		prompt:       "Analyze this vCon and return a JSON object with your analysis.",
		analysisType: "json_analysis",
		model:        "gpt-3.5-turbo-16k",
		temperature:  floatPtr(0),
		systemPrompt: "You are a helpful assistant that analyzes conversation data and returns structured JSON output.",
		jsonResponse: true,
		usageSubType: "ANALYZE_VCON",
	})
	if err != nil {
		return nil, err
	}
	a := &analyzeVConLink{llmLink: l, removeBodies: o.Bool("remove_body_properties", true)}
	if err := o.Err(); err != nil {
		return nil, err
	}
	return a, nil
}

// vconForModel is the document the model sees.
func vconForModel(v *vcon.VCon, removeBodies bool) ([]byte, error) {
	c := v.Clone()
	if removeBodies {
		for _, d := range c.List(vcon.Dialog) {
			delete(d, "body")
		}
	}
	return c.Marshal()
}

func (a *analyzeVConLink) Run(ctx context.Context, v *vcon.VCon) (Result, error) {
	if !a.selected(v) {
		return Continue, nil
	}
	if hasAnalysisType(v, a.analysisType) {
		a.logger.Debug("vCon already analysed", "link", a.name, "vcon", v.UUID(), "analysis_type", a.analysisType)
		return Continue, nil
	}
	doc, err := vconForModel(v, a.removeBodies)
	if err != nil {
		return Continue, fmt.Errorf("analyze_vcon %s: encode vCon: %w", a.analysisType, err)
	}
	answer, err := a.chat(ctx, v, a.request(a.systemPrompt, a.prompt+"\n\n"+string(doc)))
	if err != nil {
		return Continue, fmt.Errorf("analyze_vcon %s: %w", a.analysisType, err)
	}
	parsed, err := decodeJSON([]byte(answer))
	if err != nil {
		return Continue, fmt.Errorf("analyze_vcon %s: model answer is not JSON: %s", a.analysisType, httpx.JSONError(err))
	}
	// conserver stores json.dumps(json.loads(answer)): the parsed value,
	// re-encoded, as a JSON string body.
	body, encoding := jsonString(parsed), "json"
	if s, isString := parsed.(string); isString {
		body, encoding = s, "none"
	}
	addAnalysis(v, a.analysisType, 0, "openai", body, encoding, map[string]any{
		"vendor_schema": map[string]any{"model": a.model, "prompt": a.prompt, "system_prompt": a.systemPrompt},
	})
	return Continue, nil
}
