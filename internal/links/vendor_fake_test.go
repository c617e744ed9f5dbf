package links

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// instantVendorRetries makes retries instant and records the waits asked for. Tests
// that use it must not run in parallel (it swaps package variables).
func instantVendorRetries(t *testing.T) *[]time.Duration {
	t.Helper()
	var (
		mu    sync.Mutex
		waits []time.Duration
	)
	old := vendorPolicy
	vendorPolicy.Base = 10 * time.Millisecond
	vendorPolicy.Sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
		return ctx.Err()
	}
	t.Cleanup(func() { vendorPolicy = old })
	return &waits
}

// fakeReply is one scripted vendor answer.
type fakeReply struct {
	status int
	header map[string]string
	body   string
	// hang blocks until the client gives up (a timeout).
	hang bool
}

// fakeRequest is one request a fake vendor received.
type fakeRequest struct {
	method, path, rawQuery string
	header                 http.Header
	body                   []byte
}

// vendorFake is a vendor double: it records every request and answers from a
// script (the last reply repeats), or from respond when it is set.
type vendorFake struct {
	mu      sync.Mutex
	seen    []fakeRequest
	replies []fakeReply
	respond func(r fakeRequest) fakeReply
	srv     *httptest.Server
}

// newVendorFakeFunc is a vendor double whose answers depend on the request;
// respond may be called concurrently.
func newVendorFakeFunc(t *testing.T, respond func(r fakeRequest) fakeReply) *vendorFake {
	t.Helper()
	f := newVendorFake(t)
	f.respond = respond
	return f
}

func newVendorFake(t *testing.T, replies ...fakeReply) *vendorFake {
	t.Helper()
	f := &vendorFake{replies: replies}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := fakeRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body}
		f.mu.Lock()
		n := len(f.seen)
		f.seen = append(f.seen, req)
		reply := fakeReply{status: 500, body: `{"error":{"message":"no scripted reply"}}`}
		if len(f.replies) > 0 {
			reply = f.replies[min(n, len(f.replies)-1)]
		}
		respond := f.respond
		f.mu.Unlock()
		if respond != nil {
			reply = respond(req)
		}
		if reply.hang {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		for k, v := range reply.header {
			w.Header().Set(k, v)
		}
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(reply.status)
		_, _ = io.WriteString(w, reply.body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *vendorFake) requests() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeRequest(nil), f.seen...)
}

// chatAnswer is an OpenAI chat completion answer with usage.
func chatAnswer(content string, prompt, completion int) fakeReply {
	b, _ := json.Marshal(map[string]any{
		"id":      "chatcmpl-1",
		"object":  "chat.completion",
		"model":   "gpt-test-2025",
		"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": content}, "finish_reason": "stop"}},
		"usage":   map[string]any{"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
	})
	return fakeReply{status: 200, body: string(b)}
}

func mustParseVCon(t *testing.T, doc string) *vcon.VCon {
	t.Helper()
	v, err := vcon.Parse([]byte(doc))
	if err != nil {
		t.Fatalf("parse test vCon: %v", err)
	}
	return v
}

func jsonMap(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("decode %q: %v", data, err)
	}
	return m
}

// assertNoSecret fails when any secret shows up in s.
func assertNoSecret(t *testing.T, s string, secrets ...string) {
	t.Helper()
	for _, sec := range secrets {
		if sec != "" && strings.Contains(s, sec) {
			t.Errorf("secret %q leaked into %q", sec, s)
		}
	}
}

// newTestLink builds a link through the registry, failing the test on error.
func newTestLink(t *testing.T, name, module string, opts map[string]any) Link {
	t.Helper()
	l, err := New(name, module, opts, Deps{HTTP: &http.Client{}})
	if err != nil {
		t.Fatalf("New(%s): %v", module, err)
	}
	return l
}

// analysesOfType returns the analysis entries of one type.
func analysesOfType(v *vcon.VCon, typ string) []map[string]any {
	var out []map[string]any
	for _, a := range v.List(vcon.Analysis) {
		if a["type"] == typ {
			out = append(out, a)
		}
	}
	return out
}

// tagsOf reads the tag list from the tags attachment.
func tagsOf(t *testing.T, v *vcon.VCon) []string {
	t.Helper()
	for _, a := range v.List(vcon.Attachments) {
		if a["purpose"] == "tags" {
			if a["encoding"] != "json" {
				t.Errorf("tags attachment encoding = %v, want json", a["encoding"])
			}
			var tags []string
			if err := json.Unmarshal([]byte(a["body"].(string)), &tags); err != nil {
				t.Fatalf("tags body: %v", err)
			}
			return tags
		}
	}
	return nil
}

// testVendorMetrics are the counters links built by New count into (the
// default registerer's).
func testVendorMetrics(t *testing.T) *vendorMetrics {
	t.Helper()
	m, err := newVendorMetrics(prometheus.DefaultRegisterer)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
