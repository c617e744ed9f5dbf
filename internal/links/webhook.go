package links

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vcon-operator/vcon-operator/internal/httpx"
	"github.com/vcon-operator/vcon-operator/internal/options"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

func init() { Register("links.webhook", newWebhook) }

// webhookPolicy waits 0.5 s before the first retry, doubling up to 30 s so
// that many retries stay bounded; a receiver's Retry-After is honoured up
// to 30 s. Tests shrink it.
var webhookPolicy = httpx.Policy{Base: 500 * time.Millisecond, Max: 30 * time.Second, MaxRetryAfter: 30 * time.Second}

// webhook POSTs the vCon to each configured URL. A transport failure or
// a timeout is retried and then fails the link, as in conserver (where
// requests raises). An answer that is not 2xx is conserver's way by
// default: logged, counted, and the chain goes on. With strict, 408, 429
// and 5xx are retried and any non-2xx answer that remains fails the link,
// so a receiver that keeps refusing dead-letters the vCon for a replay.
type webhook struct {
	name       string
	targets    []httpx.Target
	post       httpx.Post
	policy     httpx.Policy
	version001 bool
	strict     bool
	logger     *slog.Logger
	tolerated  *prometheus.CounterVec
}

func newWebhook(name string, raw map[string]any, deps Deps) (Link, error) {
	o := options.New(raw)
	w := &webhook{name: name, post: httpx.Post{Client: deps.HTTP}, policy: webhookPolicy, logger: deps.Logger}
	w.targets = webhookTargets(o, "webhook-urls")
	if len(w.targets) == 0 && o.Problems() == 0 {
		o.Failf("webhook-urls", "required, a list of http(s) URLs")
	}
	w.post.Headers = o.Headers("headers")
	w.post.Timeout = o.Duration("timeout", 30*time.Second)
	w.policy.Retries = o.IntRange("retries", 3, 0, 20)
	w.strict = o.Bool("strict", false)
	version := o.String("egress_format_version", os.Getenv("EGRESS_FORMAT_VERSION"))
	switch version {
	case vcon.Version001:
		w.version001 = true
	case "", vcon.CurrentVersion:
	default:
		o.Failf("egress_format_version", "(or env EGRESS_FORMAT_VERSION): want %q or %q, got %q",
			vcon.Version001, vcon.CurrentVersion, version)
	}
	if err := o.Err(); err != nil {
		return nil, err
	}
	tolerated, err := toleratedErrors(deps.Metrics)
	if err != nil {
		return nil, err
	}
	w.tolerated = tolerated
	return w, nil
}

// webhookTargets reads a list of webhook URLs (checked by the reader, so
// ParseTarget cannot fail).
func webhookTargets(o *options.Reader, key string) []httpx.Target {
	var targets []httpx.Target
	for _, u := range o.URLs(key) {
		if t, err := httpx.ParseTarget(u); err == nil {
			targets = append(targets, t)
		}
	}
	return targets
}

func (w *webhook) Run(ctx context.Context, v *vcon.VCon) (Result, error) {
	// The document a conserver link reads, so that a receiver gets what
	// conserver posted. Read-only views, not copies: only the encoding
	// below is new.
	doc := vcon.ConserverView(v)
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

// deliver retries transport errors and timeouts with exponential backoff,
// and with strict 408, 429 and 5xx too; any other answer is final.
// Without strict every answer is: conserver posts once and reads none.
func (w *webhook) deliver(ctx context.Context, t httpx.Target, uuid string, body []byte) error {
	var passed *httpx.AnswerError
	attempts, err := httpx.Retry(ctx, w.policy, func(ctx context.Context) error {
		err := w.post.Send(ctx, t, uuid, body)
		if !w.strict && errors.As(err, &passed) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("webhook %w (%d attempts)", err, attempts)
	}
	if passed != nil {
		// The answer's body is not logged: receivers echo the vCon.
		w.tolerated.WithLabelValues(w.name, "webhook_answer").Inc()
		w.logger.Warn("webhook: receiver did not accept the vCon; going on as conserver does (strict: true retries and dead-letters instead)",
			"link", w.name, "uuid", uuid, "error", passed.Error())
	}
	return nil
}

// A webhook posts whatever form the vCon is in: a signed or encrypted vCon
// is posted as its signer wrote it (ConserverView leaves it alone), which
// is how a signed vCon leaves its security domain.
func (w *webhook) Accepts(vcon.Form) bool    { return true }
func (w *webhook) Output() (vcon.Form, bool) { return 0, false }
