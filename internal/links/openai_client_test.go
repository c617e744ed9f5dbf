package links

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestOpenAIResolveEndpoint(t *testing.T) {
	t.Setenv("AI_TEST_UNSET_VAR", "")
	tests := []struct {
		name       string
		opts       map[string]any
		wantVendor string
		wantURL    string // for model "m1", chat/completions
		wantHeader [2]string
		wantErr    string
	}{
		{
			name:       "openai default base",
			opts:       map[string]any{"OPENAI_API_KEY": "sk-one"},
			wantVendor: "openai", wantURL: "https://api.openai.com/v1/chat/completions",
			wantHeader: [2]string{"Authorization", "Bearer sk-one"},
		},
		{
			name:       "key aliases in conserver order, base_url override",
			opts:       map[string]any{"openai_api_key": "sk-two", "api_key": "sk-three", "base_url": "http://llm.local:8080/v1/"},
			wantVendor: "openai", wantURL: "http://llm.local:8080/v1/chat/completions",
			wantHeader: [2]string{"Authorization", "Bearer sk-two"},
		},
		{
			name:       "azure with default api version",
			opts:       map[string]any{"OPENAI_API_KEY": "sk-x", "AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com/", "AZURE_OPENAI_API_KEY": "az-key"},
			wantVendor: "azure", wantURL: "https://res.openai.azure.com/openai/deployments/m1/chat/completions?api-version=2024-10-21",
			wantHeader: [2]string{"api-key", "az-key"},
		},
		{
			name:       "azure with its own api version",
			opts:       map[string]any{"AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com", "AZURE_OPENAI_API_KEY": "az-key", "AZURE_OPENAI_API_VERSION": "2025-01-01-preview"},
			wantVendor: "azure", wantURL: "https://res.openai.azure.com/openai/deployments/m1/chat/completions?api-version=2025-01-01-preview",
			wantHeader: [2]string{"api-key", "az-key"},
		},
		{
			name: "litellm wins over azure and openai",
			opts: map[string]any{
				"OPENAI_API_KEY": "sk-x", "AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com", "AZURE_OPENAI_API_KEY": "az-key",
				"LITELLM_PROXY_URL": "http://litellm:4000/", "LITELLM_MASTER_KEY": "master",
			},
			wantVendor: "litellm", wantURL: "http://litellm:4000/chat/completions",
			wantHeader: [2]string{"Authorization", "Bearer master"},
		},
		{
			name:       "litellm url without key falls through to openai",
			opts:       map[string]any{"OPENAI_API_KEY": "sk-x", "LITELLM_PROXY_URL": "http://litellm:4000"},
			wantVendor: "openai", wantURL: "https://api.openai.com/v1/chat/completions",
			wantHeader: [2]string{"Authorization", "Bearer sk-x"},
		},
		{name: "no credentials", opts: map[string]any{}, wantErr: "no credentials"},
		{name: "unexpanded variable", opts: map[string]any{"OPENAI_API_KEY": "${AI_TEST_UNSET_VAR}"}, wantErr: "AI_TEST_UNSET_VAR"},
		{name: "key of the wrong type", opts: map[string]any{"OPENAI_API_KEY": 12}, wantErr: `"OPENAI_API_KEY" must be a string`},
		{name: "bad base url", opts: map[string]any{"OPENAI_API_KEY": "sk-x", "base_url": "ftp://x"}, wantErr: "base_url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep, err := openaiResolveEndpoint(tt.opts, openaiDefaultBaseURL)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ep.vendor != tt.wantVendor {
				t.Errorf("vendor = %q, want %q", ep.vendor, tt.wantVendor)
			}
			if got := ep.url("m1", "chat/completions"); got != tt.wantURL {
				t.Errorf("url = %q, want %q", got, tt.wantURL)
			}
			h := http.Header{}
			ep.authorize(h)
			if got := h.Get(tt.wantHeader[0]); got != tt.wantHeader[1] {
				t.Errorf("header %s = %q, want %q (all: %v)", tt.wantHeader[0], got, tt.wantHeader[1], h)
			}
			if len(h) != 1 {
				t.Errorf("want exactly one auth header, got %v", h)
			}
		})
	}
}

func TestOpenAIChatWire(t *testing.T) {
	tests := []struct {
		name      string
		opts      func(base string) map[string]any
		wantPath  string
		wantQuery string
		wantAuth  [2]string
	}{
		{
			name: "openai",
			opts: func(base string) map[string]any {
				return map[string]any{"OPENAI_API_KEY": "sk-wire", "base_url": base + "/v1"}
			},
			wantPath: "/v1/chat/completions", wantAuth: [2]string{"Authorization", "Bearer sk-wire"},
		},
		{
			name: "azure",
			opts: func(base string) map[string]any {
				return map[string]any{"AZURE_OPENAI_ENDPOINT": base, "AZURE_OPENAI_API_KEY": "az-wire"}
			},
			wantPath: "/openai/deployments/gpt-wire/chat/completions", wantQuery: "api-version=2024-10-21",
			wantAuth: [2]string{"Api-Key", "az-wire"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newAIFake(t, aiChatAnswer("hello back", 11, 7))
			link := "wire-" + tt.name
			c, err := newOpenAIClient(link, tt.opts(fake.srv.URL), &http.Client{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.chat(context.Background(), openaiChatRequest{
				Model:       "gpt-wire",
				Messages:    []openaiMessage{{Role: "system", Content: "sys"}, {Role: "user", Content: "hi"}},
				Temperature: aiFloatPtr(0),
			})
			if err != nil {
				t.Fatal(err)
			}
			if got != "hello back" {
				t.Errorf("content = %q", got)
			}
			reqs := fake.requests()
			if len(reqs) != 1 {
				t.Fatalf("requests = %d, want 1", len(reqs))
			}
			r := reqs[0]
			if r.method != http.MethodPost || r.path != tt.wantPath || r.rawQuery != tt.wantQuery {
				t.Errorf("request %s %s?%s, want POST %s?%s", r.method, r.path, r.rawQuery, tt.wantPath, tt.wantQuery)
			}
			if got := r.header.Get(tt.wantAuth[0]); got != tt.wantAuth[1] {
				t.Errorf("%s = %q, want %q", tt.wantAuth[0], got, tt.wantAuth[1])
			}
			if tt.name == "azure" && r.header.Get("Authorization") != "" {
				t.Error("azure request must not carry a bearer token")
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			body := aiJSONMap(t, r.body)
			if body["model"] != "gpt-wire" || body["temperature"] != 0.0 {
				t.Errorf("body = %v", body)
			}
			msgs, _ := body["messages"].([]any)
			if len(msgs) != 2 || msgs[1].(map[string]any)["content"] != "hi" || msgs[0].(map[string]any)["role"] != "system" {
				t.Errorf("messages = %v", msgs)
			}
			if _, has := body["response_format"]; has {
				t.Error("response_format sent though not asked for")
			}
			if p := testutil.ToFloat64(llmTokens.WithLabelValues(link, "gpt-wire", "prompt")); p != 11 {
				t.Errorf("prompt tokens = %v, want 11", p)
			}
			if p := testutil.ToFloat64(llmTokens.WithLabelValues(link, "gpt-wire", "completion")); p != 7 {
				t.Errorf("completion tokens = %v, want 7", p)
			}
			if n := testutil.ToFloat64(llmRequests.WithLabelValues(link, "gpt-wire", "ok")); n != 1 {
				t.Errorf("ok requests = %v, want 1", n)
			}
		})
	}
}

func TestOpenAIChatFailures(t *testing.T) {
	const key = "sk-secret-key-123456789"
	date := time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name         string
		replies      []aiReply
		opts         map[string]any
		wantErr      string // "" means success
		wantRequests int
		wantWaits    func(w []time.Duration) bool
		wantOutcomes map[string]float64
	}{
		{
			name:         "429 with Retry-After seconds, then success",
			replies:      []aiReply{{status: 429, header: map[string]string{"Retry-After": "7"}, body: `{"error":{"message":"Rate limit reached","code":"rate_limit_exceeded"}}`}, aiChatAnswer("ok", 1, 1)},
			wantRequests: 2,
			wantWaits:    func(w []time.Duration) bool { return len(w) == 1 && w[0] == 7*time.Second },
			wantOutcomes: map[string]float64{"rate_limited": 1, "ok": 1},
		},
		{
			name:         "429 with Retry-After date",
			replies:      []aiReply{{status: 429, header: map[string]string{"Retry-After": date}}, aiChatAnswer("ok", 1, 1)},
			wantRequests: 2,
			wantWaits:    func(w []time.Duration) bool { return len(w) == 1 && w[0] > 25*time.Second && w[0] <= 30*time.Second },
		},
		{
			name:         "Retry-After is capped",
			replies:      []aiReply{{status: 503, header: map[string]string{"Retry-After": "86400"}}, aiChatAnswer("ok", 1, 1)},
			wantRequests: 2,
			wantWaits:    func(w []time.Duration) bool { return len(w) == 1 && w[0] == vendorPolicy.MaxRetryAfter },
		},
		{
			name:         "500 until retries are exhausted",
			replies:      []aiReply{{status: 500, body: `{"error":{"message":"The server had an error","type":"server_error"}}`}},
			opts:         map[string]any{"max_retries": 2},
			wantErr:      "openai chat/completions: HTTP 500 after 3 attempts: server_error: The server had an error",
			wantRequests: 3,
			wantWaits: func(w []time.Duration) bool {
				return len(w) == 2 && w[0] == vendorPolicy.Base && w[1] == 2*vendorPolicy.Base
			},
			wantOutcomes: map[string]float64{"server_error": 3, "ok": 0},
		},
		{
			name:         "401 fails at once and never quotes the key",
			replies:      []aiReply{{status: 401, body: `{"error":{"message":"Incorrect API key provided: ` + key + `.","type":"invalid_request_error","code":"invalid_api_key"}}`}},
			wantErr:      "openai chat/completions: HTTP 401: invalid_api_key: Incorrect API key provided",
			wantRequests: 1,
			wantOutcomes: map[string]float64{"client_error": 1},
		},
		{
			name:         "400 fails at once",
			replies:      []aiReply{{status: 400, body: `{"error":{"message":"model not found","code":"model_not_found"}}`}},
			wantErr:      "HTTP 400: model_not_found",
			wantRequests: 1,
		},
		{
			name:         "malformed JSON",
			replies:      []aiReply{{status: 200, body: `{"choices": [`}},
			wantErr:      "malformed answer",
			wantRequests: 1,
			wantOutcomes: map[string]float64{"invalid_response": 1},
		},
		{
			name:         "no choices",
			replies:      []aiReply{{status: 200, body: `{"choices": []}`}},
			wantErr:      "no choices",
			wantRequests: 1,
		},
		{
			name:         "timeout",
			replies:      []aiReply{{hang: true}},
			opts:         map[string]any{"timeout": "50ms", "max_retries": 1},
			wantErr:      "no answer within 50ms",
			wantRequests: 2,
			wantOutcomes: map[string]float64{"transport_error": 2},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			waits := aiTestWaits(t)
			fake := newAIFake(t, tt.replies...)
			opts := map[string]any{"OPENAI_API_KEY": key, "base_url": fake.srv.URL}
			for k, v := range tt.opts {
				opts[k] = v
			}
			link := "failures-" + string(rune('a'+i))
			c, err := newOpenAIClient(link, opts, &http.Client{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.chat(context.Background(), openaiChatRequest{Model: "m", Messages: []openaiMessage{{Role: "user", Content: "x"}}})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
			if err != nil {
				aiAssertNoSecret(t, err.Error(), key)
			}
			if n := len(fake.requests()); n != tt.wantRequests {
				t.Errorf("requests = %d, want %d", n, tt.wantRequests)
			}
			if tt.wantWaits != nil && !tt.wantWaits(*waits) {
				t.Errorf("waits = %v", *waits)
			}
			for outcome, want := range tt.wantOutcomes {
				if got := testutil.ToFloat64(llmRequests.WithLabelValues(link, "m", outcome)); got != want {
					t.Errorf("requests{outcome=%s} = %v, want %v", outcome, got, want)
				}
			}
		})
	}
}

func TestOpenAIVendorName(t *testing.T) {
	tests := []struct {
		ep    openaiEndpoint
		model string
		want  string
	}{
		{openaiEndpoint{vendor: "openai"}, "claude-3", "openai"},
		{openaiEndpoint{vendor: "azure"}, "gpt-4o", "azure"},
		{openaiEndpoint{vendor: "litellm"}, "claude-3-5-sonnet", "anthropic"},
		{openaiEndpoint{vendor: "litellm"}, "vertex_ai/gemini-pro", "google"},
		{openaiEndpoint{vendor: "litellm"}, "gpt-4o-mini", "openai"},
		{openaiEndpoint{vendor: "litellm"}, "my-custom-model", "litellm"},
	}
	for _, tt := range tests {
		if got := openaiVendorName(tt.ep, tt.model); got != tt.want {
			t.Errorf("openaiVendorName(%s, %q) = %q, want %q", tt.ep.vendor, tt.model, got, tt.want)
		}
	}
}
