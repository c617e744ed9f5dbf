package links

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

func init() { Register("links.webhook", newWebhook) }

// webhookBackoff is the wait before the first retry; it doubles each time.
// Tests shrink it.
var webhookBackoff = 500 * time.Millisecond

// webhookMaxBackoff caps the doubling so that many retries stay bounded.
const webhookMaxBackoff = 30 * time.Second

// webhook POSTs the vCon to each configured URL. Unlike conserver, which
// only logs a non-2xx answer, a receiver that keeps refusing dead-letters
// the vCon so it can be replayed.
type webhook struct {
	deps       Deps
	urls       []*url.URL
	headers    map[string]string
	timeout    time.Duration
	retries    int
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
	w := &webhook{deps: deps}
	for i, s := range rawURLs {
		u, err := parseHTTPURL(s)
		if err != nil {
			return nil, fmt.Errorf("option %q: item %d: %w", "webhook-urls", i, err)
		}
		w.urls = append(w.urls, u)
	}
	if w.headers, err = o.stringMap("headers"); err != nil {
		return nil, err
	}
	seconds, err := o.number("timeout", 30)
	if err != nil {
		return nil, err
	}
	if seconds <= 0 {
		return nil, fmt.Errorf("option %q: want a positive number of seconds, got %v", "timeout", seconds)
	}
	w.timeout = time.Duration(seconds * float64(time.Second))
	retries, err := o.integer("retries", 3)
	if err != nil {
		return nil, err
	}
	if retries < 0 || retries > 20 {
		return nil, fmt.Errorf("option %q: want 0 to 20, got %d", "retries", retries)
	}
	w.retries = int(retries)
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
	for _, u := range w.urls {
		if err := w.deliver(ctx, u, body); err != nil {
			return Result{}, err
		}
	}
	return Continue, nil
}

// deliver retries transport errors, timeouts, 408, 429 and 5xx with
// exponential backoff; any other answer is final.
func (w *webhook) deliver(ctx context.Context, u *url.URL, body []byte) error {
	wait := webhookBackoff
	var last error
	attempts := 0
	for {
		retry, err := w.post(ctx, u, body)
		attempts++
		if err == nil {
			return nil
		}
		last = err
		if !retry || attempts > w.retries {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("webhook to %s: %w (gave up: %w)", u.Host, last, ctx.Err())
		case <-t.C:
		}
		wait = min(wait*2, webhookMaxBackoff)
	}
	return fmt.Errorf("webhook to %s: %w (%d attempts)", u.Host, last, attempts)
}

func (w *webhook) post(ctx context.Context, u *url.URL, body []byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	for k, val := range w.headers {
		req.Header.Set(k, val)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.deps.HTTP.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return true, fmt.Errorf("no answer within %s", w.timeout)
		}
		return true, transportError(err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode <= 299:
		return false, nil
	case resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
		return true, fmt.Errorf("status %d", resp.StatusCode)
	}
	return false, fmt.Errorf("status %d", resp.StatusCode)
}
