package plugin

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
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

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/api"
	"github.com/vcon-operator/vcon-operator/internal/httpx"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// storageReceiver is a webhook storage's far end: it answers status and
// records the uuids written to it.
type storageReceiver struct {
	status atomic.Int32
	mu     sync.Mutex
	got    []string
}

func (s *storageReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if code := int(s.status.Load()); code != http.StatusOK {
		w.WriteHeader(code)
		return
	}
	s.mu.Lock()
	s.got = append(s.got, r.Header.Get(httpx.UUIDHeader))
	s.mu.Unlock()
}

func (s *storageReceiver) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// TestStorageDLQ lists DLQ:storage:hook (written as the worker's outcome
// writes it) and replays it through the real API, whose webhook storage
// posts to a local server: only the storage write runs again, a uuid
// leaves once written, a storage still down stops the replay with exit 1.
func TestStorageDLQ(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	rdb := r.Client()
	recv := &storageReceiver{}
	recv.status.Store(http.StatusServiceUnavailable)
	hook := httptest.NewServer(recv)
	t.Cleanup(hook.Close)
	cfg := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(cfg, []byte("storages:\n  hook:\n    module: storage.webhook\n    options:\n      webhook-urls: ["+hook.URL+"]\nchains: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(rdb, api.Options{Tokens: []string{"real-token"}, ConfigFile: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	apiSrv := httptest.NewServer(srv.Handler())
	t.Cleanup(apiSrv.Close)

	ns := namespace(t)
	createChain(t, ns, "main", vconv1.ChainSpec{IngressLists: []string{"default"}, Storages: []string{"hook"},
		StorageFailure: vconv1.StorageFailureDeadLetterStorage, Redis: vconv1.RedisConnection{URL: r.URL()}}, nil)
	at := testNow.Add(-30 * time.Minute)
	store := vconstore.New(rdb, vconstore.Options{})
	pipe := rdb.TxPipeline()
	for _, u := range []string{uuidA, uuidB, uuidC} {
		if err := store.QueueCreate(ctx, pipe, u, []byte(vconJSON(u, "2024-01-15T10:30:00Z")), time.Hour); err != nil {
			t.Fatal(err)
		}
		queue.QueueStorageDeadLetter(pipe, "hook", u, queue.DLQReason{Reason: "storage_error: storage hook: HTTP 500", Chain: "main", Step: "storage hook", At: at})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	inv := invocation{kubeconfig: admin(t), env: map[string]string{"API_URL": apiSrv.URL + "/api", "CONSERVER_API_TOKEN": "real-token"}}
	left := func() []string { return rdbLRange(t, r, queue.StorageDLQKey("hook")) }

	t.Run("list", func(t *testing.T) {
		res := inv.run(t, "dlq", "list", "main", "-n", ns, "--storage", "hook")
		lines := strings.Split(strings.TrimSpace(res.out), "\n")
		if res.code != 0 || len(lines) != 4 {
			t.Fatalf("exit %d, want a header and 3 rows: %s %s", res.code, res.out, res.errOut)
		}
		for i, want := range [][]string{
			{"STORAGE", "UUID", "AGE", "STEP", "REASON"},
			{"hook", uuidA, "30m", "storage hook", "storage_error: storage hook: HTTP 500"},
		} {
			for _, w := range want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("row %d %q lacks %q", i, lines[i], w)
				}
			}
		}
		res = inv.run(t, "dlq", "list", "main", "-n", ns, "--storage", "hook", "-o", "json")
		var got []DLQEntry
		if err := json.Unmarshal([]byte(res.out), &got); err != nil || len(got) != 3 || got[0].Storage != "hook" || got[0].IngressList != "" || got[2].UUID != uuidC {
			t.Errorf("-o json: %v %+v", err, got)
		}
	})
	for _, tc := range []struct {
		name     string
		args     []string
		status   int
		code     int
		out      string // substring of stdout, or of stderr when code != 0
		left     []string
		received []string
	}{
		{name: "not a storage of the chain", args: []string{"--storage", "archive"}, code: 1,
			out: `"archive" is not a storage of chain main (its storages: [hook])`, left: []string{uuidA, uuidB, uuidC}},
		{name: "storage and from-start", args: []string{"--storage", "hook", "--from-start"}, code: 1,
			out: "none of the others can be", left: []string{uuidA, uuidB, uuidC}},
		{name: "storage still down", args: []string{"--storage", "hook"}, status: http.StatusServiceUnavailable, code: 1,
			out: "3 remain in DLQ:storage:hook: a write failed", left: []string{uuidA, uuidB, uuidC}},
		{name: "storage back, a count", args: []string{"--storage", "hook", "--count", "2"}, status: http.StatusOK,
			out: "Wrote 2 vCons to storage hook again.", left: []string{uuidC}, received: []string{uuidA, uuidB}},
		{name: "the rest", args: []string{"--storage", "hook"}, status: http.StatusOK,
			out: "Wrote 1 vCons to storage hook again.", left: nil, received: []string{uuidA, uuidB, uuidC}},
	} {
		t.Run("replay: "+tc.name, func(t *testing.T) {
			if tc.status != 0 {
				recv.status.Store(int32(tc.status))
			}
			res := inv.run(t, append([]string{"dlq", "replay", "main", "-n", ns}, tc.args...)...)
			text := res.out
			if tc.code != 0 {
				text = res.errOut
			}
			if res.code != tc.code || !strings.Contains(text, tc.out) {
				t.Errorf("exit %d, want %d with %q: out %s err %s", res.code, tc.code, tc.out, res.out, res.errOut)
			}
			assertList(t, left(), tc.left...)
			if got := recv.received(); !slices.Equal(got, tc.received) {
				t.Errorf("storage received %v, want %v", got, tc.received)
			}
		})
	}
	// The bodies stay: a replay only writes them.
	if n := rdb.Exists(ctx, vconstore.Key(uuidA), vconstore.Key(uuidB), vconstore.Key(uuidC)).Val(); n != 3 {
		t.Errorf("%d of 3 bodies left in Redis after the replay", n)
	}
}
