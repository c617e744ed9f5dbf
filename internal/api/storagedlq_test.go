package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/httpx"
	"github.com/vcon-operator/vcon-operator/internal/queue"
)

// receiver is a webhook storage's far end: it answers status and records
// the uuids it was sent.
type receiver struct {
	status atomic.Int32
	mu     sync.Mutex
	got    []string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if code := int(rc.status.Load()); code != http.StatusOK {
		w.WriteHeader(code)
		return
	}
	rc.mu.Lock()
	rc.got = append(rc.got, r.Header.Get(httpx.UUIDHeader))
	rc.mu.Unlock()
}

func (rc *receiver) received() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

// TestStorageDLQReplay: GET /api/dlq/storage lists DLQ:storage:{name};
// POST /api/dlq/storage/reprocess writes each uuid's body from Redis to
// that storage alone (a webhook storage on a local server here), removes
// only what was written, stops at a write that fails, skips a body that
// is gone, and refuses an unknown storage and a second replay.
func TestStorageDLQReplay(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	cfg := filepath.Join(t.TempDir(), "config.yml")
	doc := "storages:\n  hook:\n    module: storage.webhook\n    options:\n      webhook-urls: [" + srv.URL + "]\n" +
		"chains:\n  main:\n    links: []\n    storages: [hook]\n    ingress_lists: [in]\n    storage_failure: dead_letter_storage\n"
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(o *Options) { o.ConfigFile = cfg })
	ctx := context.Background()
	h.seed(u1, u2, u3)
	const gone = "018e5a2c-6b1f-7c3a-9d4e-000000000404"
	pipe := h.rdb.Pipeline()
	for _, u := range []string{gone, u1, u2, u3} {
		queue.QueueStorageDeadLetter(pipe, "hook", u, queue.DLQReason{Reason: "storage_error: storage hook: HTTP 500", Chain: "main", Step: "storage hook", At: time.Now().UTC()})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	left := func() []string { return h.rdb.LRange(ctx, queue.StorageDLQKey("hook"), 0, -1).Val() }

	for _, step := range []struct {
		name     string
		status   int // the receiver's answer
		setup    func()
		method   string
		target   string
		code     int
		body     string   // exact answer, when set
		contains string   // substring of the answer, when set
		left     []string // DLQ:storage:hook after the call
		received []string // what the receiver holds after the call
	}{
		{name: "list", method: "GET", target: "/api/dlq/storage?storage_name=hook", code: 200,
			body: `["` + gone + `","` + u1 + `","` + u2 + `","` + u3 + `"]`, left: []string{gone, u1, u2, u3}},
		{name: "list with reasons", method: "GET", target: "/dlq/storage?storage_name=hook&with_reasons=true", code: 200,
			contains: `"reason":"storage_error: storage hook: HTTP 500","chain":"main","step":"storage hook"`, left: []string{gone, u1, u2, u3}},
		{name: "storage still down: the body gone skipped, the first write stops it", status: http.StatusServiceUnavailable,
			method: "POST", target: "/api/dlq/storage/reprocess?storage_name=hook", code: 200, body: "0", left: []string{gone, u1, u2, u3}},
		{name: "its reason says why the replay failed", method: "GET", target: "/api/dlq/storage?storage_name=hook&with_reasons=true", code: 200,
			contains: `"reason":"storage_error: replay: `, left: []string{gone, u1, u2, u3}},
		{name: "storage back: count bounds the replay", status: http.StatusOK,
			method: "POST", target: "/api/dlq/storage/reprocess?storage_name=hook&count=3", code: 200, body: "2",
			left: []string{gone, u3}, received: []string{u1, u2}},
		{name: "the rest", status: http.StatusOK,
			method: "POST", target: "/dlq/storage/reprocess?storage_name=hook", code: 200, body: "1",
			left: []string{gone}, received: []string{u1, u2, u3}},
		{name: "a storage not in the config file", method: "POST", target: "/api/dlq/storage/reprocess?storage_name=archive", code: 404,
			contains: "Storage archive is not in the configuration file", left: []string{gone}, received: []string{u1, u2, u3}},
		{name: "a replay already running", setup: func() { h.rdb.Set(ctx, queue.StorageReplayLockKey("hook"), "other", 0) },
			method: "POST", target: "/api/dlq/storage/reprocess?storage_name=hook", code: 409,
			contains: "DEL " + queue.StorageReplayLockKey("hook"), left: []string{gone}, received: []string{u1, u2, u3}},
		{name: "no storage name", method: "POST", target: "/api/dlq/storage/reprocess", code: 422, left: []string{gone}, received: []string{u1, u2, u3}},
		{name: "count out of range", method: "POST", target: "/api/dlq/storage/reprocess?storage_name=hook&count=0", code: 422, left: []string{gone}, received: []string{u1, u2, u3}},
	} {
		t.Run(step.name, func(t *testing.T) {
			if step.status != 0 {
				rc.status.Store(int32(step.status))
			}
			if step.setup != nil {
				step.setup()
			}
			rec := h.doJSON(step.method, step.target, "")
			mustStatus(t, rec, step.code)
			got := strings.TrimSpace(rec.Body.String())
			if step.body != "" && got != step.body {
				t.Errorf("answer %s, want %s", got, step.body)
			}
			if step.contains != "" && !strings.Contains(got, step.contains) {
				t.Errorf("answer %s, want it to contain %s", got, step.contains)
			}
			if l := left(); !slices.Equal(l, step.left) {
				t.Errorf("DLQ:storage:hook %v, want %v", l, step.left)
			}
			if r := rc.received(); !slices.Equal(r, step.received) {
				t.Errorf("receiver got %v, want %v", r, step.received)
			}
		})
	}
	if rec := h.doJSON("GET", "/api/dlq/storage?storage_name=hook", "", noToken()); rec.Code != http.StatusForbidden {
		t.Errorf("without the token: %d, want 403", rec.Code)
	}
}
