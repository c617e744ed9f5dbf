package links

import (
	"github.com/vcon-operator/vcon-operator/internal/httpx"
)

// vendorPolicy is how the links that call external vendors (LLMs,
// transcription, Slack) retry; a link's max_retries replaces Retries.
// Tests make its waits instant.
var vendorPolicy = httpx.VendorPolicy

func vendorRetries(retries int) httpx.Policy {
	p := vendorPolicy
	p.Retries = retries
	return p
}

// llmRecorder counts a model vendor's answers in vcon_llm_requests_total.
func llmRecorder(link, model string) func(outcome string) {
	return func(outcome string) { llmRequests.WithLabelValues(link, model, outcome).Inc() }
}
