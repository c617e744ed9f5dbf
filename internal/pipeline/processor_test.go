package pipeline

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/apiwire"
	"github.com/vcon-operator/vcon-operator/internal/config"
	"github.com/vcon-operator/vcon-operator/internal/links"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/storage"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// hookServer answers POSTs: the first failFirst with status, then 200.
// block makes it wait for the request to be cancelled instead.
func hookServer(t *testing.T, status int, failFirst int64, block bool) (*httptest.Server, *atomic.Int64) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Reading the request lets the server notice a client that gives up.
		_, _ = io.Copy(io.Discard, r.Body)
		n := calls.Add(1)
		if block {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return
		}
		if n <= failFirst {
			w.WriteHeader(status)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

// TestProcessOutcomes runs one vCon through a chain of real links and
// storages for every outcome path, and checks where it ends up: egress,
// DLQ with its recorded reason, storages, the body and its TTL, metrics.
func TestProcessOutcomes(t *testing.T) {
	const (
		in  = "ingress"
		out = "egress"
	)
	fail500, _ := hookServer(t, http.StatusInternalServerError, 1<<40, false)
	flaky, flakyCalls := hookServer(t, http.StatusServiceUnavailable, 2, false)
	reject400, _ := hookServer(t, http.StatusBadRequest, 1<<40, false)
	slow, _ := hookServer(t, 0, 0, true)
	urls := func(s *httptest.Server) map[string]any { return map[string]any{"webhook-urls": []any{s.URL}} }

	tag := mod{"tag", "links.tag", map[string]any{"tags": []any{"reviewed", "team:sales"}}}
	dropAll := mod{"only-none", "links.jq_link", map[string]any{"filter": `.subject == "no such subject"`}}
	keepAll := mod{"only-support", "links.jq_link", map[string]any{"filter": `.subject == "Support call"`}}
	rejectingHook := mod{"notify", "links.webhook", map[string]any{"webhook-urls": []any{reject400.URL}, "retries": int64(0), "strict": true}}
	slowHook := mod{"slow", "links.webhook", map[string]any{"webhook-urls": []any{slow.URL}, "retries": int64(0)}}
	redisStore := mod{"copy", "storage.redis_storage", map[string]any{"prefix": "copy", "expires": int64(600)}}

	type want struct {
		egress     bool
		dlqReason  string // metric reason label; "" means not dead-lettered
		reasonText string // substring of the recorded reason
		stored     bool   // redis_storage / file copy written
		bodyTTL    [2]time.Duration
		bodyGone   bool
		tagged     bool
	}
	tests := []struct {
		name      string
		links     []mod
		storages  func(dir string) []mod
		timeout   time.Duration
		body      []byte // nil: no body in Redis
		bodyTTL   time.Duration
		prepare   func(t *testing.T, e *env, dir, uuid string)
		want      want
		checkMetr func(t *testing.T, m *Metrics)
	}{
		{
			name:     "continue, store and egress",
			links:    []mod{tag, keepAll},
			storages: func(dir string) []mod { return []mod{redisStore, fileStore(dir)} },
			want:     want{egress: true, stored: true, tagged: true},
			checkMetr: func(t *testing.T, m *Metrics) {
				expectCount(t, m.StorageWrites.WithLabelValues("main", "copy", OutcomeSuccess), 1)
				expectCount(t, m.StorageWrites.WithLabelValues("main", "files", OutcomeSuccess), 1)
				expectCount(t, m.LinkOutcomes.WithLabelValues("main", "tag", OutcomeContinue), 1)
			},
		},
		{
			// Pushed on to egress, the body is queued again: it keeps the
			// queued retention, however short the producer's TTL.
			name:     "TTL extended to the queued retention while on egress",
			links:    []mod{tag},
			storages: func(dir string) []mod { return []mod{redisStore} },
			bodyTTL:  1000 * time.Second,
			want:     want{egress: true, stored: true, tagged: true, bodyTTL: [2]time.Duration{apiwire.DefaultQueuedRetention - time.Minute, apiwire.DefaultQueuedRetention}},
		},
		{
			name:     "halt: filtered, no storage, no egress, no DLQ",
			links:    []mod{tag, dropAll, mod{"tag2", "links.tag", map[string]any{"tags": []any{"never"}}}},
			storages: func(dir string) []mod { return []mod{redisStore, fileStore(dir)} },
			want:     want{tagged: true},
			checkMetr: func(t *testing.T, m *Metrics) {
				expectCount(t, m.LinkOutcomes.WithLabelValues("main", "only-none", OutcomeHalt), 1)
				expectCount(t, m.LinkOutcomes.WithLabelValues("main", "tag2", OutcomeContinue), 0)
			},
		},
		{
			name:     "link error: DLQ with reason, body TTL becomes the DLQ expiry",
			links:    []mod{tag, rejectingHook},
			storages: func(dir string) []mod { return []mod{redisStore} },
			want:     want{dlqReason: ReasonLinkError, reasonText: "link notify", bodyTTL: [2]time.Duration{1200 * time.Second, 1234 * time.Second}},
			checkMetr: func(t *testing.T, m *Metrics) {
				expectCount(t, m.LinkOutcomes.WithLabelValues("main", "notify", OutcomeError), 1)
			},
		},
		{
			name:     "storage failing: retried, then DLQ",
			links:    []mod{tag},
			storages: func(dir string) []mod { return []mod{{"hook", "storage.webhook", urls(fail500)}} },
			want:     want{dlqReason: ReasonStorageError, reasonText: "storage hook", bodyTTL: [2]time.Duration{1200 * time.Second, 1234 * time.Second}},
			checkMetr: func(t *testing.T, m *Metrics) {
				expectCount(t, m.StorageWrites.WithLabelValues("main", "hook", OutcomeRetry), 2)
				expectCount(t, m.StorageWrites.WithLabelValues("main", "hook", OutcomeFailure), 1)
				expectCount(t, m.StorageWrites.WithLabelValues("main", "hook", OutcomeSuccess), 0)
			},
		},
		{
			name:     "storage recovering after two failures",
			links:    []mod{tag},
			storages: func(dir string) []mod { return []mod{{"hook", "storage.webhook", urls(flaky)}} },
			want:     want{egress: true, tagged: true},
			checkMetr: func(t *testing.T, m *Metrics) {
				expectCount(t, m.StorageWrites.WithLabelValues("main", "hook", OutcomeRetry), 2)
				expectCount(t, m.StorageWrites.WithLabelValues("main", "hook", OutcomeSuccess), 1)
				expectCount(t, m.StorageWrites.WithLabelValues("main", "hook", OutcomeFailure), 0)
				if n := flakyCalls.Load(); n != 3 {
					t.Errorf("webhook storage called %d times, want 3", n)
				}
			},
		},
		{
			name:     "chain timeout",
			links:    []mod{tag, slowHook},
			storages: func(dir string) []mod { return []mod{redisStore} },
			timeout:  300 * time.Millisecond,
			want:     want{dlqReason: ReasonTimeout, reasonText: "timeout"},
		},
		{
			name:     "missing body, nothing to read through",
			links:    []mod{tag},
			storages: func(dir string) []mod { return []mod{redisStore} },
			body:     []byte{},
			want:     want{dlqReason: ReasonNotFound, reasonText: "not_found", bodyGone: true},
		},
		{
			name:     "missing body read through from storage.file, re-cached",
			links:    []mod{tag},
			storages: func(dir string) []mod { return []mod{fileStore(dir)} },
			body:     []byte{},
			prepare: func(t *testing.T, e *env, dir, uuid string) {
				if err := os.WriteFile(filepath.Join(dir, uuid+".json"), document(uuid, 2000), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			// Re-cached, then pushed on to egress: queued again, so the
			// queued retention rather than the read-through TTL.
			want: want{egress: true, stored: true, tagged: true, bodyTTL: [2]time.Duration{apiwire.DefaultQueuedRetention - time.Minute, apiwire.DefaultQueuedRetention}},
		},
		{
			name:  "malformed: not JSON",
			links: []mod{tag},
			body:  []byte(`{"uuid": "oops`),
			want:  want{dlqReason: ReasonMalformed, reasonText: "invalid JSON"},
		},
		{
			name:  "malformed: wrong types",
			links: []mod{tag},
			body:  []byte(`{"uuid": 5, "created_at": true, "dialog": "x"}`),
			want:  want{dlqReason: ReasonMalformed, reasonText: "uuid"},
		},
		{
			name:  "malformed: a JSON array",
			links: []mod{tag},
			body:  []byte(`[1, 2]`),
			want:  want{dlqReason: ReasonMalformed, reasonText: "not a JSON object"},
		},
		{
			name:  "malformed: missing uuid",
			links: []mod{tag},
			body:  []byte(`{"created_at": "2024-03-05T10:00:00Z", "vcon": "0.0.1"}`),
			want:  want{dlqReason: ReasonMalformed, reasonText: "uuid"},
		},
		{
			name:  "malformed: uuid differs from the key",
			links: []mod{tag},
			body:  document(testUUID(999), 1000),
			want:  want{dlqReason: ReasonMalformed, reasonText: "differs from its key"},
		},
		{
			name:  "malformed: the body key is a list",
			links: []mod{tag},
			body:  []byte{},
			prepare: func(t *testing.T, e *env, dir, uuid string) {
				e.rdb.RPush(context.Background(), vconstore.Key(uuid), "x")
			},
			want: want{dlqReason: ReasonMalformed, reasonText: "neither a string nor a JSON document"},
		},
	}

	e := newEnv(t)
	ctx := context.Background()
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.rdb.FlushAll(ctx)
			dir := t.TempDir()
			var ss []mod
			if tc.storages != nil {
				ss = tc.storages(dir)
			}
			ch := e.chain(t, "main", []string{in}, []string{out}, tc.links, ss)
			ch.Timeout = tc.timeout
			opts := testOptions()
			opts.DLQExpiry = 1234 * time.Second
			p, m, _ := e.processor(ch, opts, "w")
			uuid := testUUID(i)
			switch {
			case tc.body == nil:
				e.putBody(t, uuid, document(uuid, 2000), tc.bodyTTL)
			case len(tc.body) > 0:
				e.putBody(t, uuid, tc.body, tc.bodyTTL)
			}
			if tc.prepare != nil {
				tc.prepare(t, e, dir, uuid)
			}
			e.rdb.RPush(ctx, in, uuid)
			it := e.take(t, p, in)

			if err := p.Process(ctx, it); err != nil {
				t.Fatalf("Process: %v", err)
			}

			w := tc.want
			if got := e.list(t, queue.InFlightKey(in, "w")); len(got) != 0 {
				t.Errorf("in-flight = %v, want empty", got)
			}
			if got := e.list(t, out); w.egress != slices.Equal(got, []string{uuid}) {
				t.Errorf("egress = %v, want egress: %v", got, w.egress)
			}
			dlq := e.list(t, queue.DLQKey(in))
			if w.dlqReason == "" {
				if len(dlq) != 0 {
					reasons, _ := queue.Reasons(ctx, e.rdb, in, dlq)
					t.Errorf("dead-lettered: %+v", reasons)
				}
			} else {
				if !slices.Equal(dlq, []string{uuid}) {
					t.Fatalf("DLQ = %v, want [%s]", dlq, uuid)
				}
				reasons, err := queue.Reasons(ctx, e.rdb, in, dlq)
				if err != nil {
					t.Fatal(err)
				}
				r := reasons[uuid]
				if !strings.HasPrefix(r.Reason, w.dlqReason) || !strings.Contains(r.Reason, w.reasonText) || r.Chain != "main" {
					t.Errorf("recorded reason = %+v, want %s containing %q", r, w.dlqReason, w.reasonText)
				}
				expectCount(t, m.DeadLetters.WithLabelValues("main", w.dlqReason), 1)
			}
			expectCount(t, m.Processed.WithLabelValues("main"), 1)
			expectCount(t, m.Errors.WithLabelValues("main"), map[bool]float64{true: 1, false: 0}[w.dlqReason != ""])
			expectCount(t, m.InFlight.WithLabelValues("main"), 0)

			stored := e.rdb.Exists(ctx, "copy:"+uuid).Val() == 1
			files, _ := filepath.Glob(filepath.Join(dir, "*", "*", "*", uuid+".json"))
			stored = stored || len(files) > 0
			if stored != w.stored {
				t.Errorf("stored = %v, want %v", stored, w.stored)
			}

			raw, err := e.rdb.Get(ctx, vconstore.Key(uuid)).Bytes()
			if w.bodyGone {
				if err != redis.Nil {
					t.Errorf("body exists (%v), want none", err)
				}
			} else if w.dlqReason == "" {
				if err != nil {
					t.Fatalf("body: %v", err)
				}
				v, err := vcon.Parse(raw)
				if err != nil {
					t.Fatalf("stored body does not parse: %v", err)
				}
				if v.String("vcon") != "0.4.0" {
					t.Errorf("body not normalised: vcon = %q", v.String("vcon"))
				}
				if _, ok := v.Doc()["x_custom"]; !ok {
					t.Error("unknown field x_custom lost in the rewrite")
				}
				if _, ok := vcon.Tag(v, "team"); ok != w.tagged {
					t.Errorf("tagged = %v, want %v", ok, w.tagged)
				}
				if _, ok := vcon.Tag(v, "never"); ok {
					t.Error("a link after the halting one ran")
				}
			}
			if w.bodyTTL != [2]time.Duration{} {
				ttl := e.rdb.PTTL(ctx, vconstore.Key(uuid)).Val()
				if ttl < w.bodyTTL[0] || ttl > w.bodyTTL[1] {
					t.Errorf("body TTL = %s, want between %s and %s", ttl, w.bodyTTL[0], w.bodyTTL[1])
				}
			} else if !w.bodyGone && w.dlqReason == "" {
				if ttl := e.rdb.PTTL(ctx, vconstore.Key(uuid)).Val(); ttl != -1 {
					t.Errorf("body TTL = %s, want none", ttl)
				}
			}
			if tc.checkMetr != nil {
				tc.checkMetr(t, m)
			}
		})
	}
}

func fileStore(dir string) mod {
	return mod{"files", "storage.file", map[string]any{"path": dir}}
}

func expectCount(t *testing.T, c prometheus.Collector, want float64) {
	t.Helper()
	if got := testutil.ToFloat64(c); got != want {
		ch := make(chan *prometheus.Desc, 1)
		c.Describe(ch)
		t.Errorf("%v = %v, want %v", <-ch, got, want)
	}
}

// TestTraceContextRecordIgnoredWhenWrongType: a context key that is not a
// list must not hold the vCon in flight forever.
func TestContextKeyOfWrongType(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ch := e.chain(t, "main", []string{"in"}, []string{"out"}, []mod{{"tag", "links.tag", map[string]any{"tags": []any{"a"}}}}, nil)
	p, _, _ := e.processor(ch, testOptions(), "w")
	uuid := testUUID(1)
	e.putBody(t, uuid, document(uuid, 1000), 0)
	e.rdb.Set(ctx, queue.ContextKey("in", uuid), "not a list", 0)
	e.rdb.RPush(ctx, "in", uuid)
	it := e.take(t, p, "in")
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := p.Process(pctx, it); err != nil {
		t.Fatalf("Process: %v", err)
	}
	if got := e.list(t, "out"); !slices.Equal(got, []string{uuid}) {
		t.Fatalf("egress = %v", got)
	}
}

// TestBuildSkipsDisabledChains: a chain with enabled: false consumes nothing.
func TestBuildSkipsDisabledChains(t *testing.T) {
	cfg, err := config.Parse([]byte(`
links:
  tag: {module: links.tag, options: {tags: [a]}}
chains:
  live:     {links: [tag], ingress_lists: [in-live], egress_lists: [out]}
  disabled: {links: [tag], ingress_lists: [in-disabled], enabled: false}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		only string
		want []string
	}{{"", []string{"live"}}, {"disabled", nil}, {"live", []string{"live"}}} {
		chains, closeAll, err := Build(context.Background(), cfg, tc.only, links.Deps{}, storage.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		closeAll()
		var names []string
		for _, c := range chains {
			names = append(names, c.Name)
		}
		if !slices.Equal(names, tc.want) {
			t.Errorf("Build(only=%q) = %v, want %v", tc.only, names, tc.want)
		}
	}
	if _, _, err := Build(context.Background(), cfg, "nope", links.Deps{}, storage.Deps{}); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("Build(only=nope) err = %v", err)
	}
}

// forwardLink tags the vCon it gets and continues the chain on another
// uuid (a link may switch to a related vCon).
type forwardLink struct{ to string }

func (l forwardLink) Run(_ context.Context, v *vcon.VCon) (links.Result, error) {
	vcon.AddTag(v, "forwarded", "yes")
	return links.Result{NextUUID: l.to}, nil
}

// TestProcessContinuesWithAnotherUUID: a link that returns another uuid has
// the current document written back, and the rest of the chain (the next
// link, storages, egress) runs on the other vCon; the taken one leaves
// flight.
func TestProcessContinuesWithAnotherUUID(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	first, other := testUUID(1), testUUID(2)
	e.putBody(t, first, document(first, 900), 0)
	e.putBody(t, other, document(other, 900), 0)
	ch := e.chain(t, "main", []string{"in"}, []string{"out"},
		[]mod{{"tag", "links.tag", map[string]any{"tags": []any{"after"}}}},
		[]mod{{"copy", "storage.redis_storage", nil}})
	ch.Links = append([]Step{{Name: "forward", Link: forwardLink{to: other}}}, ch.Links...)
	p, m, _ := e.processor(ch, testOptions(), "w")
	e.rdb.RPush(ctx, "in", first)
	if err := p.Process(ctx, e.take(t, p, "in")); err != nil {
		t.Fatal(err)
	}

	if got := e.list(t, "out"); !slices.Equal(got, []string{other}) {
		t.Fatalf("egress = %v, want only the other vCon %s", got, other)
	}
	firstDoc, _ := vcon.Parse([]byte(e.rdb.Get(ctx, vconstore.Key(first)).Val()))
	if v, ok := vcon.Tag(firstDoc, "forwarded"); !ok || v != "yes" {
		t.Errorf("the first vCon was not written back with the forwarding link's change: tags %v", vcon.Tags(firstDoc))
	}
	otherDoc, _ := vcon.Parse([]byte(e.rdb.Get(ctx, vconstore.Key(other)).Val()))
	if _, ok := vcon.Tag(otherDoc, "after"); !ok {
		t.Errorf("the next link did not run on the other vCon: tags %v", vcon.Tags(otherDoc))
	}
	if e.rdb.Exists(ctx, "vcon_storage:"+other).Val() != 1 || e.rdb.Exists(ctx, "vcon_storage:"+first).Val() != 0 {
		t.Error("the storage should hold the other vCon only")
	}
	if n := e.rdb.LLen(ctx, queue.InFlightKey("in", "w")).Val(); n != 0 {
		t.Errorf("%d items left in flight", n)
	}
	if got := testutil.ToFloat64(m.LinkOutcomes.WithLabelValues("main", "forward", OutcomeForward)); got != 1 {
		t.Errorf("forward outcomes = %v, want 1", got)
	}
}
