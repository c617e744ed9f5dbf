package links

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/httpx"
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
	o := options(raw)
	rawURLs, err := o.strings("webhook-urls")
	if err != nil {
		return nil, err
	}
	if len(rawURLs) == 0 {
		return nil, errors.New(`option "webhook-urls": required, a list of http(s) URLs`)
	}
	w := &webhook{post: httpx.Post{Client: deps.HTTP}, policy: webhookPolicy}
	for i, s := range rawURLs {
		t, err := httpx.ParseTarget(s)
		if err != nil {
			return nil, fmt.Errorf("option %q: item %d: %w", "webhook-urls", i, err)
		}
		w.targets = append(w.targets, t)
	}
	if w.post.Headers, err = o.stringMap("headers"); err != nil {
		return nil, err
	}
	seconds, err := o.number("timeout", 30)
	if err != nil {
		return nil, err
	}
	if seconds <= 0 {
		return nil, fmt.Errorf("option %q: want a positive number of seconds, got %v", "timeout", seconds)
	}
	w.post.Timeout = time.Duration(seconds * float64(time.Second))
	retries, err := o.integer("retries", 3)
	if err != nil {
		return nil, err
	}
	if retries < 0 || retries > 20 {
		return nil, fmt.Errorf("option %q: want 0 to 20, got %d", "retries", retries)
	}
	w.policy.Retries = int(retries)
	version, err := o.str("egress_format_version", os.Getenv("EGRESS_FORMAT_VERSION"))
	if err != nil {
		return nil, err
	}
	switch version {
	case vcon.Version001:
		w.version001 = true
	case "", vcon.CurrentVersion:
	default:
		return nil, fmt.Errorf("option %q (or env EGRESS_FORMAT_VERSION): want %q or %q, got %q",
			"egress_format_version", vcon.Version001, vcon.CurrentVersion, version)
	}
	return w, nil
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
