package links

// One way to call an external vendor: a request rebuilt per attempt, a
// per-attempt timeout, retries with exponential back-off on 408, 429, 5xx
// and transport failures (honouring Retry-After), immediate failure on other
// 4xx. Errors name the vendor, the operation and the status; they never
// carry a URL (webhook and pre-signed URLs are secrets), a credential or a
// request body.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Back-off between attempts: aiBackoffBase doubled per attempt up to
// aiBackoffMax (conserver's tenacity wait_exponential(min=1, max=65)). A
// vendor's Retry-After wins, capped by aiRetryAfterMax. Tests shrink these.
var (
	aiBackoffBase   = time.Second
	aiBackoffMax    = 65 * time.Second
	aiRetryAfterMax = 2 * time.Minute
	// aiSleep waits d or until ctx ends; tests replace it to observe waits.
	aiSleep = func(ctx context.Context, d time.Duration) error {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}
)

const (
	// aiDefaultRetries is how often a failed call is retried (compat doc:
	// "6 retries with back-off, then DLQ").
	aiDefaultRetries = 6
	aiDefaultTimeout = 120 * time.Second
	// aiMaxResponseBytes bounds what is read from a vendor's answer.
	aiMaxResponseBytes = 32 << 20
)

// aiCall describes one logical vendor call.
type aiCall struct {
	vendor    string // "openai", "azure", "deepgram", "slack", ...: names the service in errors
	operation string // "chat/completions", "audio/transcriptions", ...
	// link and model label vcon_llm_requests_total; link "" records nothing.
	link, model string
	retries     int
	timeout     time.Duration
	// secrets are removed from any vendor message quoted in an error.
	secrets []string
	// newRequest builds the request for one attempt (bodies are re-read).
	newRequest func(ctx context.Context) (*http.Request, error)
}

// aiStatusError is a non-2xx answer.
type aiStatusError struct {
	call    string
	status  int
	message string
	tries   int
}

func (e *aiStatusError) Error() string {
	s := fmt.Sprintf("%s: HTTP %d", e.call, e.status)
	if e.tries > 1 {
		s += fmt.Sprintf(" after %d attempts", e.tries)
	}
	if e.message != "" {
		s += ": " + e.message
	}
	return s
}

func (c *aiCall) name() string { return c.vendor + " " + c.operation }

func (c *aiCall) record(outcome string) {
	if c.link != "" {
		llmRequests.WithLabelValues(c.link, c.model, outcome).Inc()
	}
}

// do runs the call and returns the body of its 2xx answer.
func (c *aiCall) do(ctx context.Context, hc *http.Client) ([]byte, error) {
	timeout := c.timeout
	if timeout <= 0 {
		timeout = aiDefaultTimeout
	}
	var last error
	for attempt := 0; ; attempt++ {
		body, wait, retry, err := c.attempt(ctx, hc, timeout)
		if err == nil {
			return body, nil
		}
		last = err
		var se *aiStatusError
		if errors.As(err, &se) {
			se.tries = attempt + 1
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", c.name(), ctx.Err())
		}
		if !retry || attempt >= c.retries {
			if se == nil && attempt > 0 {
				return nil, fmt.Errorf("%w (after %d attempts)", last, attempt+1)
			}
			return nil, last
		}
		if wait <= 0 {
			wait = aiBackoff(attempt)
		}
		if err := aiSleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("%s: %w (while waiting to retry: %v)", c.name(), ctx.Err(), last)
		}
	}
}

// attempt sends once. It returns the body, or an error with whether it is
// worth retrying and how long the vendor asked us to wait.
func (c *aiCall) attempt(ctx context.Context, hc *http.Client, timeout time.Duration) ([]byte, time.Duration, bool, error) {
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := c.newRequest(actx)
	if err != nil {
		return nil, 0, false, fmt.Errorf("%s: build request: %w", c.name(), aiStripURL(err))
	}
	resp, err := hc.Do(req)
	if err != nil {
		c.record("transport_error")
		err = aiStripURL(err)
		if actx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			return nil, 0, true, fmt.Errorf("%s: no answer within %s", c.name(), timeout)
		}
		return nil, 0, true, fmt.Errorf("%s: request failed: %w", c.name(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, aiMaxResponseBytes+1))
	if err != nil {
		c.record("transport_error")
		return nil, 0, true, fmt.Errorf("%s: reading answer (HTTP %d): %w", c.name(), resp.StatusCode, aiStripURL(err))
	}
	if len(body) > aiMaxResponseBytes {
		c.record("invalid_response")
		return nil, 0, false, fmt.Errorf("%s: answer larger than %d bytes", c.name(), aiMaxResponseBytes)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return body, 0, false, nil
	}
	se := &aiStatusError{call: c.name(), status: resp.StatusCode, message: aiVendorMessage(body, c.secrets)}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		c.record("rate_limited")
		return nil, aiRetryAfter(resp.Header, time.Now()), true, se
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode >= 500:
		c.record("server_error")
		return nil, aiRetryAfter(resp.Header, time.Now()), true, se
	default:
		c.record("client_error")
		return nil, 0, false, se
	}
}

func aiBackoff(attempt int) time.Duration {
	d := aiBackoffBase
	for i := 0; i < attempt && d < aiBackoffMax; i++ {
		d *= 2
	}
	return min(d, aiBackoffMax)
}

// aiRetryAfter reads retry-after-ms (OpenAI) or Retry-After (seconds or an
// HTTP date), capped; 0 when absent or unreadable.
func aiRetryAfter(h http.Header, now time.Time) time.Duration {
	var d time.Duration
	if ms, err := strconv.ParseFloat(strings.TrimSpace(h.Get("Retry-After-Ms")), 64); err == nil && ms > 0 {
		d = time.Duration(ms * float64(time.Millisecond))
	} else if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseFloat(v, 64); err == nil {
			if secs > 0 {
				d = time.Duration(secs * float64(time.Second))
			}
		} else if t, err := http.ParseTime(v); err == nil {
			d = t.Sub(now)
		}
	}
	if d <= 0 {
		return 0
	}
	return min(d, aiRetryAfterMax)
}

// aiStripURL drops the URL net/http puts in its errors: webhook URLs and
// pre-signed download URLs carry credentials.
func aiStripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

var aiKeyLike = regexp.MustCompile(`\b(sk|gsk|xox[abpr]|key)[-_][A-Za-z0-9_\-*.]{6,}`)

// aiVendorMessage extracts a short reason from a vendor's error body (OpenAI
// and Groq {"error":{"message","code"}}, Deepgram {"err_code","err_msg"},
// Slack {"error"} or a text body), with credentials removed: OpenAI quotes
// a masked key back in its 401.
func aiVendorMessage(body []byte, secrets []string) string {
	var msg string
	if v, err := aiDecodeJSON(body); err == nil {
		if m, ok := v.(map[string]any); ok {
			msg = aiErrorField(m)
		}
	} else {
		msg = strings.TrimSpace(string(body))
	}
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	msg = aiKeyLike.ReplaceAllString(msg, "[redacted]")
	msg = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, msg)
	if r := []rune(msg); len(r) > 200 {
		msg = string(r[:200]) + "…"
	}
	return msg
}

func aiErrorField(m map[string]any) string {
	var parts []string
	add := func(v any) {
		if s, ok := v.(string); ok && s != "" {
			parts = append(parts, s)
		}
	}
	switch e := m["error"].(type) {
	case map[string]any:
		add(e["code"])
		if len(parts) == 0 {
			add(e["type"])
		}
		add(e["message"])
	case string:
		add(e)
	}
	add(m["err_code"])
	add(m["err_msg"])
	if len(parts) == 0 {
		add(m["message"])
		add(m["detail"])
	}
	return strings.Join(parts, ": ")
}
