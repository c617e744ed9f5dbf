package links

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vcon-operator/vcon-operator/internal/openai"
	"github.com/vcon-operator/vcon-operator/internal/options"
)

func TestResolveEndpoint(t *testing.T) {
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
		{name: "key of the wrong type", opts: map[string]any{"OPENAI_API_KEY": 12}, wantErr: `option "OPENAI_API_KEY": want a string, got a number`},
		{name: "bad base url", opts: map[string]any{"OPENAI_API_KEY": "sk-x", "base_url": "ftp://x"}, wantErr: "base_url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := options.New(tt.opts)
			ep := resolveEndpoint(o, openai.DefaultBaseURL)
			err := o.Err()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ep.Vendor != tt.wantVendor {
				t.Errorf("vendor = %q, want %q", ep.Vendor, tt.wantVendor)
			}
			if got := ep.URL("m1", "chat/completions"); got != tt.wantURL {
				t.Errorf("url = %q, want %q", got, tt.wantURL)
			}
			h := http.Header{}
			ep.Authorize(h)
			if got := h.Get(tt.wantHeader[0]); got != tt.wantHeader[1] {
				t.Errorf("header %s = %q, want %q (all: %v)", tt.wantHeader[0], got, tt.wantHeader[1], h)
			}
			if len(h) != 1 {
				t.Errorf("want exactly one auth header, got %v", h)
			}
		})
	}
}

func TestVendorMetricsRegisterOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	first, err := newVendorMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	second, err := newVendorMetrics(reg)
	if err != nil {
		t.Fatalf("second registration: %v", err)
	}
	if first.requests != second.requests || first.tokens != second.tokens {
		t.Fatal("second registration made new collectors; want the first ones reused")
	}
	second.forLink("l").Tokens("m", 3, 4)
	n, err := testutil.GatherAndCount(reg, "vcon_llm_tokens_total")
	if err != nil || n != 2 {
		t.Errorf("vcon_llm_tokens_total series = %d, %v; want 2 (prompt and completion)", n, err)
	}
}

// TestLinksShareTheirCounters builds two LLM links on one registerer, as a
// worker does, and checks that both count there.
func TestLinksShareTheirCounters(t *testing.T) {
	reg := prometheus.NewRegistry()
	for _, name := range []string{"one", "two"} {
		if _, err := New(name, "links.analyze", map[string]any{"OPENAI_API_KEY": "sk-x"}, Deps{Metrics: reg}); err != nil {
			t.Fatalf("New(%s): %v", name, err)
		}
	}
	m, err := newVendorMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.forLink("one").Request("m", "ok")
	m.forLink("two").Request("m", "ok")
	if n, err := testutil.GatherAndCount(reg, "vcon_llm_requests_total"); err != nil || n != 2 {
		t.Errorf("vcon_llm_requests_total series = %d, %v; want 2", n, err)
	}
}
