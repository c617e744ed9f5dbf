package openai

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/httpx"
)

type reply struct {
	status int
	header map[string]string
	body   string
	hang   bool
}

type seen struct {
	method, path, rawQuery string
	header                 http.Header
	body                   []byte
}

// fake is a vendor double: it records every request and answers from a
// script (the last reply repeats).
type fake struct {
	mu      sync.Mutex
	seen    []seen
	replies []reply
	srv     *httptest.Server
}

func newFake(t *testing.T, replies ...reply) *fake {
	t.Helper()
	f := &fake{replies: replies}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		n := len(f.seen)
		f.seen = append(f.seen, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body})
		rep := f.replies[min(n, len(f.replies)-1)]
		f.mu.Unlock()
		if rep.hang {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		for k, v := range rep.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(rep.status)
		_, _ = io.WriteString(w, rep.body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fake) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.seen...)
}

func chatAnswer(content string, prompt, completion int) reply {
	b, _ := json.Marshal(map[string]any{
		"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": content}, "finish_reason": "stop"}},
		"usage":   map[string]any{"prompt_tokens": prompt, "completion_tokens": completion},
	})
	return reply{status: 200, body: string(b)}
}

// counts is a Metrics that remembers what it was told.
type counts struct {
	mu       sync.Mutex
	outcomes map[string]float64
	tokens   [2]float64
}

func (c *counts) Request(_, outcome string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.outcomes == nil {
		c.outcomes = map[string]float64{}
	}
	c.outcomes[outcome]++
}

func (c *counts) Tokens(_ string, prompt, completion float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tokens[0] += prompt
	c.tokens[1] += completion
}

func TestChatWire(t *testing.T) {
	tests := []struct {
		name      string
		endpoint  func(base string) Endpoint
		wantPath  string
		wantQuery string
		wantAuth  [2]string
	}{
		{
			name:     "openai",
			endpoint: func(base string) Endpoint { return Endpoint{Vendor: "openai", Base: base + "/v1", Key: "sk-wire"} },
			wantPath: "/v1/chat/completions", wantAuth: [2]string{"Authorization", "Bearer sk-wire"},
		},
		{
			name: "azure",
			endpoint: func(base string) Endpoint {
				return Endpoint{Vendor: "azure", Base: base, Azure: true, APIVersion: DefaultAzureVersion, Key: "az-wire"}
			},
			wantPath: "/openai/deployments/gpt-wire/chat/completions", wantQuery: "api-version=2024-10-21",
			wantAuth: [2]string{"Api-Key", "az-wire"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, chatAnswer("hello back", 11, 7))
			m := &counts{}
			c := &Client{Endpoint: tt.endpoint(f.srv.URL), Metrics: m}
			zero := 0.0
			got, err := c.Chat(context.Background(), ChatRequest{
				Model:       "gpt-wire",
				Messages:    []Message{{Role: "system", Content: "sys"}, {Role: "user", Content: "hi"}},
				Temperature: &zero,
			})
			if err != nil {
				t.Fatal(err)
			}
			if got.Content != "hello back" || got.Usage == nil || *got.Usage != (Usage{PromptTokens: 11, CompletionTokens: 7}) {
				t.Errorf("answer = %q, usage %+v; want hello back, 11 and 7 tokens", got.Content, got.Usage)
			}
			reqs := f.requests()
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
			var body map[string]any
			if err := json.Unmarshal(r.body, &body); err != nil {
				t.Fatal(err)
			}
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
			if m.tokens != [2]float64{11, 7} || m.outcomes["ok"] != 1 {
				t.Errorf("metrics: tokens %v, outcomes %v; want [11 7] and one ok", m.tokens, m.outcomes)
			}
		})
	}
}

func TestChatFailures(t *testing.T) {
	const key = "sk-secret-key-123456789"
	tests := []struct {
		name         string
		replies      []reply
		retries      int
		timeout      time.Duration
		wantErr      string
		wantRequests int
		wantOutcomes map[string]float64
	}{
		{
			name:         "429 then success",
			replies:      []reply{{status: 429, header: map[string]string{"Retry-After": "1"}, body: `{"error":{"message":"Rate limit reached","code":"rate_limit_exceeded"}}`}, chatAnswer("ok", 1, 1)},
			retries:      6,
			wantRequests: 2,
			wantOutcomes: map[string]float64{"rate_limited": 1, "ok": 1},
		},
		{
			name:         "500 until retries are exhausted",
			replies:      []reply{{status: 500, body: `{"error":{"message":"The server had an error","type":"server_error"}}`}},
			retries:      2,
			wantErr:      "openai chat/completions: HTTP 500 after 3 attempts: server_error: The server had an error",
			wantRequests: 3,
			wantOutcomes: map[string]float64{"server_error": 3},
		},
		{
			name:         "401 fails at once and never quotes the key",
			replies:      []reply{{status: 401, body: `{"error":{"message":"Incorrect API key provided: ` + key + `.","type":"invalid_request_error","code":"invalid_api_key"}}`}},
			retries:      6,
			wantErr:      "openai chat/completions: HTTP 401: invalid_api_key: Incorrect API key provided",
			wantRequests: 1,
			wantOutcomes: map[string]float64{"client_error": 1},
		},
		{
			name:         "malformed JSON",
			replies:      []reply{{status: 200, body: `{"choices": [`}},
			wantErr:      "malformed answer",
			wantRequests: 1,
			wantOutcomes: map[string]float64{"invalid_response": 1},
		},
		{name: "no choices", replies: []reply{{status: 200, body: `{"choices": []}`}}, wantErr: "no choices", wantRequests: 1},
		{name: "refusal", replies: []reply{{status: 200, body: `{"choices": [{"message": {"refusal": "no"}}]}`}}, wantErr: "refused", wantRequests: 1},
		{
			name:         "timeout",
			replies:      []reply{{hang: true}},
			retries:      1,
			timeout:      50 * time.Millisecond,
			wantErr:      "no answer within 50ms",
			wantRequests: 2,
			wantOutcomes: map[string]float64{"transport_error": 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, tt.replies...)
			m := &counts{}
			c := &Client{
				Endpoint: Endpoint{Vendor: "openai", Base: f.srv.URL, Key: key},
				Timeout:  tt.timeout,
				Policy:   httpx.Policy{Retries: tt.retries, Base: time.Millisecond, Max: time.Millisecond, MaxRetryAfter: time.Millisecond},
				Metrics:  m,
			}
			_, err := c.Chat(context.Background(), ChatRequest{Model: "m", Messages: []Message{{Role: "user", Content: "x"}}})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), key) {
				t.Errorf("error %q quotes the key", err)
			}
			if n := len(f.requests()); n != tt.wantRequests {
				t.Errorf("requests = %d, want %d", n, tt.wantRequests)
			}
			for outcome, want := range tt.wantOutcomes {
				if got := m.outcomes[outcome]; got != want {
					t.Errorf("outcome %s = %v, want %v (all: %v)", outcome, got, want, m.outcomes)
				}
			}
		})
	}
}

func TestVendorName(t *testing.T) {
	tests := []struct {
		vendor, model, want string
	}{
		{"openai", "claude-3", "openai"},
		{"azure", "gpt-4o", "azure"},
		{"litellm", "claude-3-5-sonnet", "anthropic"},
		{"litellm", "vertex_ai/gemini-pro", "google"},
		{"litellm", "gpt-4o-mini", "openai"},
		{"litellm", "my-custom-model", "litellm"},
	}
	for _, tt := range tests {
		if got := VendorName(Endpoint{Vendor: tt.vendor}, tt.model); got != tt.want {
			t.Errorf("VendorName(%s, %q) = %q, want %q", tt.vendor, tt.model, got, tt.want)
		}
	}
}
