package storage

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/httpx"
	"github.com/vcon-operator/vcon-operator/internal/options"
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

func newWebhook(_ context.Context, _ string, raw map[string]any, deps Deps) (Storage, error) {
	o := options.New(raw)
	var targets []httpx.Target
	for _, u := range o.URLs("webhook-urls") {
		if t, err := httpx.ParseTarget(u); err == nil { // the reader checked it
			targets = append(targets, t)
		}
	}
	if len(targets) == 0 && o.Problems() == 0 {
		o.Failf("webhook-urls", "required: a list of http(s) URLs to POST each vCon to")
	}
	post := httpx.Post{Client: deps.HTTP, Headers: o.Headers("headers"), Timeout: o.Duration("timeout", webhookDefaultTimeout)}
	if err := o.Err(); err != nil {
		return nil, err
	}
	if post.Client == nil {
		post.Client = http.DefaultClient
	}
	return &webhookStorage{targets: targets, post: post}, nil
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
