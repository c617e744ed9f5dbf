package httpx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// UUIDHeader carries the vCon's uuid on every POST of a vCon, so that a
// receiver can log and deduplicate without parsing the body.
const UUIDHeader = "X-Vcon-Uuid"

// Target is a URL to POST to. Errors name it by its host only: the URL
// may carry a token in its path, query or userinfo.
type Target struct {
	URL, Host string
}

// ParseTarget accepts an absolute http:// or https:// URL. The error does
// not quote it.
func ParseTarget(raw string) (Target, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Target{}, errors.New("want an absolute http:// or https:// URL")
	}
	return Target{URL: raw, Host: u.Host}, nil
}

// AnswerError is a receiver's non-2xx answer. Its body is not quoted:
// receivers echo the request, the vCon, back.
type AnswerError struct {
	Host   string
	Status int
}

func (e *AnswerError) Error() string {
	if t := http.StatusText(e.Status); t != "" {
		return fmt.Sprintf("%s answered %d %s", e.Host, e.Status, t)
	}
	return fmt.Sprintf("%s answered %d", e.Host, e.Status)
}

// Post is a JSON POST of a vCon to webhooks (links.webhook,
// storage.webhook).
type Post struct {
	Client  *http.Client
	Headers map[string]string
	// Timeout bounds one attempt.
	Timeout time.Duration
}

// Send POSTs body to t once. A 2xx answer is success; any other is an
// *AnswerError, marked Retryable (with the Retry-After asked for) for
// 408, 429 and 5xx. Transport errors and timeouts are Retryable too. The
// configured headers go first, so that they cannot replace Content-Type
// or the uuid. The POST goes through the running link's Gate (Admit).
func (p Post) Send(ctx context.Context, t Target, uuid string, body []byte) error {
	return Admit(ctx, 0, func(ctx context.Context) (int64, error) { return 0, p.send(ctx, t, uuid, body) })
}

func (p Post) send(ctx context.Context, t Target, uuid string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: build request: %v", t.Host, StripURL(err))
	}
	for k, v := range p.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	if uuid != "" {
		req.Header.Set(UUIDHeader, uuid)
	}
	resp, err := p.Client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return Retryable(fmt.Errorf("%s: no answer within %s", t.Host, p.Timeout), 0)
		}
		return Retryable(fmt.Errorf("%s: %v", t.Host, StripURL(err)), 0)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16)) // lets the connection be reused
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return nil
	}
	ae := &AnswerError{Host: t.Host, Status: resp.StatusCode}
	if RetryableStatus(resp.StatusCode) {
		return RetryableAnswer(ae, resp)
	}
	return ae
}
