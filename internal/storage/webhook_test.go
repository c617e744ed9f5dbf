package storage

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

const webhookTestUUID = "018f1c1e-8d2a-7c3e-9a55-1f2e3d4c5b6a"

func webhookTestVCon(t *testing.T) *vcon.VCon {
	t.Helper()
	v, err := vcon.Parse([]byte(`{"uuid":"` + webhookTestUUID + `","vcon":"0.4.0","created_at":"2026-03-04T05:06:07Z","x_unknown":1}`))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func newTestWebhook(t *testing.T, opts map[string]any) Storage {
	t.Helper()
	s, err := New(context.Background(), "hook", "storage.webhook", opts, Deps{})
	if err != nil {
		t.Fatalf("build storage.webhook: %v", err)
	}
	return s
}

func TestWebhookSavePostsToEveryURL(t *testing.T) {
	type seen struct {
		method, contentType, uuid, auth, retry string
		body                                   map[string]any
	}
	got := make(chan seen, 4)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := seen{
			method:      r.Method,
			contentType: r.Header.Get("Content-Type"),
			uuid:        r.Header.Get("X-Vcon-Uuid"),
			auth:        r.Header.Get("Authorization"),
			retry:       r.Header.Get("X-Retry"),
		}
		if err := json.NewDecoder(r.Body).Decode(&s.body); err != nil {
			t.Errorf("webhook got a body that is not JSON: %v", err)
		}
		got <- s
		w.WriteHeader(http.StatusCreated)
	})
	a := httptest.NewServer(handler)
	defer a.Close()
	b := httptest.NewServer(handler)
	defer b.Close()

	st := newTestWebhook(t, map[string]any{
		"webhook-urls": []any{a.URL + "/in", b.URL + "/in"},
		"headers":      map[string]any{"authorization": "Bearer s3cret", "X-Retry": 3},
	})
	if err := st.Save(context.Background(), webhookTestVCon(t)); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d webhooks called, want 2", len(got))
	}
	for range 2 {
		s := <-got
		for _, c := range []struct{ what, got, want string }{
			{"method", s.method, http.MethodPost},
			{"Content-Type", s.contentType, "application/json"},
			{"X-Vcon-Uuid", s.uuid, webhookTestUUID},
			{"Authorization", s.auth, "Bearer s3cret"},
			{"X-Retry", s.retry, "3"},
			{"body uuid", s.body["uuid"].(string), webhookTestUUID},
		} {
			if c.got != c.want {
				t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
			}
		}
		if _, ok := s.body["x_unknown"]; !ok {
			t.Errorf("unknown fields must be posted, body = %v", s.body)
		}
	}
}

func TestWebhookSaveErrors(t *testing.T) {
	ok := func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }
	tests := []struct {
		name     string
		first    http.HandlerFunc
		second   http.HandlerFunc // nil: only one URL
		timeout  any
		errHas   []string // empty: success
		errLacks []string
	}{
		{name: "200", first: func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }},
		{name: "204", first: ok},
		{
			name:     "500 is an error naming host and status",
			first:    func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "echo: "+webhookTestUUID, 500) },
			errHas:   []string{"127.0.0.1", "500 Internal Server Error"},
			errLacks: []string{"echo:", "query-secret"},
		},
		{
			name:   "3xx is an error",
			first:  func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotModified) },
			errHas: []string{"304"},
		},
		{
			name:   "one of two failing fails the save, the other still gets it",
			first:  func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "nope", 403) },
			second: ok,
			errHas: []string{"403 Forbidden"},
		},
		{
			name:    "timeout",
			timeout: "50ms",
			first: func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body) // so the server notices the hang-up
				select {
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
			},
			errHas: []string{"no answer within 50ms"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var firstCalls, secondCalls atomic.Int32
			a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				firstCalls.Add(1)
				tc.first(w, r)
			}))
			defer a.Close()
			urls := []any{a.URL + "/hook?token=query-secret"}
			if tc.second != nil {
				b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					secondCalls.Add(1)
					tc.second(w, r)
				}))
				defer b.Close()
				urls = append(urls, b.URL)
			}
			opts := map[string]any{"webhook-urls": urls}
			if tc.timeout != nil {
				opts["timeout"] = tc.timeout
			}
			err := newTestWebhook(t, opts).Save(context.Background(), webhookTestVCon(t))

			if n := firstCalls.Load(); n != 1 {
				t.Errorf("first URL called %d times, want 1 (the pipeline retries, not the storage)", n)
			}
			if tc.second != nil && secondCalls.Load() != 1 {
				t.Errorf("second URL called %d times, want 1", secondCalls.Load())
			}
			if len(tc.errHas) == 0 {
				if err != nil {
					t.Fatalf("Save: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Save succeeded, want an error containing %q", tc.errHas)
			}
			for _, s := range tc.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			for _, s := range append(tc.errLacks, "query-secret") {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q must not contain %q", err, s)
				}
			}
		})
	}
}

func TestWebhookTransportError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close() // nothing listens there now
	err := newTestWebhook(t, map[string]any{"webhook-urls": []any{addr + "/?token=query-secret"}}).
		Save(context.Background(), webhookTestVCon(t))
	if err == nil {
		t.Fatal("Save to a closed port succeeded, want an error")
	}
	u, _ := url.Parse(addr)
	if !strings.Contains(err.Error(), u.Host) {
		t.Errorf("error %q does not name the host %s", err, u.Host)
	}
	if strings.Contains(err.Error(), "query-secret") {
		t.Errorf("error %q quotes the URL's query", err)
	}
}

func TestWebhookOptions(t *testing.T) {
	tests := []struct {
		name    string
		opts    map[string]any
		errHas  string // "" means valid
		targets int
		timeout time.Duration
	}{
		{name: "list", opts: map[string]any{"webhook-urls": []any{"http://a/x", "https://b/y"}}, targets: 2, timeout: 30 * time.Second},
		{name: "single string", opts: map[string]any{"webhook-urls": "http://a/x"}, targets: 1, timeout: 30 * time.Second},
		{name: "timeout seconds", opts: map[string]any{"webhook-urls": []any{"http://a"}, "timeout": 5}, targets: 1, timeout: 5 * time.Second},
		{name: "timeout duration", opts: map[string]any{"webhook-urls": []any{"http://a"}, "timeout": "250ms"}, targets: 1, timeout: 250 * time.Millisecond},
		{name: "missing urls", opts: map[string]any{}, errHas: `option "webhook-urls": required`},
		{name: "nil options", opts: nil, errHas: `option "webhook-urls": required`},
		{name: "empty list", opts: map[string]any{"webhook-urls": []any{}}, errHas: `option "webhook-urls": required`},
		{name: "not a URL", opts: map[string]any{"webhook-urls": []any{"http://a", "a/b"}}, errHas: "item 1"},
		{name: "item not a string", opts: map[string]any{"webhook-urls": []any{7}}, errHas: "item 0"},
		{name: "map instead of list", opts: map[string]any{"webhook-urls": map[string]any{}}, errHas: `option "webhook-urls"`},
		{name: "bad timeout", opts: map[string]any{"webhook-urls": []any{"http://a"}, "timeout": "later"}, errHas: `option "timeout"`},
		{name: "negative timeout", opts: map[string]any{"webhook-urls": []any{"http://a"}, "timeout": -1}, errHas: `option "timeout"`},
		{name: "headers not a map", opts: map[string]any{"webhook-urls": []any{"http://a"}, "headers": "x"}, errHas: `option "headers"`},
		{name: "header value with newline", opts: map[string]any{"webhook-urls": []any{"http://a"}, "headers": map[string]any{"A": "b\nC: d"}}, errHas: "line break"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(context.Background(), "hook", "storage.webhook", tc.opts, Deps{})
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("err = %v, want one containing %q", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			w := s.(*webhookStorage)
			if len(w.targets) != tc.targets || w.post.Timeout != tc.timeout {
				t.Errorf("targets, timeout = %d, %s; want %d, %s", len(w.targets), w.post.Timeout, tc.targets, tc.timeout)
			}
		})
	}
}
