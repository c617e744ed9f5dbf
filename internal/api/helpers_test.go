package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/apiwire"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

const testToken = "s3cret-token"

// partnerKey is the ingress_auth key of list "partner" (newSubmitHarness).
const partnerKey = "partner-key"

type harness struct {
	t     *testing.T
	redis *testenv.Redis
	rdb   *redis.Client
	srv   *Server
	h     http.Handler
}

// newHarness starts a redis-server and a Server on it with testToken.
func newHarness(t *testing.T, mutate func(*Options)) *harness {
	t.Helper()
	r := testenv.StartRedis(t)
	rdb := r.Client()
	opts := Options{
		Tokens:     []string{testToken},
		VconTTL:    apiwire.DefaultVconTTL,
		IndexTTL:   DefaultIndexTTL,
		ContextTTL: queue.DefaultContextTTL,
	}
	if mutate != nil {
		mutate(&opts)
	}
	srv, err := New(rdb, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return &harness{t: t, redis: r, rdb: rdb, srv: srv, h: srv.Handler()}
}

type reqOpt func(*http.Request)

func withHeader(k, v string) reqOpt { return func(r *http.Request) { r.Header.Add(k, v) } }
func noToken() reqOpt               { return func(r *http.Request) { r.Header.Del(apiwire.DefaultHeaderName) } }

// do sends a request with the token (unless noToken) and returns the answer.
func (h *harness) do(method, target string, body io.Reader, opts ...reqOpt) *httptest.ResponseRecorder {
	h.t.Helper()
	req := httptest.NewRequest(method, target, body)
	req.Header.Set(apiwire.DefaultHeaderName, testToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, o := range opts {
		o(req)
	}
	rec := httptest.NewRecorder()
	h.h.ServeHTTP(rec, req)
	return rec
}

func (h *harness) doJSON(method, target, body string, opts ...reqOpt) *httptest.ResponseRecorder {
	h.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	return h.do(method, target, r, opts...)
}

// dump is every key of the server with its type, TTL presence and DUMP
// serialisation: two equal dumps mean nothing was written.
func dump(t *testing.T, rdb *redis.Client) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	var cursor uint64
	for {
		keys, next, err := rdb.Scan(ctx, cursor, "*", 1000).Result()
		if err != nil {
			t.Fatalf("scan: %v", err)
		}
		for _, k := range keys {
			typ := rdb.Type(ctx, k).Val()
			ttl := rdb.PTTL(ctx, k).Val() > 0
			val, err := rdb.Dump(ctx, k).Result()
			if err != nil {
				t.Fatalf("dump %s: %v", k, err)
			}
			out[k] = fmt.Sprintf("%s ttl=%v %x", typ, ttl, val)
		}
		cursor = next
		if cursor == 0 {
			break
		}
	}
	return out
}

func diffDumps(before, after map[string]string) string {
	var lines []string
	for k, v := range before {
		if a, ok := after[k]; !ok {
			lines = append(lines, "removed "+k)
		} else if a != v {
			lines = append(lines, "changed "+k)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			lines = append(lines, "added "+k)
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "; ")
}

// testVcon is a small valid vCon with two parties.
func testVcon(uuid string) string {
	return fmt.Sprintf(`{"vcon":"0.0.1","uuid":%q,"created_at":"2024-01-15T10:30:00Z",
"parties":[{"tel":"+15551234567","name":"Alice"},{"mailto":"bob@example.com"}],
"dialog":[{"type":"text","start":"2024-01-15T10:30:00Z","parties":[0,1],"body":"hello","duration":1.5}],
"analysis":[],"attachments":[],"x_custom":{"kept":true}}`, uuid)
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %q: %v", rec.Body.String(), err)
	}
	return v
}

func mustStatus(t *testing.T, rec *httptest.ResponseRecorder, want int) {
	t.Helper()
	if rec.Code != want {
		t.Fatalf("status %d, want %d; body %s", rec.Code, want, rec.Body.String())
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func httptestDo(srv *Server, method, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

// newSubmitHarness is newHarness with a config whose ingress_auth gives
// list "partner" the key partnerKey, for external ingress.
func newSubmitHarness(t *testing.T) *harness {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "config.yml")
	// A storage, so that every route that needs one is served.
	files := "storages:\n  files:\n    module: storage.file\n    options:\n      path: " + filepath.Join(t.TempDir(), "vcons") + "\n"
	if err := os.WriteFile(cfg, []byte(files+"ingress_auth:\n  partner: "+partnerKey+"\nchains: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return newHarness(t, func(o *Options) { o.ConfigFile = cfg })
}
