package links

// What the links that call external vendors (LLMs, transcription, Slack)
// share: how they retry, and how conserver's options choose an
// OpenAI-compatible endpoint (lib/openai_client.py's names and precedence:
// LiteLLM > Azure > OpenAI).

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/vcon-operator/vcon-operator/internal/httpx"
	"github.com/vcon-operator/vcon-operator/internal/openai"
)

// vendorPolicy is how the links that call external vendors retry; a link's
// max_retries replaces Retries. Tests make its waits instant.
var vendorPolicy = httpx.VendorPolicy

func vendorRetries(retries int) httpx.Policy {
	p := vendorPolicy
	p.Retries = retries
	return p
}

// resolveEndpoint reads the credentials and endpoint options.
// defaultBase and extra key names let OpenAI-compatible vendors (Groq) reuse
// it. A missing credential is a configuration error, reported at load.
func resolveEndpoint(o vendorOpts, defaultBase string, keyNames ...string) (openai.Endpoint, error) {
	litellmURL, err := o.str("LITELLM_PROXY_URL", "")
	if err != nil {
		return openai.Endpoint{}, err
	}
	litellmKey, err := o.secret("LITELLM_MASTER_KEY")
	if err != nil {
		return openai.Endpoint{}, err
	}
	if u := strings.TrimRight(strings.TrimSpace(litellmURL), "/"); u != "" && litellmKey != "" {
		if err := checkHTTPURL("LITELLM_PROXY_URL", u); err != nil {
			return openai.Endpoint{}, err
		}
		return openai.Endpoint{Vendor: "litellm", Base: u, Key: litellmKey}, nil
	}

	azureURL, err := o.str("AZURE_OPENAI_ENDPOINT", "")
	if err != nil {
		return openai.Endpoint{}, err
	}
	azureKey, err := o.secret("AZURE_OPENAI_API_KEY")
	if err != nil {
		return openai.Endpoint{}, err
	}
	if u := strings.TrimRight(strings.TrimSpace(azureURL), "/"); u != "" && azureKey != "" {
		if err := checkHTTPURL("AZURE_OPENAI_ENDPOINT", u); err != nil {
			return openai.Endpoint{}, err
		}
		version, err := o.str("AZURE_OPENAI_API_VERSION", "")
		if err != nil {
			return openai.Endpoint{}, err
		}
		if version == "" {
			version = openai.DefaultAzureVersion
		}
		return openai.Endpoint{Vendor: "azure", Base: u, Azure: true, APIVersion: version, Key: azureKey}, nil
	}

	if len(keyNames) == 0 {
		keyNames = []string{"OPENAI_API_KEY", "openai_api_key", "api_key"}
	}
	key, err := o.secret(keyNames...)
	if err != nil {
		return openai.Endpoint{}, err
	}
	if key == "" {
		return openai.Endpoint{}, fmt.Errorf("no credentials: set LITELLM_PROXY_URL + LITELLM_MASTER_KEY, or AZURE_OPENAI_ENDPOINT + AZURE_OPENAI_API_KEY, or one of %s", strings.Join(keyNames, ", "))
	}
	base, err := o.firstStr("base_url", "api_url")
	if err != nil {
		return openai.Endpoint{}, err
	}
	if base == "" {
		base = defaultBase
	}
	base = strings.TrimRight(base, "/")
	if err := checkHTTPURL("base_url", base); err != nil {
		return openai.Endpoint{}, err
	}
	return openai.Endpoint{Vendor: "openai", Base: base, Key: key}, nil
}

// checkHTTPURL refuses anything but an absolute http(s) URL; the error does
// not quote it (it may carry a token).
func checkHTTPURL(option, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("option %q must be an http(s) URL", option)
	}
	return nil
}

// newLLMClient builds the chat client of one LLM link from its options.
func newLLMClient(link string, o vendorOpts, deps Deps) (*openai.Client, error) {
	ep, err := resolveEndpoint(o, openai.DefaultBaseURL)
	if err != nil {
		return nil, err
	}
	timeout, err := o.duration("timeout", httpx.DefaultVendorTimeout)
	if err != nil {
		return nil, err
	}
	retries, err := o.nonNegInt("max_retries", vendorPolicy.Retries)
	if err != nil {
		return nil, err
	}
	m, err := newVendorMetrics(deps.Metrics)
	if err != nil {
		return nil, err
	}
	return &openai.Client{Endpoint: ep, HTTP: deps.HTTP, Timeout: timeout, Policy: vendorRetries(retries), Metrics: m.forLink(link)}, nil
}
