package httpx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode"
)

const (
	// DefaultVendorTimeout bounds one attempt of a Call without a Timeout.
	DefaultVendorTimeout = 120 * time.Second
	// MaxAnswerBytes bounds what is read from a vendor's answer.
	MaxAnswerBytes = 32 << 20
)

// VendorPolicy is the retry policy of calls to external vendors:
// conserver's tenacity wait_exponential(min=1, max=65), and the compat
// doc's "6 retries with back-off, then DLQ". A vendor's Retry-After is
// honoured up to two minutes.
var VendorPolicy = Policy{Retries: 6, Base: time.Second, Max: 65 * time.Second, MaxRetryAfter: 2 * time.Minute}

// Call is one logical call to an external vendor: a request rebuilt per
// attempt, a per-attempt timeout, retries on 408, 429, 5xx and transport
// failures, immediate failure on other 4xx.
type Call struct {
	// Vendor and Operation name the call in errors: "openai
	// chat/completions", "slack chat.postMessage".
	Vendor, Operation string
	// Policy says how often to retry; Timeout bounds each attempt
	// (DefaultVendorTimeout when 0).
	Policy  Policy
	Timeout time.Duration
	// Secrets are removed from any vendor message quoted in an error.
	Secrets []string
	// NewRequest builds the request for one attempt (bodies are re-read).
	NewRequest func(ctx context.Context) (*http.Request, error)
	// Tokens estimates the tokens one attempt uses, for a Link's
	// tokens_per_minute (0 for calls not metered in tokens); Usage, when
	// set, reads what the vendor's 2xx answer says it used (0 when it does
	// not say), which corrects the estimate.
	Tokens int64
	Usage  func(body []byte) int64
	// Record, when set, is told the outcome of each failed attempt
	// (transport_error, rate_limited, server_error, client_error,
	// invalid_response); the caller records ok once it has read the answer.
	Record func(outcome string)
}

// ErrAnswerTooLarge is a 2xx answer over MaxAnswerBytes, not read: asking
// again gets the same answer, so callers treat it as the request's own
// failure, not the vendor's.
var ErrAnswerTooLarge = fmt.Errorf("answer larger than %d bytes", MaxAnswerBytes)

// StatusError is a vendor's non-2xx answer.
type StatusError struct {
	Call   string
	Status int
	// Message is the vendor's reason, scrubbed of credentials.
	Message string
	Tries   int
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("%s: HTTP %d", e.Call, e.Status)
	if e.Tries > 1 {
		s += fmt.Sprintf(" after %d attempts", e.Tries)
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Name is how errors name the call.
func (c *Call) Name() string { return c.Vendor + " " + c.Operation }

func (c *Call) record(outcome string) {
	if c.Record != nil {
		c.Record(outcome)
	}
}

// Do runs the call and returns the body of its 2xx answer.
func (c *Call) Do(ctx context.Context, hc *http.Client) ([]byte, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultVendorTimeout
	}
	var body []byte
	attempts, err := Retry(ctx, c.Policy, func(ctx context.Context) error {
		return Admit(ctx, c.Tokens, func(ctx context.Context) (int64, error) {
			var err error
			body, err = c.attempt(ctx, hc, timeout)
			if err != nil || c.Usage == nil {
				return 0, err
			}
			return c.Usage(body), nil
		})
	})
	if err == nil {
		return body, nil
	}
	// A status error says how often it was tried in its own text; other
	// failures say it here.
	var se *StatusError
	if errors.As(err, &se) {
		se.Tries = attempts
	} else if attempts > 1 {
		err = fmt.Errorf("%w (after %d attempts)", err, attempts)
	}
	return nil, err
}

// attempt sends once and returns the answer's body, or an error marked
// Retryable when it is worth another try.
func (c *Call) attempt(ctx context.Context, hc *http.Client, timeout time.Duration) ([]byte, error) {
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := c.NewRequest(actx)
	if err != nil {
		return nil, fmt.Errorf("%s: build request: %w", c.Name(), StripURL(err))
	}
	resp, err := hc.Do(req)
	if err != nil {
		c.record("transport_error")
		if actx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			return nil, Retryable(fmt.Errorf("%s: no answer within %s", c.Name(), timeout), 0)
		}
		return nil, Retryable(fmt.Errorf("%s: request failed: %w", c.Name(), StripURL(err)), 0)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswerBytes+1))
	if err != nil {
		c.record("transport_error")
		return nil, Retryable(fmt.Errorf("%s: reading answer (HTTP %d): %w", c.Name(), resp.StatusCode, StripURL(err)), 0)
	}
	if len(body) > MaxAnswerBytes {
		c.record("invalid_response")
		return nil, fmt.Errorf("%s: %w", c.Name(), ErrAnswerTooLarge)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return body, nil
	}
	se := &StatusError{Call: c.Name(), Status: resp.StatusCode, Message: VendorMessage(body, c.Secrets)}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		c.record("rate_limited")
	case RetryableStatus(resp.StatusCode):
		c.record("server_error")
	default:
		c.record("client_error")
		return nil, se
	}
	return nil, RetryableAnswer(se, resp)
}

// StripURL drops the URL net/http puts in its errors: webhook URLs and
// pre-signed download URLs carry credentials in their paths and queries.
func StripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

var keyLike = regexp.MustCompile(`\b(sk|gsk|xox[abpr]|key)[-_][A-Za-z0-9_\-*.]{6,}`)

// VendorMessage extracts a short reason from a vendor's error body (OpenAI
// and Groq {"error":{"message","code"}}, Deepgram {"err_code","err_msg"},
// Slack {"error"} or a text body), with credentials removed: OpenAI quotes
// a masked key back in its 401.
func VendorMessage(body []byte, secrets []string) string {
	var msg string
	if v, err := decodeOne(body); err != nil {
		msg = strings.TrimSpace(string(body))
	} else if m, ok := v.(map[string]any); ok {
		msg = errorField(m)
	}
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	msg = keyLike.ReplaceAllString(msg, "[redacted]")
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

// decodeOne reads a body that is exactly one JSON value; a body with
// trailing data is text.
func decodeOne(body []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data")
	}
	return v, nil
}

func errorField(m map[string]any) string {
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
		// Express and Koa envelopes put a status word in "error" and the
		// reason in "message" (vcon-mcp: {"error":"Error","message":...}).
		add(m["message"])
	}
	add(m["err_code"])
	add(m["err_msg"])
	if len(parts) == 0 {
		add(m["message"])
		add(m["detail"])
	}
	return strings.Join(parts, ": ")
}

// JSONError describes a JSON decoding error without quoting the input: a
// vendor's answer may quote the vCon.
func JSONError(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q has the wrong type", te.Field)
	}
	return "invalid JSON"
}
