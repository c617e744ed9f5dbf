package links

// What the links that call external vendors (LLMs, transcription, Slack)
// share: how they retry, and how conserver's options choose an
// OpenAI-compatible endpoint (lib/openai_client.py's names and precedence:
// LiteLLM > Azure > OpenAI).

import (
	"math"
	"strings"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/httpx"
	"github.com/vcon-operator/vcon-operator/internal/openai"
	"github.com/vcon-operator/vcon-operator/internal/options"
)

// vendorPolicy is how the links that call external vendors retry; a link's
// max_retries replaces Retries. Tests make its waits instant.
var vendorPolicy = httpx.VendorPolicy

func vendorRetries(retries int) httpx.Policy {
	p := vendorPolicy
	p.Retries = retries
	return p
}

// resolveEndpoint reads the credentials and endpoint options. defaultBase
// and extra key names let OpenAI-compatible vendors (Groq) reuse it. A
// missing credential is a configuration error, reported at load.
func resolveEndpoint(o *options.Reader, defaultBase string, keyNames ...string) openai.Endpoint {
	litellmURL := strings.TrimRight(o.URL("LITELLM_PROXY_URL", ""), "/")
	if litellmKey := o.Secret("LITELLM_MASTER_KEY"); litellmURL != "" && litellmKey != "" {
		return openai.Endpoint{Vendor: "litellm", Base: litellmURL, Key: litellmKey}
	}
	azureURL := strings.TrimRight(o.URL("AZURE_OPENAI_ENDPOINT", ""), "/")
	if azureKey := o.Secret("AZURE_OPENAI_API_KEY"); azureURL != "" && azureKey != "" {
		version := o.Name("AZURE_OPENAI_API_VERSION", "")
		if version == "" {
			version = openai.DefaultAzureVersion
		}
		return openai.Endpoint{Vendor: "azure", Base: azureURL, Azure: true, APIVersion: version, Key: azureKey}
	}
	if len(keyNames) == 0 {
		keyNames = []string{"OPENAI_API_KEY", "openai_api_key", "api_key"}
	}
	before := o.Problems()
	key := o.Secret(keyNames...)
	if key == "" && o.Problems() == before {
		o.Errorf("no credentials: set LITELLM_PROXY_URL + LITELLM_MASTER_KEY, or AZURE_OPENAI_ENDPOINT + AZURE_OPENAI_API_KEY, or one of %s", strings.Join(keyNames, ", "))
	}
	return openai.Endpoint{Vendor: "openai", Base: baseURL(o, defaultBase), Key: key}
}

// baseURL is conserver's base_url or api_url, or the vendor's default.
func baseURL(o *options.Reader, def string, keys ...string) string {
	if len(keys) == 0 {
		keys = []string{"base_url", "api_url"}
	}
	base := o.First(keys...)
	if base == "" {
		return def
	}
	return strings.TrimRight(options.CheckURL(o, keys[0], base), "/")
}

// vendorCallOptions are the per-call limits every vendor link reads.
func vendorCallOptions(o *options.Reader) (time.Duration, httpx.Policy) {
	timeout := o.Duration("timeout", httpx.DefaultVendorTimeout)
	return timeout, vendorRetries(o.IntRange("max_retries", vendorPolicy.Retries, 0, math.MaxInt32))
}

// newLLMClient builds the chat client of one LLM link from its options.
func newLLMClient(link string, o *options.Reader, deps Deps) (*openai.Client, error) {
	ep := resolveEndpoint(o, openai.DefaultBaseURL)
	timeout, policy := vendorCallOptions(o)
	m, err := newVendorMetrics(deps.Metrics)
	if err != nil {
		return nil, err
	}
	return &openai.Client{Endpoint: ep, HTTP: deps.HTTP, Timeout: timeout, Policy: policy, Metrics: m.forLink(link)}, nil
}
