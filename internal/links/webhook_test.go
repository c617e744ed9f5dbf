package links

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// receiver is a local webhook endpoint that answers from a script of status
// codes (the last one repeats) and records what it got.
type receiver struct {
	mu       sync.Mutex
	statuses []int
	delay    time.Duration
	got      []received
	srv      *httptest.Server
}

type received struct {
	header http.Header
	doc    map[string]any
}

func newReceiver(t *testing.T, delay time.Duration, statuses ...int) *receiver {
	t.Helper()
	r := &receiver{statuses: statuses, delay: delay}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	data, _ := io.ReadAll(req.Body)
	var doc map[string]any
	_ = json.Unmarshal(data, &doc)
	r.mu.Lock()
	r.got = append(r.got, received{header: req.Header.Clone(), doc: doc})
	status := r.statuses[min(len(r.got), len(r.statuses))-1]
	r.mu.Unlock()
	if r.delay > 0 {
		select {
		case <-time.After(r.delay):
		case <-req.Context().Done():
			return
		}
	}
	w.WriteHeader(status)
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func fastWebhookBackoff(t *testing.T) {
	old := webhookPolicy
	webhookPolicy.Base = time.Millisecond
	t.Cleanup(func() { webhookPolicy = old })
}

const webhookDoc = `{"uuid":"u1","vcon":"0.0.1","dialog":[{"type":"text","body":"hello","mimetype":"text/plain"}],
  "attachments":[{"type":"tags","body":["a:1"]}],"appended":{"uuid":"u0"}}`

func TestWebhookDelivery(t *testing.T) {
	fastWebhookBackoff(t)
	tests := []struct {
		name     string
		statuses []int
		delay    time.Duration
		opts     map[string]any
		strict   bool
		calls    int
		wantErr  string
		// tolerated is how many answers were passed over (counted).
		tolerated float64
	}{
		{name: "delivered first time", statuses: []int{200}, calls: 1},
		{name: "any 2xx is success", statuses: []int{204}, calls: 1},
		// conserver's default: one POST, the answer logged, the chain goes on.
		{name: "a 5xx is passed over", statuses: []int{500, 200}, calls: 1, tolerated: 1},
		{name: "a 4xx is passed over", statuses: []int{401, 200}, calls: 1, tolerated: 1},
		{name: "strict false said", statuses: []int{503}, opts: map[string]any{"strict": false}, calls: 1, tolerated: 1},
		// strict: true retries what may pass and fails on what remains.
		{name: "strict retries 500 then succeeds", statuses: []int{500, 503, 200}, strict: true, calls: 3},
		{name: "strict retries 429", statuses: []int{429, 202}, strict: true, calls: 2},
		{name: "strict gives up after retries", statuses: []int{500}, strict: true, opts: map[string]any{"retries": 2}, calls: 3,
			wantErr: "answered 500 Internal Server Error (3 attempts)"},
		{name: "strict without retries when asked", statuses: []int{502}, strict: true, opts: map[string]any{"retries": 0}, calls: 1,
			wantErr: "answered 502 Bad Gateway (1 attempts)"},
		{name: "strict client error is final", statuses: []int{401, 200}, strict: true, calls: 1, wantErr: "answered 401 Unauthorized"},
		// A receiver that never answers fails the link either way: in
		// conserver, requests raises and the vCon is dead-lettered.
		{name: "timeout honoured", statuses: []int{200}, delay: 5 * time.Second,
			opts: map[string]any{"timeout": 0.1, "retries": 1}, calls: 2, wantErr: "no answer within 100ms"},
		{name: "strict timeout honoured", statuses: []int{200}, delay: 5 * time.Second, strict: true,
			opts: map[string]any{"timeout": 0.1, "retries": 0}, calls: 1, wantErr: "no answer within 100ms"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newReceiver(t, tc.delay, tc.statuses...)
			opts := map[string]any{
				"webhook-urls": []any{r.srv.URL + "/hook?key=s3cret"},
				"headers":      map[string]any{"Authorization": "Bearer tok-123", "X-Attempt-Of": 1},
			}
			if tc.strict {
				opts["strict"] = true
			}
			for k, v := range tc.opts {
				opts[k] = v
			}
			reg := prometheus.NewRegistry()
			l := mustNew(t, "links.webhook", opts, Deps{HTTP: r.srv.Client(), Metrics: reg})
			start := time.Now()
			res, err := l.Run(context.Background(), parseVCon(t, webhookDoc))
			if tc.delay > 0 && time.Since(start) > 3*time.Second {
				t.Fatalf("took %v despite the timeout", time.Since(start))
			}
			got := r.requests()
			if len(got) != tc.calls {
				t.Fatalf("%d requests, want %d", len(got), tc.calls)
			}
			if n := testutil.ToFloat64(toleratedCounter(t, reg).WithLabelValues("test", "webhook_answer")); n != tc.tolerated {
				t.Fatalf("vcon_link_tolerated_errors_total{kind=webhook_answer} = %v, want %v", n, tc.tolerated)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				host := strings.TrimPrefix(r.srv.URL, "http://")
				if !strings.Contains(err.Error(), host) {
					t.Fatalf("error %q does not name the host %s", err, host)
				}
				for _, secret := range []string{"s3cret", "tok-123"} {
					if strings.Contains(err.Error(), secret) {
						t.Fatalf("error %q leaks %q", err, secret)
					}
				}
				return
			}
			if err != nil || !continues(res) {
				t.Fatalf("Run = %+v, %v; want Continue", res, err)
			}
			h := got[0].header
			if h.Get("Authorization") != "Bearer tok-123" || h.Get("X-Attempt-Of") != "1" || h.Get("Content-Type") != "application/json" {
				t.Fatalf("headers %v", h)
			}
			doc := got[0].doc
			if doc["uuid"] != "u1" || doc["vcon"] != "0.4.0" || doc["amended"] == nil {
				t.Fatalf("body not the normalised vCon: %v", doc)
			}
		})
	}
}

// TestWebhookPostsConserversDocument: the receiver gets the document
// conserver's webhook posted (its link's to_dict() of the stored model
// dump): the declared fields null when the producer left them out, the
// written shape, created_at in isoformat().
func TestWebhookPostsConserversDocument(t *testing.T) {
	t.Setenv("EGRESS_FORMAT_VERSION", "")
	r := newReceiver(t, 0, 200)
	l := mustNew(t, "links.webhook", map[string]any{"webhook-urls": []any{r.srv.URL}}, Deps{HTTP: r.srv.Client()})
	run(t, l, parseVCon(t, `{"uuid":"u1","vcon":"0.0.1","created_at":"2024-03-01T10:20:30Z","group":[],
		"parties":[{"name":"A"}],"dialog":[{"type":"text","body":"hi","encoding":"none","mimetype":"text/plain"}],
		"analysis":[{"type":"summary","body":{"k":1}}]}`))
	var want map[string]any
	if err := json.Unmarshal([]byte(`{"uuid":"u1","vcon":"0.4.0","created_at":"2024-03-01T10:20:30+00:00",
		"subject":null,"amended":null,"parties":[{"name":"A","tel":null}],
		"dialog":[{"type":"text","body":"hi","encoding":"none","mediatype":"text/plain","duration":null,"start":null,"parties":null,"url":null,"alg":null}],
		"analysis":[{"type":"summary","body":"{\"k\":1}","encoding":"json"}]}`), &want); err != nil {
		t.Fatal(err)
	}
	if got := r.requests()[0].doc; !reflect.DeepEqual(got, want) {
		t.Fatalf("posted\n%v\nwant\n%v", got, want)
	}
}

func TestWebhookEveryURL(t *testing.T) {
	a, b := newReceiver(t, 0, 200), newReceiver(t, 0, 200)
	l := mustNew(t, "links.webhook", map[string]any{"webhook-urls": []any{a.srv.URL, b.srv.URL}}, Deps{})
	run(t, l, parseVCon(t, webhookDoc))
	if len(a.requests()) != 1 || len(b.requests()) != 1 {
		t.Fatalf("requests: %d and %d, want 1 each", len(a.requests()), len(b.requests()))
	}
}

func TestWebhookEgressFormat(t *testing.T) {
	tests := []struct {
		name    string
		env     string
		opts    map[string]any
		version string
	}{
		{name: "current by default", version: "0.4.0"},
		{name: "0.0.1 from the environment", env: "0.0.1", version: "0.0.1"},
		{name: "0.0.1 from the option", opts: map[string]any{"egress_format_version": "0.0.1"}, version: "0.0.1"},
		{name: "option overrides the environment", env: "0.0.1", opts: map[string]any{"egress_format_version": "0.4.0"}, version: "0.4.0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("EGRESS_FORMAT_VERSION", tc.env)
			r := newReceiver(t, 0, 200)
			opts := map[string]any{"webhook-urls": []any{r.srv.URL}}
			for k, v := range tc.opts {
				opts[k] = v
			}
			run(t, mustNew(t, "links.webhook", opts, Deps{HTTP: r.srv.Client()}), parseVCon(t, webhookDoc))
			doc := r.requests()[0].doc
			att := doc["attachments"].([]any)[0].(map[string]any)
			dialog := doc["dialog"].([]any)[0].(map[string]any)
			if doc["vcon"] != tc.version {
				t.Fatalf("vcon = %v, want %s", doc["vcon"], tc.version)
			}
			old := tc.version == "0.0.1"
			if _, ok := att["type"]; ok != old {
				t.Fatalf("attachment %v: legacy type present = %v, want %v", att, ok, old)
			}
			if _, ok := dialog["mimetype"]; ok != old {
				t.Fatalf("dialog %v: mimetype present = %v, want %v", dialog, ok, old)
			}
			if _, ok := doc["appended"]; ok != old {
				t.Fatalf("appended present = %v, want %v", ok, old)
			}
		})
	}
}

func TestWebhookContextCancelStopsRetries(t *testing.T) {
	old := webhookPolicy
	webhookPolicy.Base, webhookPolicy.Max = time.Hour, time.Hour
	t.Cleanup(func() { webhookPolicy = old })
	r := newReceiver(t, 0, 500)
	l := mustNew(t, "links.webhook", map[string]any{"webhook-urls": []any{r.srv.URL}, "strict": true}, Deps{HTTP: r.srv.Client()})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := l.Run(ctx, parseVCon(t, webhookDoc)); err == nil || !strings.Contains(err.Error(), "gave up") {
		t.Fatalf("error = %v, want the retry wait cut short", err)
	}
}

func TestWebhookBadOptions(t *testing.T) {
	t.Setenv("EGRESS_FORMAT_VERSION", "")
	ok := []any{"https://hooks.example/x"}
	checkBadOptions(t, "links.webhook", Deps{}, []badOptionCase{
		{name: "no urls", opts: nil, want: `option "webhook-urls": required`},
		{name: "urls not a list", opts: map[string]any{"webhook-urls": map[string]any{"a": "https://x"}}, want: `option "webhook-urls": want a list of strings, got a map`},
		{name: "relative url", opts: map[string]any{"webhook-urls": []any{"/hook"}}, want: `option "webhook-urls": item 0: want an absolute http:// or https:// URL`},
		{name: "headers list", opts: map[string]any{"webhook-urls": ok, "headers": []any{"a"}}, want: `option "headers": want a map`},
		{name: "negative timeout", opts: map[string]any{"webhook-urls": ok, "timeout": -1}, want: `option "timeout": want a duration such as 30s or 30 (seconds), got -1`},
		{name: "fractional retries", opts: map[string]any{"webhook-urls": ok, "retries": 1.5}, want: `option "retries": want a whole number`},
		{name: "unknown format", opts: map[string]any{"webhook-urls": ok, "egress_format_version": "9"}, want: `option "egress_format_version"`},
		{name: "bad strict", opts: map[string]any{"webhook-urls": ok, "strict": "sometimes"}, want: `option "strict"`},
	})
}
