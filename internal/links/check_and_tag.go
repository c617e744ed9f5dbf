package links

// links.check_and_tag: the model answers a yes/no question as
// {"applies": bool}; yes adds one configured tag, as conserver shapes it.

import (
	"context"
	"fmt"
	"strings"

	"github.com/vcon-operator/vcon-operator/internal/httpx"
	"github.com/vcon-operator/vcon-operator/internal/options"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

func init() { Register("links.check_and_tag", newCheckAndTag) }

const checkSystemPrompt = "You are a helpful assistant that evaluates text against specific questions and provides yes/no answers."

type checkAndTagLink struct {
	*llmLink
	tagName, tagValue, question string
}

func newCheckAndTag(name string, raw map[string]any, deps Deps) (Link, error) {
	o := options.New(raw)
	c := &checkAndTagLink{}
	for _, f := range []struct {
		dst *string
		key string
	}{{&c.tagName, "tag_name"}, {&c.tagValue, "tag_value"}, {&c.question, "evaluation_question"}} {
		*f.dst = o.Required(f.key)
	}
	var err error
	c.llmLink, err = newLLMLink(name, o, deps, llmDefaults{
		analysisType: "tag_evaluation",
		model:        "gpt-5",
		systemPrompt: checkSystemPrompt,
		sourceType:   "transcript",
		textLocation: "body",
		jsonResponse: true,
		usageSubType: "CHECK_AND_TAG",
	})
	if err != nil {
		return nil, err
	}
	if err := o.Err(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *checkAndTagLink) Run(ctx context.Context, v *vcon.VCon) (Result, error) {
	if !c.selected(v) {
		return Continue, nil
	}
	tag := c.tagName + ":" + c.tagValue
	err := c.eachSource(ctx, v, func(index int, text string) error {
		user := "Question: " + c.question + "\n\nText to evaluate:\n" + text + "\n\n" +
			"Please answer with a JSON object containing a single key 'applies' with a boolean value " +
			"(true if the tag applies, false if it doesn't)."
		answer, err := c.chat(ctx, v, c.request(c.systemPrompt, user))
		if err != nil {
			return err
		}
		parsed, err := decodeJSON([]byte(answer))
		if err != nil {
			return fmt.Errorf("model answer is not JSON: %s", httpx.JSONError(err))
		}
		obj, _ := parsed.(map[string]any)
		applies := modelSaysYes(obj["applies"])
		body := map[string]any{"link_name": c.name, "tag": tag, "applies": applies}
		addAnalysis(v, c.analysisType, index, "openai", jsonString(body), "json", map[string]any{
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

// modelSaysYes reads the model's yes/no. Only an explicit yes counts: Python's
// truthiness would take the string "false" for a yes.
func modelSaysYes(v any) bool {
	switch t := v.(type) {
	case bool:
		return t
	case string:
		s := strings.ToLower(strings.TrimSpace(t))
		return s == "true" || s == "yes"
	}
	return false
}
