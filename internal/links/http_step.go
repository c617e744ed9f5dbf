package links

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/httpx"
	"github.com/vcon-operator/vcon-operator/internal/options"
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
//	408, 429, 5xx, transport error → retried with backoff, then an error (DLQ)
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

type httpStep struct {
	name    string
	url     string
	host    string
	headers map[string]string
	timeout time.Duration
	retries int
	client  *http.Client
	// policy retries transient failures; tests shorten its waits.
	policy httpx.Policy
}

func newHTTPStep(name string, raw map[string]any, deps Deps) (Link, error) {
	o := options.New(raw)
	s := &httpStep{
		name:    name,
		url:     o.URL("url", ""),
		headers: o.Headers("headers"),
		timeout: o.Duration("timeout", httpStepDefaultTimeout),
		retries: o.IntRange("retries", httpStepDefaultRetries, 0, httpStepMaxRetries),
		client:  deps.HTTP,
	}
	if !o.Has("url") {
		o.Failf("url", "required: the http(s) URL the step listens on")
	}
	if err := o.Err(); err != nil {
		return nil, err
	}
	t, _ := httpx.ParseTarget(s.url) // the reader checked it
	s.host = t.Host
	if s.client == nil {
		s.client = http.DefaultClient
	}
	// 0.5 s, 1 s, 2 s, ... up to 10 s, with jitter; a step's Retry-After
	// is honoured up to 30 s, so one answer cannot park a worker.
	s.policy = httpx.Policy{Retries: s.retries, Base: 500 * time.Millisecond, Max: 10 * time.Second, Jitter: true, MaxRetryAfter: 30 * time.Second}
	return s, nil
}

func (s *httpStep) Run(ctx context.Context, v *vcon.VCon) (Result, error) {
	uuid := v.UUID()
	body, err := v.Marshal()
	if err != nil {
		return Result{}, fmt.Errorf("step %s: encode vcon: %w", s.host, err)
	}
	var res Result
	attempts, err := httpx.Retry(ctx, s.policy, func(ctx context.Context) error {
		return httpx.Admit(ctx, 0, func(ctx context.Context) (int64, error) {
			var err error
			res, err = s.call(ctx, uuid, body, v)
			return 0, err
		})
	})
	if err != nil {
		if attempts > 1 {
			return Result{}, fmt.Errorf("%w (after %d attempts)", err, attempts)
		}
		return Result{}, err
	}
	return res, nil
}

// call makes one attempt. Errors name the step's host, never its full URL
// (a query may carry a token) and never the response body (it may quote
// the vCon).
func (s *httpStep) call(ctx context.Context, uuid string, body []byte, v *vcon.VCon) (Result, error) {
	actx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return Result{}, fmt.Errorf("step %s: build request: %v", s.host, httpx.StripURL(err))
	}
	for k, val := range s.headers {
		req.Header.Set(k, val)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set(httpx.UUIDHeader, uuid)
	resp, err := s.client.Do(req)
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return Result{}, httpx.Retryable(fmt.Errorf("step %s: no answer within %s", s.host, s.timeout), 0)
		}
		return Result{}, httpx.Retryable(fmt.Errorf("step %s: %v", s.host, httpx.StripURL(err)), 0)
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
				return Result{}, httpx.Retryable(fmt.Errorf("step %s: response not read within %s", s.host, s.timeout), 0)
			}
			return Result{}, httpx.Retryable(fmt.Errorf("step %s: read response: %v", s.host, err), 0)
		}
		if len(data) > httpStepMaxBody {
			return Result{}, fmt.Errorf("step %s: response larger than %d MiB", s.host, httpStepMaxBody>>20)
		}
		doc, err := vcon.Parse(data)
		if err != nil {
			return Result{}, fmt.Errorf("step %s: 200 response is not a vCon JSON object (answer 204 to filter the vCon): %v", s.host, parseErrText(err))
		}
		if got := doc.UUID(); got != uuid {
			return Result{}, fmt.Errorf("step %s: step changed the uuid (sent %s, got %q): a step must return the vCon it was given", s.host, uuid, options.Truncate(got, 64))
		}
		v.Replace(doc)
		return Continue, nil
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	err = fmt.Errorf("step %w", &httpx.AnswerError{Host: s.host, Status: resp.StatusCode})
	if httpx.RetryableStatus(resp.StatusCode) {
		return Result{}, httpx.RetryableAnswer(err, resp)
	}
	return Result{}, fmt.Errorf("%w (want 200 with the vCon or 204 to filter)", err)
}

// parseErrText keeps the parse error's kind but not its text beyond a
// short bound: JSON errors can quote the offending input.
func parseErrText(err error) string {
	if errors.Is(err, vcon.ErrNotObject) {
		return "not a JSON object"
	}
	return options.Truncate(err.Error(), 120)
}
