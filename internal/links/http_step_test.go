package links

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

const httpStepTestUUID = "018f1c1e-8d2a-7c3e-9a55-1f2e3d4c5b6a"

func httpStepTestVCon(t *testing.T) *vcon.VCon {
	t.Helper()
	v, err := vcon.Parse([]byte(`{"uuid":"` + httpStepTestUUID + `","vcon":"0.4.0","created_at":"2026-03-04T05:06:07Z","parties":[{"tel":"+15551234567"}],"x_unknown":{"kept":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// newTestHTTPStep builds the step through the registry, as a chain would,
// with a backoff short enough for tests.
func newTestHTTPStep(t *testing.T, opts map[string]any) *httpStep {
	t.Helper()
	l, err := New("step", "links.http_step", opts, Deps{})
	if err != nil {
		t.Fatalf("build links.http_step: %v", err)
	}
	s := l.(*httpStep)
	s.policy.Base, s.policy.Max = time.Millisecond, time.Millisecond
	return s
}

func TestHTTPStepRequest(t *testing.T) {
	type seen struct {
		method, contentType, uuidHeader, auth, retry string
		body                                         map[string]any
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var s seen
		s.method = r.Method
		s.contentType = r.Header.Get("Content-Type")
		s.uuidHeader = r.Header.Get("X-Vcon-Uuid")
		s.auth = r.Header.Get("Authorization")
		s.retry = r.Header.Get("X-Retry")
		if err := json.NewDecoder(r.Body).Decode(&s.body); err != nil {
			t.Errorf("step got a body that is not JSON: %v", err)
		}
		got <- s
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	step := newTestHTTPStep(t, map[string]any{
		"url": srv.URL + "/classify",
		// YAML turns `X-Retry: 3` into a number; it is sent as text.
		"headers": map[string]any{"authorization": "Bearer s3cret", "X-Retry": 3},
	})
	if _, err := step.Run(context.Background(), httpStepTestVCon(t)); err != nil {
		t.Fatal(err)
	}
	s := <-got
	checks := []struct{ what, got, want string }{
		{"method", s.method, http.MethodPost},
		{"Content-Type", s.contentType, "application/json"},
		{"X-Vcon-Uuid", s.uuidHeader, httpStepTestUUID},
		{"Authorization", s.auth, "Bearer s3cret"},
		{"X-Retry", s.retry, "3"},
		{"body uuid", s.body["uuid"].(string), httpStepTestUUID},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	if _, ok := s.body["x_unknown"]; !ok {
		t.Errorf("unknown fields must reach the step, body = %v", s.body)
	}
}

func TestHTTPStepResponses(t *testing.T) {
	replaced := `{"uuid":"` + httpStepTestUUID + `","vcon":"0.4.0","analysis":[{"type":"sentiment","body":"positive"}]}`
	tests := []struct {
		name    string
		opts    map[string]any // merged over {url}
		handler func(calls int32, w http.ResponseWriter, r *http.Request)
		// want
		halt      bool
		errHas    []string // all must appear; empty means success
		calls     int32
		checkDocs func(t *testing.T, v *vcon.VCon)
	}{
		{
			name:    "204 halts",
			handler: func(_ int32, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) },
			halt:    true, calls: 1,
			checkDocs: func(t *testing.T, v *vcon.VCon) {
				if _, ok := v.Doc()["x_unknown"]; !ok {
					t.Error("a halted vCon must keep its document")
				}
			},
		},
		{
			name: "200 replaces the document",
			handler: func(_ int32, w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, replaced)
			},
			calls: 1,
			checkDocs: func(t *testing.T, v *vcon.VCon) {
				if _, ok := v.Doc()["x_unknown"]; ok {
					t.Error("fields the step dropped must be gone: the answer replaces the document")
				}
				if a := v.List(vcon.Analysis); len(a) != 1 || a[0]["body"] != "positive" {
					t.Errorf("analysis = %v, want the step's", a)
				}
			},
		},
		{
			name: "500 is retried, then an error naming status and host",
			handler: func(_ int32, w http.ResponseWriter, _ *http.Request) {
				http.Error(w, "boom", http.StatusInternalServerError)
			},
			errHas: []string{"500 Internal Server Error", "127.0.0.1", "after 3 attempts"}, calls: 3,
		},
		{
			name: "retries option",
			opts: map[string]any{"retries": 0},
			handler: func(_ int32, w http.ResponseWriter, _ *http.Request) {
				http.Error(w, "busy", http.StatusServiceUnavailable)
			},
			errHas: []string{"503"}, calls: 1,
		},
		{
			name: "429 then 200 succeeds",
			handler: func(n int32, w http.ResponseWriter, _ *http.Request) {
				if n == 1 {
					http.Error(w, "slow down", http.StatusTooManyRequests)
					return
				}
				_, _ = io.WriteString(w, replaced)
			},
			calls: 2,
		},
		{
			name: "400 is not retried",
			handler: func(_ int32, w http.ResponseWriter, _ *http.Request) {
				http.Error(w, "bad", http.StatusBadRequest)
			},
			errHas: []string{"400 Bad Request", "127.0.0.1"}, calls: 1,
		},
		{
			name: "other 2xx is an error",
			handler: func(_ int32, w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusAccepted)
			},
			errHas: []string{"202"}, calls: 1,
		},
		{
			name: "timeout is retried, then an error",
			opts: map[string]any{"timeout": "50ms", "retries": 1},
			handler: func(_ int32, w http.ResponseWriter, r *http.Request) {
				// The server notices the client hanging up only once the
				// body has been read.
				_, _ = io.Copy(io.Discard, r.Body)
				select {
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
			},
			errHas: []string{"no answer within 50ms", "after 2 attempts"}, calls: 2,
		},
		{
			name: "malformed body",
			handler: func(_ int32, w http.ResponseWriter, _ *http.Request) {
				_, _ = io.WriteString(w, `{"uuid": "`+httpStepTestUUID+`", `)
			},
			errHas: []string{"not a vCon JSON object"}, calls: 1,
		},
		{
			name: "JSON that is not an object",
			handler: func(_ int32, w http.ResponseWriter, _ *http.Request) {
				_, _ = io.WriteString(w, `["not", "a", "vcon"]`)
			},
			errHas: []string{"not a JSON object"}, calls: 1,
		},
		{
			name: "empty 200",
			handler: func(_ int32, w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusOK)
			},
			errHas: []string{"not a vCon JSON object"}, calls: 1,
		},
		{
			name: "uuid changed",
			handler: func(_ int32, w http.ResponseWriter, _ *http.Request) {
				_, _ = io.WriteString(w, `{"uuid":"11111111-2222-3333-4444-555555555555","vcon":"0.4.0"}`)
			},
			errHas: []string{"step changed the uuid"}, calls: 1,
		},
		{
			name: "uuid removed",
			handler: func(_ int32, w http.ResponseWriter, _ *http.Request) {
				_, _ = io.WriteString(w, `{"vcon":"0.4.0"}`)
			},
			errHas: []string{"step changed the uuid"}, calls: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				tc.handler(calls.Add(1), w, r)
			}))
			defer srv.Close()
			opts := map[string]any{"url": srv.URL + "/step?token=query-secret"}
			for k, v := range tc.opts {
				opts[k] = v
			}
			step := newTestHTTPStep(t, opts)
			v := httpStepTestVCon(t)
			before, _ := v.Marshal()

			res, err := step.Run(context.Background(), v)

			if n := calls.Load(); n != tc.calls {
				t.Errorf("step called %d times, want %d", n, tc.calls)
			}
			if len(tc.errHas) == 0 {
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
				if res.Halt != tc.halt {
					t.Errorf("Halt = %v, want %v", res.Halt, tc.halt)
				}
			} else {
				if err == nil {
					t.Fatalf("Run succeeded (%+v), want an error containing %q", res, tc.errHas)
				}
				for _, s := range tc.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				if strings.Contains(err.Error(), "query-secret") {
					t.Errorf("error %q quotes the URL's query", err)
				}
				if after, _ := v.Marshal(); string(after) != string(before) {
					t.Errorf("a failed step changed the document:\n%s\nwas\n%s", after, before)
				}
			}
			if tc.checkDocs != nil {
				tc.checkDocs(t, v)
			}
		})
	}
}

func TestHTTPStepTransportErrorRetried(t *testing.T) {
	// A port nothing listens on: connection refused on every attempt.
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close()
	step := newTestHTTPStep(t, map[string]any{"url": addr, "retries": 2})
	_, err := step.Run(context.Background(), httpStepTestVCon(t))
	if err == nil || !strings.Contains(err.Error(), "after 3 attempts") {
		t.Fatalf("err = %v, want a transport error after 3 attempts", err)
	}
	u, _ := url.Parse(addr)
	if !strings.Contains(err.Error(), u.Host) {
		t.Errorf("error %q does not name the host %s", err, u.Host)
	}
}

func TestHTTPStepCancelStopsRetrying(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusBadGateway)
	}))
	defer srv.Close()
	step := newTestHTTPStep(t, map[string]any{"url": srv.URL, "retries": 10})
	step.policy.Base, step.policy.Max = time.Hour, time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := step.Run(ctx, httpStepTestVCon(t))
	if err == nil || !strings.Contains(err.Error(), "502") {
		t.Fatalf("err = %v, want the last status (502)", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run took %s after its context ended", d)
	}
}

func TestHTTPStepOptions(t *testing.T) {
	tests := []struct {
		name    string
		opts    map[string]any
		errHas  string // "" means valid
		timeout time.Duration
		retries int
	}{
		{name: "defaults", opts: map[string]any{"url": "http://localhost:8080/"}, timeout: 30 * time.Second, retries: 2},
		{name: "timeout as duration", opts: map[string]any{"url": "https://step.example", "timeout": "1m30s"}, timeout: 90 * time.Second, retries: 2},
		{name: "timeout in seconds", opts: map[string]any{"url": "https://step.example", "timeout": 5}, timeout: 5 * time.Second, retries: 2},
		{name: "timeout as fraction", opts: map[string]any{"url": "https://step.example", "timeout": 2.5}, timeout: 2500 * time.Millisecond, retries: 2},
		{name: "timeout seconds as text", opts: map[string]any{"url": "https://step.example", "timeout": "7"}, timeout: 7 * time.Second, retries: 2},
		{name: "retries zero", opts: map[string]any{"url": "https://step.example", "retries": 0}, timeout: 30 * time.Second, retries: 0},
		{name: "missing url", opts: map[string]any{}, errHas: `option "url": required`},
		{name: "nil options", opts: nil, errHas: `option "url": required`},
		{name: "url not http", opts: map[string]any{"url": "ftp://x"}, errHas: `option "url"`},
		{name: "url relative", opts: map[string]any{"url": "/step"}, errHas: `option "url"`},
		{name: "url not a string", opts: map[string]any{"url": 3}, errHas: `option "url"`},
		{name: "bad timeout", opts: map[string]any{"url": "http://x", "timeout": "soon"}, errHas: `option "timeout"`},
		{name: "zero timeout", opts: map[string]any{"url": "http://x", "timeout": 0}, errHas: `option "timeout"`},
		{name: "negative retries", opts: map[string]any{"url": "http://x", "retries": -1}, errHas: `option "retries"`},
		{name: "fractional retries", opts: map[string]any{"url": "http://x", "retries": 1.5}, errHas: `option "retries"`},
		{name: "too many retries", opts: map[string]any{"url": "http://x", "retries": 1000}, errHas: `option "retries"`},
		{name: "headers not a map", opts: map[string]any{"url": "http://x", "headers": []any{"a"}}, errHas: `option "headers"`},
		{name: "header value a list", opts: map[string]any{"url": "http://x", "headers": map[string]any{"A": []any{}}}, errHas: `value of "A"`},
		{name: "header with newline", opts: map[string]any{"url": "http://x", "headers": map[string]any{"A": "x\r\nB: y"}}, errHas: "line break"},
		{name: "bad header name", opts: map[string]any{"url": "http://x", "headers": map[string]any{"A B": "x"}}, errHas: "not a valid header name"},
		{name: "unset variable", opts: map[string]any{"url": "http://x", "headers": map[string]any{"Authorization": "Bearer ${STEP_MISSING_TOKEN}"}}, errHas: "${STEP_MISSING_TOKEN}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := New("step", "links.http_step", tc.opts, Deps{})
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("err = %v, want one containing %q", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s := l.(*httpStep)
			if s.timeout != tc.timeout || s.retries != tc.retries {
				t.Errorf("timeout, retries = %s, %d; want %s, %d", s.timeout, s.retries, tc.timeout, tc.retries)
			}
		})
	}
}
