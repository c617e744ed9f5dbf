package storage

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/httpx"
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

type webhookStorage struct {
	targets []httpx.Target
	post    httpx.Post
}

func newWebhook(_ context.Context, _ string, options map[string]any, deps Deps) (Storage, error) {
	urls, err := webhookOptURLs(options, "webhook-urls")
	if err != nil {
		return nil, err
	}
	if len(urls) == 0 {
		return nil, errors.New(`option "webhook-urls" is required: a list of http(s) URLs to POST each vCon to`)
	}
	targets := make([]httpx.Target, len(urls))
	for i, raw := range urls {
		if targets[i], err = httpx.ParseTarget(raw); err != nil {
			return nil, fmt.Errorf(`option "webhook-urls": item %d: %w`, i, err)
		}
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
	return &webhookStorage{targets: targets, post: httpx.Post{Client: client, Headers: headers, Timeout: timeout}}, nil
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
		if err := w.post.Send(ctx, t, v.UUID(), body); err != nil {
			errs = append(errs, fmt.Errorf("webhook %w", err))
			var ae *httpx.AnswerError
			if errors.As(err, &ae) && permanentStatus(ae.Status) {
				refused++
			}
		}
	}
	if len(errs) > 0 && refused == len(errs) {
		return Permanent(errors.Join(errs...))
	}
	return errors.Join(errs...)
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
