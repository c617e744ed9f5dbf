package links

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/httpx"
	"github.com/vcon-operator/vcon-operator/internal/options"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

func init() { Register("links.webhook", newWebhook) }

// webhookPolicy waits 0.5 s before the first retry, doubling up to 30 s so
// that many retries stay bounded; a receiver's Retry-After is honoured up
// to 30 s. Tests shrink it.
var webhookPolicy = httpx.Policy{Base: 500 * time.Millisecond, Max: 30 * time.Second, MaxRetryAfter: 30 * time.Second}

// webhook POSTs the vCon to each configured URL. Unlike conserver, which
// only logs a non-2xx answer, a receiver that keeps refusing dead-letters
// the vCon so it can be replayed.
type webhook struct {
	targets    []httpx.Target
	post       httpx.Post
	policy     httpx.Policy
	version001 bool
}

func newWebhook(_ string, raw map[string]any, deps Deps) (Link, error) {
	o := options.New(raw)
	w := &webhook{post: httpx.Post{Client: deps.HTTP}, policy: webhookPolicy}
	w.targets = webhookTargets(o, "webhook-urls")
	if len(w.targets) == 0 && o.Problems() == 0 {
		o.Failf("webhook-urls", "required, a list of http(s) URLs")
	}
	w.post.Headers = o.Headers("headers")
	w.post.Timeout = o.Duration("timeout", 30*time.Second)
	w.policy.Retries = o.IntRange("retries", 3, 0, 20)
	version := o.String("egress_format_version", os.Getenv("EGRESS_FORMAT_VERSION"))
	switch version {
	case vcon.Version001:
		w.version001 = true
	case "", vcon.CurrentVersion:
	default:
		o.Failf("egress_format_version", "(or env EGRESS_FORMAT_VERSION): want %q or %q, got %q",
			vcon.Version001, vcon.CurrentVersion, version)
	}
	if err := o.Err(); err != nil {
		return nil, err
	}
	return w, nil
}

// webhookTargets reads a list of webhook URLs (checked by the reader, so
// ParseTarget cannot fail).
func webhookTargets(o *options.Reader, key string) []httpx.Target {
	var targets []httpx.Target
	for _, u := range o.URLs(key) {
		if t, err := httpx.ParseTarget(u); err == nil {
			targets = append(targets, t)
		}
	}
	return targets
}

func (w *webhook) Run(ctx context.Context, v *vcon.VCon) (Result, error) {
	// Read-only views, not copies: only the encoding below is new.
	doc := vcon.Normalized(v)
	if w.version001 {
		doc = vcon.ToVersion001(doc)
	}
	body, err := doc.Marshal()
	if err != nil {
		return Result{}, fmt.Errorf("webhook: encode vCon: %w", err)
	}
	for _, t := range w.targets {
		if err := w.deliver(ctx, t, v.UUID(), body); err != nil {
			return Result{}, err
		}
	}
	return Continue, nil
}

// deliver retries transport errors, timeouts, 408, 429 and 5xx with
// exponential backoff; any other answer is final.
func (w *webhook) deliver(ctx context.Context, t httpx.Target, uuid string, body []byte) error {
	attempts, err := httpx.Retry(ctx, w.policy, func(ctx context.Context) error {
		return w.post.Send(ctx, t, uuid, body)
	})
	if err != nil {
		return fmt.Errorf("webhook %w (%d attempts)", err, attempts)
	}
	return nil
}
