package links

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	optval "github.com/vcon-operator/vcon-operator/internal/options"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// links.http_step is the contract for steps written in any language: the
// Link CRD's `http:` steps and its `container:` steps (a sidecar on
// localhost) both render to it. docs/steps.md is the user-facing description;
// keep the two in step.
//
//	POST {url}  Content-Type: application/json, X-Vcon-Uuid: {uuid}, + headers
//	200 + vCon JSON (same uuid)  → the document is replaced, the chain goes on
//	204                          → halt (the vCon is filtered)
//	429, 5xx, transport error    → retried with backoff, then an error (DLQ)
//	anything else                → an error (DLQ)
func init() { Register("links.http_step", newHTTPStep) }

const (
	httpStepDefaultTimeout = 30 * time.Second
	httpStepDefaultRetries = 2
	// httpStepMaxRetries bounds a typo such as `retries: 1000` that would
	// hold a worker for hours on a dead step.
	httpStepMaxRetries = 10
	// httpStepMaxBody bounds what a step may send back; vCons carrying
	// inline recordings are large, but a runaway step must not exhaust the
	// worker's memory.
	httpStepMaxBody = 256 << 20
)

// stepUUIDHeader is the request header carrying the uuid, so a step can log and
// deduplicate without parsing the body.
const stepUUIDHeader = "X-Vcon-Uuid"

type httpStep struct {
	name    string
	url     string
	host    string
	headers map[string]string
	timeout time.Duration
	retries int
	client  *http.Client
	// backoff is the wait before retry number attempt (1-based); tests
	// shorten it.
	backoff func(attempt int) time.Duration
}

func newHTTPStep(name string, options map[string]any, deps Deps) (Link, error) {
	raw, err := optval.String(options, "url")
	if err != nil {
		return nil, err
	}
	if raw == "" {
		return nil, errors.New(`option "url" is required: the http(s) URL the step listens on`)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The URL may carry a token in its query, so it is not quoted.
		return nil, errors.New(`option "url": want an absolute http:// or https:// URL`)
	}
	headers, err := stepHeaders(options)
	if err != nil {
		return nil, err
	}
	timeout, err := optval.Duration(options, "timeout", httpStepDefaultTimeout)
	if err != nil {
		return nil, err
	}
	retries, err := stepoptCount(options, "retries", httpStepDefaultRetries, httpStepMaxRetries)
	if err != nil {
		return nil, err
	}
	client := deps.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	return &httpStep{
		name:    name,
		url:     raw,
		host:    u.Host,
		headers: headers,
		timeout: timeout,
		retries: retries,
		client:  client,
		backoff: httpStepBackoff,
	}, nil
}

// httpStepBackoff waits 0.5 s, 1 s, 2 s, ... (capped at 10 s), each with up
// to 50 % jitter so that workers retrying the same step do not beat in step.
func httpStepBackoff(attempt int) time.Duration {
	d := 500 * time.Millisecond << min(attempt-1, 5)
	d = min(d, 10*time.Second)
	return d/2 + rand.N(d/2+1)
}

func (s *httpStep) Run(ctx context.Context, v *vcon.VCon) (Result, error) {
	uuid := v.UUID()
	body, err := v.Marshal()
	if err != nil {
		return Result{}, fmt.Errorf("step %s: encode vcon: %w", s.host, err)
	}
	var lastErr error
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			wait := s.backoff(attempt)
			if ra, ok := stepRetryAfter(lastErr); ok {
				wait = max(wait, ra)
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return Result{}, fmt.Errorf("%w (gave up waiting to retry: %v)", lastErr, ctx.Err())
			case <-t.C:
			}
		}
		res, err := s.call(ctx, uuid, body, v)
		if err == nil {
			return res, nil
		}
		lastErr = err
		var te *stepTransientError
		if !errors.As(err, &te) || attempt >= s.retries || ctx.Err() != nil {
			if attempt > 0 {
				return Result{}, fmt.Errorf("%w (after %d attempts)", err, attempt+1)
			}
			return Result{}, err
		}
	}
}

// stepTransientError marks a failure worth retrying: the step may answer
// next time (transport error, timeout, 429, 5xx).
type stepTransientError struct {
	err        error
	retryAfter time.Duration
}

func (e *stepTransientError) Error() string { return e.err.Error() }
func (e *stepTransientError) Unwrap() error { return e.err }

func stepRetryAfter(err error) (time.Duration, bool) {
	var te *stepTransientError
	if errors.As(err, &te) && te.retryAfter > 0 {
		return te.retryAfter, true
	}
	return 0, false
}

// call makes one attempt. Errors name the step's host, never its full URL
// (a query may carry a token) and never the response body (it may quote
// the vCon).
func (s *httpStep) call(ctx context.Context, uuid string, body []byte, v *vcon.VCon) (Result, error) {
	actx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return Result{}, fmt.Errorf("step %s: build request: %v", s.host, stepoptURLErr(err))
	}
	for k, val := range s.headers {
		req.Header.Set(k, val)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set(stepUUIDHeader, uuid)
	resp, err := s.client.Do(req)
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return Result{}, &stepTransientError{err: fmt.Errorf("step %s: no answer within %s", s.host, s.timeout)}
		}
		return Result{}, &stepTransientError{err: fmt.Errorf("step %s: %v", s.host, stepoptURLErr(err))}
	}
	defer resp.Body.Close()

	switch {
	case resp.StatusCode == http.StatusNoContent:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return Halted, nil
	case resp.StatusCode == http.StatusOK:
		data, err := io.ReadAll(io.LimitReader(resp.Body, httpStepMaxBody+1))
		if err != nil {
			if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				return Result{}, &stepTransientError{err: fmt.Errorf("step %s: response not read within %s", s.host, s.timeout)}
			}
			return Result{}, &stepTransientError{err: fmt.Errorf("step %s: read response: %v", s.host, err)}
		}
		if len(data) > httpStepMaxBody {
			return Result{}, fmt.Errorf("step %s: response larger than %d MiB", s.host, httpStepMaxBody>>20)
		}
		doc, err := vcon.Parse(data)
		if err != nil {
			return Result{}, fmt.Errorf("step %s: 200 response is not a vCon JSON object (answer 204 to filter the vCon): %v", s.host, stepoptParseErr(err))
		}
		if got := doc.UUID(); got != uuid {
			return Result{}, fmt.Errorf("step %s: step changed the uuid (sent %s, got %q): a step must return the vCon it was given", s.host, uuid, optval.Truncate(got, 64))
		}
		v.Doc = doc.Doc
		return Continue, nil
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	err = fmt.Errorf("step %s answered %s", s.host, stepoptStatus(resp))
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		return Result{}, &stepTransientError{err: err, retryAfter: stepoptRetryAfter(resp.Header.Get("Retry-After"))}
	}
	return Result{}, fmt.Errorf("%w (want 200 with the vCon or 204 to filter)", err)
}

func stepoptStatus(resp *http.Response) string {
	if t := http.StatusText(resp.StatusCode); t != "" {
		return fmt.Sprintf("%d %s", resp.StatusCode, t)
	}
	return strconv.Itoa(resp.StatusCode)
}

// stepoptRetryAfter reads Retry-After in seconds (the HTTP-date form is
// rare from services and ignored); capped so a step cannot park a worker.
func stepoptRetryAfter(h string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(h))
	if err != nil || n <= 0 {
		return 0
	}
	return min(time.Duration(n)*time.Second, 30*time.Second)
}

// stepoptURLErr drops the URL *url.Error puts in its message: it may carry
// credentials in its query or userinfo.
func stepoptURLErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// stepoptParseErr keeps the parse error's kind but not its text beyond a
// short bound: JSON errors can quote the offending input.
func stepoptParseErr(err error) string {
	if errors.Is(err, vcon.ErrNotObject) {
		return "not a JSON object"
	}
	return optval.Truncate(err.Error(), 120)
}

func stepoptCount(o map[string]any, key string, def, maximum int) (int, error) {
	v, ok := o[key]
	if !ok || v == nil {
		return def, nil
	}
	f, ok := optval.Float(v)
	if !ok || f != float64(int(f)) || f < 0 || f > float64(maximum) {
		return 0, fmt.Errorf("option %q: want a whole number from 0 to %d", key, maximum)
	}
	return int(f), nil
}

// stepoptUnexpanded finds a `${NAME}` left in a header value. The config
// loader interpolates `${VAR}` from the environment (where the operator
// mounts the Link's Secrets); one that is still there means the variable
// was not set, and sending it literally would only earn a 401 per vCon.
var stepoptUnexpanded = regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*\}`)

// stepHeaders reads the headers option and refuses a `${NAME}` the config
// loader could not resolve.
func stepHeaders(o map[string]any) (map[string]string, error) {
	headers, err := optval.Headers(o, "headers")
	if err != nil {
		return nil, err
	}
	for name, value := range headers {
		if ref := stepoptUnexpanded.FindString(value); ref != "" {
			return nil, fmt.Errorf("option %q: value of %q still holds %s: that environment variable is not set (is the Secret mounted?)", "headers", name, ref)
		}
	}
	return headers, nil
}
