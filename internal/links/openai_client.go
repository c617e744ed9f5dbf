package links

// A small client for OpenAI-compatible chat completions (OpenAI, Azure
// OpenAI, any LiteLLM proxy), configured from the same option names as
// conserver's lib/openai_client.py, with the same precedence:
// LiteLLM > Azure > OpenAI.

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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/vcon-operator/vcon-operator/internal/httpx"
)

var (
	llmTokens = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "vcon_llm_tokens_total",
		Help: "Tokens reported by model vendors, by link name, configured model and kind (prompt or completion).",
	}, []string{"link", "model", "kind"})
	llmRequests = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "vcon_llm_requests_total",
		Help: "HTTP requests to model vendors, by link name, configured model and outcome (ok, rate_limited, server_error, client_error, transport_error, invalid_response).",
	}, []string{"link", "model", "outcome"})
)

const (
	openaiDefaultBaseURL      = "https://api.openai.com/v1"
	openaiDefaultAzureVersion = "2024-10-21"
)

// openaiEndpoint is where and how to reach an OpenAI-compatible API.
type openaiEndpoint struct {
	vendor string // "litellm", "azure" or "openai": for errors and vendor inference
	// base is the API root (…/v1) or, for Azure, the resource endpoint.
	base       string
	azure      bool
	apiVersion string
	key        string
}

// openaiResolveEndpoint reads the credentials and endpoint options.
// defaultBase and extra key names let OpenAI-compatible vendors (Groq) reuse
// it. A missing credential is a configuration error, reported at load.
func openaiResolveEndpoint(o aiOpts, defaultBase string, keyNames ...string) (openaiEndpoint, error) {
	litellmURL, err := o.str("LITELLM_PROXY_URL", "")
	if err != nil {
		return openaiEndpoint{}, err
	}
	litellmKey, err := o.secret("LITELLM_MASTER_KEY")
	if err != nil {
		return openaiEndpoint{}, err
	}
	if u := strings.TrimRight(strings.TrimSpace(litellmURL), "/"); u != "" && litellmKey != "" {
		if err := openaiCheckURL("LITELLM_PROXY_URL", u); err != nil {
			return openaiEndpoint{}, err
		}
		return openaiEndpoint{vendor: "litellm", base: u, key: litellmKey}, nil
	}

	azureURL, err := o.str("AZURE_OPENAI_ENDPOINT", "")
	if err != nil {
		return openaiEndpoint{}, err
	}
	azureKey, err := o.secret("AZURE_OPENAI_API_KEY")
	if err != nil {
		return openaiEndpoint{}, err
	}
	if u := strings.TrimRight(strings.TrimSpace(azureURL), "/"); u != "" && azureKey != "" {
		if err := openaiCheckURL("AZURE_OPENAI_ENDPOINT", u); err != nil {
			return openaiEndpoint{}, err
		}
		version, err := o.str("AZURE_OPENAI_API_VERSION", "")
		if err != nil {
			return openaiEndpoint{}, err
		}
		if version == "" {
			version = openaiDefaultAzureVersion
		}
		return openaiEndpoint{vendor: "azure", base: u, azure: true, apiVersion: version, key: azureKey}, nil
	}

	if len(keyNames) == 0 {
		keyNames = []string{"OPENAI_API_KEY", "openai_api_key", "api_key"}
	}
	key, err := o.secret(keyNames...)
	if err != nil {
		return openaiEndpoint{}, err
	}
	if key == "" {
		return openaiEndpoint{}, fmt.Errorf("no credentials: set LITELLM_PROXY_URL + LITELLM_MASTER_KEY, or AZURE_OPENAI_ENDPOINT + AZURE_OPENAI_API_KEY, or one of %s", strings.Join(keyNames, ", "))
	}
	base, err := o.firstStr("base_url", "api_url")
	if err != nil {
		return openaiEndpoint{}, err
	}
	if base == "" {
		base = defaultBase
	}
	base = strings.TrimRight(base, "/")
	if err := openaiCheckURL("base_url", base); err != nil {
		return openaiEndpoint{}, err
	}
	return openaiEndpoint{vendor: "openai", base: base, key: key}, nil
}

func openaiCheckURL(option, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("option %q must be an http(s) URL", option)
	}
	return nil
}

// url is the address of an operation ("chat/completions") for a model; on
// Azure the model is the deployment name.
func (e openaiEndpoint) url(model, operation string) string {
	if e.azure {
		return e.base + "/openai/deployments/" + url.PathEscape(model) + "/" + operation +
			"?api-version=" + url.QueryEscape(e.apiVersion)
	}
	return e.base + "/" + operation
}

func (e openaiEndpoint) authorize(h http.Header) {
	if e.azure {
		h.Set("api-key", e.key)
	} else {
		h.Set("Authorization", "Bearer "+e.key)
	}
}

// openaiClient calls chat completions for one link.
type openaiClient struct {
	link     string
	endpoint openaiEndpoint
	http     *http.Client
	timeout  time.Duration
	retries  int
	policy   httpx.Policy
}

func newOpenAIClient(link string, o aiOpts, hc *http.Client) (*openaiClient, error) {
	ep, err := openaiResolveEndpoint(o, openaiDefaultBaseURL)
	if err != nil {
		return nil, err
	}
	c := &openaiClient{link: link, endpoint: ep, http: hc}
	if c.timeout, err = o.duration("timeout", httpx.DefaultVendorTimeout); err != nil {
		return nil, err
	}
	if c.retries, err = o.nonNegInt("max_retries", vendorPolicy.Retries); err != nil {
		return nil, err
	}
	if c.http == nil {
		c.http = http.DefaultClient
	}
	c.policy = vendorRetries(c.retries)
	return c, nil
}

type openaiMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type openaiChatRequest struct {
	Model          string          `json:"model"`
	Messages       []openaiMessage `json:"messages"`
	Temperature    *float64        `json:"temperature,omitempty"`
	ResponseFormat any             `json:"response_format,omitempty"`
}

type openaiChatResponse struct {
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

var errOpenAIEmpty = errors.New("answer has no message content")

// chat sends one chat completion and returns the first choice's content.
func (c *openaiClient) chat(ctx context.Context, req openaiChatRequest) (string, error) {
	payload, err := json.Marshal(req)
	if err != nil {
		return "", fmt.Errorf("encode chat request: %w", err)
	}
	record := llmRecorder(c.link, req.Model)
	call := &httpx.Call{
		Vendor:    c.endpoint.vendor,
		Operation: "chat/completions",
		Policy:    c.policy,
		Timeout:   c.timeout,
		Secrets:   []string{c.endpoint.key},
		Record:    record,
		NewRequest: func(ctx context.Context) (*http.Request, error) {
			r, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint.url(req.Model, "chat/completions"), bytes.NewReader(payload))
			if err != nil {
				return nil, err
			}
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Accept", "application/json")
			c.endpoint.authorize(r.Header)
			return r, nil
		},
	}
	body, err := call.Do(ctx, c.http)
	if err != nil {
		return "", err
	}
	var resp openaiChatResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		record("invalid_response")
		return "", fmt.Errorf("%s: malformed answer: %v", call.Name(), aiJSONErr(err))
	}
	if resp.Usage != nil {
		llmTokens.WithLabelValues(c.link, req.Model, "prompt").Add(max(resp.Usage.PromptTokens, 0))
		llmTokens.WithLabelValues(c.link, req.Model, "completion").Add(max(resp.Usage.CompletionTokens, 0))
	}
	if len(resp.Choices) == 0 {
		record("invalid_response")
		return "", fmt.Errorf("%s: malformed answer: no choices", call.Name())
	}
	msg := resp.Choices[0].Message
	if msg.Content == nil {
		record("invalid_response")
		if msg.Refusal != nil {
			return "", fmt.Errorf("%s: the model refused to answer", call.Name())
		}
		return "", fmt.Errorf("%s: %w (finish_reason %q)", call.Name(), errOpenAIEmpty, resp.Choices[0].FinishReason)
	}
	record("ok")
	return *msg.Content, nil
}

// aiJSONErr describes a JSON decoding error without quoting input.
func aiJSONErr(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q has the wrong type", te.Field)
	}
	return "invalid JSON"
}

// openaiVendorName is conserver's get_vendor_from_opts: the vendor recorded
// in an analysis. Behind LiteLLM it is inferred from the model name.
func openaiVendorName(ep openaiEndpoint, model string) string {
	switch ep.vendor {
	case "azure":
		return "azure"
	case "litellm":
		if v := openaiInferVendor(model); v != "" {
			return v
		}
		return "litellm"
	}
	return "openai"
}

func openaiInferVendor(model string) string {
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
