package links

// links.analyze_and_label (the model returns {"labels": [...]}, each label
// becomes a tag) and links.check_and_tag (the model answers a yes/no
// question as {"applies": bool}; yes adds one configured tag), as conserver
// shapes them.

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/vcon-operator/vcon-operator/internal/httpx"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

func init() {
	Register("links.analyze_and_label", newAILabel)
	Register("links.check_and_tag", newAICheckAndTag)
}

const (
	aiLabelSystemPrompt = "You are a helpful assistant that analyzes text and provides relevant labels."
	aiLabelPrompt       = "Analyze this transcript and provide a list of relevant labels for categorization. " +
		"Return your response as a JSON object with a single key 'labels' containing an array of strings."
	aiCheckSystemPrompt = "You are a helpful assistant that evaluates text against specific questions and provides yes/no answers."
)

type aiLabel struct{ *aiLLM }

func newAILabel(name string, raw map[string]any, deps Deps) (Link, error) {
	l, err := newAILLM(name, raw, deps, aiLLMDefaults{
		prompt:       aiLabelPrompt,
		analysisType: "labeled_analysis",
		model:        "gpt-4-turbo",
		temperature:  aiFloatPtr(0.2),
		systemPrompt: aiLabelSystemPrompt,
		sourceType:   "transcript",
		textLocation: "body.paragraphs.transcript",
		jsonResponse: true,
	})
	if err != nil {
		return nil, err
	}
	return &aiLabel{l}, nil
}

func (l *aiLabel) Run(ctx context.Context, v *vcon.VCon) (Result, error) {
	if !l.selected(v) {
		return Continue, nil
	}
	err := l.eachSource(ctx, v, func(index int, text string) error {
		answer, err := l.client.Chat(ctx, l.request(l.systemPrompt, l.prompt+"\n\n"+text))
		if err != nil {
			return err
		}
		schema := map[string]any{"model": l.model, "prompt": l.prompt}
		parsed, perr := aiDecodeJSON([]byte(answer))
		if perr != nil {
			// conserver keeps an unparsable answer as plain text and
			// records why, so the vCon is not analysed again forever.
			schema["parse_error"] = httpx.JSONError(perr)
			aiAddAnalysis(v, l.analysisType, index, "openai", answer, "none", map[string]any{"vendor_schema": schema})
			l.logger.Warn("model answer is not JSON; stored as text", "link", l.name, "vcon", v.UUID(), "dialog", index)
			return nil
		}
		aiAddAnalysis(v, l.analysisType, index, "openai", answer, "json", map[string]any{"vendor_schema": schema})
		obj, _ := parsed.(map[string]any)
		labels, _ := obj["labels"].([]any)
		for _, label := range labels {
			if s := aiLabelText(label); s != "" {
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

// aiLabelText is a label as text (models sometimes answer numbers).
func aiLabelText(label any) string {
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

type aiCheckAndTag struct {
	*aiLLM
	tagName, tagValue, question string
}

func newAICheckAndTag(name string, raw map[string]any, deps Deps) (Link, error) {
	o := aiOpts(raw)
	c := &aiCheckAndTag{}
	var err error
	for _, f := range []struct {
		dst *string
		key string
	}{{&c.tagName, "tag_name"}, {&c.tagValue, "tag_value"}, {&c.question, "evaluation_question"}} {
		if *f.dst, err = o.str(f.key, ""); err != nil {
			return nil, err
		}
		if strings.TrimSpace(*f.dst) == "" {
			return nil, fmt.Errorf("option %q is required", f.key)
		}
	}
	c.aiLLM, err = newAILLM(name, raw, deps, aiLLMDefaults{
		analysisType: "tag_evaluation",
		model:        "gpt-5",
		systemPrompt: aiCheckSystemPrompt,
		sourceType:   "transcript",
		textLocation: "body",
		jsonResponse: true,
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (c *aiCheckAndTag) Run(ctx context.Context, v *vcon.VCon) (Result, error) {
	if !c.selected(v) {
		return Continue, nil
	}
	tag := c.tagName + ":" + c.tagValue
	err := c.eachSource(ctx, v, func(index int, text string) error {
		user := "Question: " + c.question + "\n\nText to evaluate:\n" + text + "\n\n" +
			"Please answer with a JSON object containing a single key 'applies' with a boolean value " +
			"(true if the tag applies, false if it doesn't)."
		answer, err := c.client.Chat(ctx, c.request(c.systemPrompt, user))
		if err != nil {
			return err
		}
		parsed, err := aiDecodeJSON([]byte(answer))
		if err != nil {
			return fmt.Errorf("model answer is not JSON: %s", httpx.JSONError(err))
		}
		obj, _ := parsed.(map[string]any)
		applies := aiApplies(obj["applies"])
		body := map[string]any{"link_name": c.name, "tag": tag, "applies": applies}
		aiAddAnalysis(v, c.analysisType, index, "openai", aiJSONString(body), "json", map[string]any{
			"vendor_schema": map[string]any{"model": c.model, "evaluation_question": c.question},
		})
		if applies {
			vcon.AddTag(v, c.tagName, c.tagValue)
		}
		return nil
	})
	if err != nil {
		return Continue, fmt.Errorf("check_and_tag %s: %w", tag, err)
	}
	return Continue, nil
}

// aiApplies reads the model's yes/no. Only an explicit yes counts: Python's
// truthiness would take the string "false" for a yes.
func aiApplies(v any) bool {
	switch t := v.(type) {
	case bool:
		return t
	case string:
		s := strings.ToLower(strings.TrimSpace(t))
		return s == "true" || s == "yes"
	}
	return false
}
