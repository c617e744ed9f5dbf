package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	optval "github.com/vcon-operator/vcon-operator/internal/options"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// storage.webhook POSTs each finished vCon to every URL in `webhook-urls`.
// Unlike conserver, which only logs a non-2xx answer and loses the write, a
// transport error or a non-2xx answer fails the save, so the pipeline
// retries it and finally dead-letters the vCon. A retry posts to every URL
// again: receivers deduplicate on the uuid (also sent as X-Vcon-Uuid).
func init() { Register("storage.webhook", newWebhook) }

const webhookDefaultTimeout = 30 * time.Second

type webhookTarget struct {
	url  string
	host string // what errors name: the URL may carry a token
}

type webhookStorage struct {
	targets []webhookTarget
	headers map[string]string
	timeout time.Duration
	client  *http.Client
}

func newWebhook(_ context.Context, _ string, options map[string]any, deps Deps) (Storage, error) {
	urls, err := webhookOptURLs(options, "webhook-urls")
	if err != nil {
		return nil, err
	}
	if len(urls) == 0 {
		return nil, errors.New(`option "webhook-urls" is required: a list of http(s) URLs to POST each vCon to`)
	}
	targets := make([]webhookTarget, len(urls))
	for i, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			// The URL may carry a token, so it is not quoted.
			return nil, fmt.Errorf(`option "webhook-urls": item %d: want an absolute http:// or https:// URL`, i)
		}
		targets[i] = webhookTarget{url: raw, host: u.Host}
	}
	headers, err := optval.Headers(options, "headers")
	if err != nil {
		return nil, err
	}
	timeout, err := optval.Duration(options, "timeout", webhookDefaultTimeout)
	if err != nil {
		return nil, err
	}
	client := deps.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	return &webhookStorage{targets: targets, headers: headers, timeout: timeout, client: client}, nil
}

// Save posts to every URL, even after one failed, and reports every
// failure: the operator sees at once which receivers are down. The failure
// is permanent only when every failed receiver refused the vCon with a
// 4xx: while one is merely down, a retry can still deliver to it.
func (w *webhookStorage) Save(ctx context.Context, v *vcon.VCon) error {
	body, err := v.Marshal()
	if err != nil {
		return Permanent(fmt.Errorf("webhook: encode vcon: %w", err))
	}
	var errs []error
	refused := 0
	for _, t := range w.targets {
		if err := w.post(ctx, t, v.UUID(), body); err != nil {
			errs = append(errs, err)
			var se *webhookStatusError
			if errors.As(err, &se) && permanentStatus(se.code) {
				refused++
			}
		}
	}
	if len(errs) > 0 && refused == len(errs) {
		return Permanent(errors.Join(errs...))
	}
	return errors.Join(errs...)
}

// webhookStatusError is a receiver's non-2xx answer.
type webhookStatusError struct {
	host   string
	status string
	code   int
}

// The body is not quoted: receivers echo the request back.
func (e *webhookStatusError) Error() string {
	return fmt.Sprintf("webhook %s answered %s", e.host, e.status)
}

func (w *webhookStorage) post(ctx context.Context, t webhookTarget, uuid string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook %s: build request: %v", t.host, webhookURLErr(err))
	}
	for k, val := range w.headers {
		req.Header.Set(k, val)
	}
	req.Header.Set("Content-Type", "application/json")
	if uuid != "" {
		req.Header.Set("X-Vcon-Uuid", uuid)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("webhook %s: no answer within %s", t.host, w.timeout)
		}
		return fmt.Errorf("webhook %s: %v", t.host, webhookURLErr(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16)) // lets the connection be reused
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &webhookStatusError{host: t.host, status: resp.Status, code: resp.StatusCode}
	}
	return nil
}

// webhookURLErr drops the URL *url.Error puts in its message: it may carry
// a token in its query or userinfo.
func webhookURLErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// webhookOptURLs reads a list of URLs; a single string is taken as a list
// of one, a forgiving reading of a common YAML slip.
func webhookOptURLs(o map[string]any, key string) ([]string, error) {
	v, ok := o[key]
	if !ok || v == nil {
		return nil, nil
	}
	switch t := v.(type) {
	case string:
		if strings.TrimSpace(t) == "" {
			return nil, nil
		}
		return []string{strings.TrimSpace(t)}, nil
	case []string:
		return t, nil
	case []any:
		out := make([]string, len(t))
		for i, e := range t {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("option %q: item %d: want a URL string, got %T", key, i, e)
			}
			out[i] = strings.TrimSpace(s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("option %q: want a list of URLs, got %T", key, v)
}
