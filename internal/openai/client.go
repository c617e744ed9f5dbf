// Package openai is a small client for OpenAI-compatible chat completions
// (OpenAI, Azure OpenAI, any LiteLLM proxy, Groq): the endpoint and its
// authorisation, the wire format, and the vendor name conserver records in
// an analysis. Which options choose the endpoint is the links' business.
package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/httpx"
)

const (
	DefaultBaseURL      = "https://api.openai.com/v1"
	DefaultAzureVersion = "2024-10-21"
)

// Endpoint is where and how to reach an OpenAI-compatible API.
type Endpoint struct {
	// Vendor is "litellm", "azure", "openai" or another compatible
	// vendor's name ("groq"): it names the service in errors.
	Vendor string
	// Base is the API root (…/v1) or, for Azure, the resource endpoint.
	Base       string
	Azure      bool
	APIVersion string
	Key        string
}

// URL is the address of an operation ("chat/completions") for a model; on
// Azure the model is the deployment name.
func (e Endpoint) URL(model, operation string) string {
	if e.Azure {
		return e.Base + "/openai/deployments/" + url.PathEscape(model) + "/" + operation +
			"?api-version=" + url.QueryEscape(e.APIVersion)
	}
	return e.Base + "/" + operation
}

// Authorize sets the credential header: api-key on Azure, a bearer token
// elsewhere.
func (e Endpoint) Authorize(h http.Header) {
	if e.Azure {
		h.Set("api-key", e.Key)
	} else {
		h.Set("Authorization", "Bearer "+e.Key)
	}
}

// Metrics is told the outcome of every request (ok, rate_limited,
// server_error, client_error, transport_error, invalid_response) and the
// tokens an answer reports.
type Metrics interface {
	Request(model, outcome string)
	Tokens(model string, prompt, completion float64)
}

// Client calls chat completions.
type Client struct {
	Endpoint Endpoint
	HTTP     *http.Client
	// Timeout bounds one attempt; Policy says how often to retry.
	Timeout time.Duration
	Policy  httpx.Policy
	// Metrics may be nil.
	Metrics Metrics
}

type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type ChatRequest struct {
	Model    string    `json:"model"`
	Messages []Message `json:"messages"`
	// Temperature is not sent when nil, for models that reject it.
	Temperature    *float64 `json:"temperature,omitempty"`
	ResponseFormat any      `json:"response_format,omitempty"`
}

type chatResponse struct {
	Choices []struct {
		Message struct {
			Content *string `json:"content"`
			Refusal *string `json:"refusal"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     float64 `json:"prompt_tokens"`
		CompletionTokens float64 `json:"completion_tokens"`
	} `json:"usage"`
}

// Answer is the first choice's content and what the vendor said the call
// cost.
type Answer struct {
	Content string
	// Usage is nil when the vendor reported none.
	Usage *Usage
}

// Usage is the tokens an answer reports.
type Usage struct {
	PromptTokens, CompletionTokens float64
}

// ErrEmpty is an answer whose first choice has no content.
var ErrEmpty = errors.New("answer has no message content")

// Chat sends one chat completion and returns the first choice's content
// with the usage the vendor reported.
func (c *Client) Chat(ctx context.Context, req ChatRequest) (Answer, error) {
	payload, err := json.Marshal(req)
	if err != nil {
		return Answer{}, fmt.Errorf("encode chat request: %w", err)
	}
	record := func(outcome string) {
		if c.Metrics != nil {
			c.Metrics.Request(req.Model, outcome)
		}
	}
	call := &httpx.Call{
		Vendor:    c.Endpoint.Vendor,
		Operation: "chat/completions",
		Policy:    c.Policy,
		Timeout:   c.Timeout,
		Secrets:   []string{c.Endpoint.Key},
		Record:    record,
		Tokens:    EstimateTokens(payload),
		Usage:     usedTokens,
		NewRequest: func(ctx context.Context) (*http.Request, error) {
			r, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Endpoint.URL(req.Model, "chat/completions"), bytes.NewReader(payload))
			if err != nil {
				return nil, err
			}
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Accept", "application/json")
			c.Endpoint.Authorize(r.Header)
			return r, nil
		},
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	body, err := call.Do(ctx, hc)
	if err != nil {
		return Answer{}, err
	}
	var resp chatResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		record("invalid_response")
		return Answer{}, fmt.Errorf("%s: malformed answer: %v", call.Name(), httpx.JSONError(err))
	}
	var usage *Usage
	if resp.Usage != nil {
		usage = &Usage{PromptTokens: max(resp.Usage.PromptTokens, 0), CompletionTokens: max(resp.Usage.CompletionTokens, 0)}
		if c.Metrics != nil {
			c.Metrics.Tokens(req.Model, usage.PromptTokens, usage.CompletionTokens)
		}
	}
	if len(resp.Choices) == 0 {
		record("invalid_response")
		return Answer{}, fmt.Errorf("%s: malformed answer: no choices", call.Name())
	}
	msg := resp.Choices[0].Message
	if msg.Content == nil {
		record("invalid_response")
		if msg.Refusal != nil {
			return Answer{}, fmt.Errorf("%s: the model refused to answer", call.Name())
		}
		return Answer{}, fmt.Errorf("%s: %w (finish_reason %q)", call.Name(), ErrEmpty, resp.Choices[0].FinishReason)
	}
	record("ok")
	return Answer{Content: *msg.Content, Usage: usage}, nil
}

// answerAllowance is what EstimateTokens allows for the answer: the links
// set no max_tokens, and analyses and labels are short.
const answerAllowance = 512

// EstimateTokens is what a chat request is charged against a Link's
// tokens_per_minute before it is sent: a token per four bytes of the
// request (OpenAI's rule of thumb for English) plus answerAllowance. The
// answer's usage corrects it.
func EstimateTokens(payload []byte) int64 {
	return int64(len(payload)+3)/4 + answerAllowance
}

// usedTokens is the usage an answer reports, 0 when it reports none.
func usedTokens(body []byte) int64 {
	var resp struct {
		Usage *struct {
			PromptTokens     float64 `json:"prompt_tokens"`
			CompletionTokens float64 `json:"completion_tokens"`
			TotalTokens      float64 `json:"total_tokens"`
		} `json:"usage"`
	}
	if json.Unmarshal(body, &resp) != nil || resp.Usage == nil {
		return 0
	}
	u := resp.Usage
	return int64(max(u.TotalTokens, u.PromptTokens+u.CompletionTokens, 0))
}

// VendorName is conserver's get_vendor_from_opts: the vendor recorded in
// an analysis. Behind LiteLLM it is inferred from the model name.
func VendorName(ep Endpoint, model string) string {
	switch ep.Vendor {
	case "azure":
		return "azure"
	case "litellm":
		if v := inferVendor(model); v != "" {
			return v
		}
		return "litellm"
	}
	return "openai"
}

func inferVendor(model string) string {
	parts := strings.Split(strings.ToLower(model), "/")
	if len(parts) > 1 {
		switch parts[0] {
		case "openai", "azure", "anthropic", "google", "mistral", "meta", "cohere", "groq", "bedrock":
			return parts[0]
		case "vertex_ai":
			return "google"
		}
	}
	m := parts[len(parts)-1]
	switch {
	case strings.HasPrefix(m, "claude"):
		return "anthropic"
	case strings.HasPrefix(m, "gpt-"), strings.HasPrefix(m, "o1"), strings.HasPrefix(m, "o3"), strings.HasPrefix(m, "chatgpt"):
		return "openai"
	case strings.HasPrefix(m, "gemini"):
		return "google"
	case strings.HasPrefix(m, "mistral"), strings.HasPrefix(m, "mixtral"):
		return "mistral"
	case strings.HasPrefix(m, "llama"), strings.HasPrefix(m, "meta-llama"):
		return "meta"
	case strings.HasPrefix(m, "command"):
		return "cohere"
	}
	return ""
}
