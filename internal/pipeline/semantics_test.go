package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vcon-operator/vcon-operator/internal/links"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/storage"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// paidLink stands for a link whose call costs money (a transcription, an
// LLM): it counts its runs and leaves a tag named for itself, unless fail
// says the n-th run fails.
type paidLink struct {
	name  string
	calls atomic.Int32
	fail  func(n int32) error
}

func (l *paidLink) Run(_ context.Context, v *vcon.VCon) (links.Result, error) {
	n := l.calls.Add(1)
	if l.fail != nil {
		if err := l.fail(n); err != nil {
			return links.Result{}, err
		}
	}
	vcon.AddTag(v, l.name, fmt.Sprint(n))
	return links.Continue, nil
}

type panicLink struct{}

func (panicLink) Run(context.Context, *vcon.VCon) (links.Result, error) {
	var m map[string]int
	m["boom"]++ // a nil map write: a runtime error
	return links.Continue, nil
}

// mayPassErr is an error that says it may pass (as httpx's do).
type mayPassErr struct{ msg string }

func (e mayPassErr) Error() string   { return e.msg }
func (e mayPassErr) Retryable() bool { return true }

// failingStorage fails while failing is set and counts its writes.
type failingStorage struct {
	failing atomic.Bool
	writes  atomic.Int32
}

func (s *failingStorage) Save(context.Context, *vcon.VCon) error {
	s.writes.Add(1)
	if s.failing.Load() {
		return errors.New("archive unavailable")
	}
	return nil
}

var _ storage.Storage = (*failingStorage)(nil)

// run queues uuid's body on "in", takes it and processes it once.
func (e *env) runOnce(t *testing.T, p *Processor, uuid string) {
	t.Helper()
	if err := p.Process(context.Background(), e.take(t, p, "in")); err != nil {
		t.Fatalf("process %s: %v", uuid, err)
	}
}

func (e *env) queued(t *testing.T, uuid string) {
	t.Helper()
	e.putBody(t, uuid, document(uuid, 1000), time.Hour)
	if err := e.rdb.RPush(context.Background(), "in", uuid).Err(); err != nil {
		t.Fatal(err)
	}
}

func (e *env) reason(t *testing.T, uuid string) queue.DLQReason {
	t.Helper()
	r, err := queue.Reasons(context.Background(), e.rdb, "in", []string{uuid})
	if err != nil {
		t.Fatal(err)
	}
	return r[uuid]
}

func (e *env) tags(t *testing.T, uuid string) []string {
	t.Helper()
	b, err := e.bodies.Get(context.Background(), uuid)
	if err != nil {
		t.Fatal(err)
	}
	v, err := vcon.Parse(b.Data)
	if err != nil {
		t.Fatal(err)
	}
	return vcon.Tags(v)
}

// TestPoisonPill: a vCon whose deliveries ended three times with its
// worker dead is dead-lettered with reason redelivery_limit when taken
// again, before any link runs; the state the queue kept of it goes.
func TestPoisonPill(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	link := &paidLink{name: "transcribe"}
	ch := Chain{Name: "main", Ingress: []string{"in"}, Egress: []string{"out"}, Links: []Step{{Name: "transcribe", Link: link}}}
	p, m, _ := e.processor(ch, testOptions(), "w1")
	uuid := testUUID(1)
	e.queued(t, uuid)
	// What three reaps leave: the count in the list's state hash.
	e.rdb.HSet(ctx, queue.StateKey("in"), "d:"+uuid, 3)

	e.runOnce(t, p, uuid)
	if got := e.whereIs(t, uuid, "in", []string{"out"}); len(got) != 1 || got[0] != "dlq" {
		t.Fatalf("poison pill is in %v, want the DLQ only", got)
	}
	r := e.reason(t, uuid)
	if !strings.HasPrefix(r.Reason, ReasonRedeliveryLimit+": delivered 3 times without an outcome") {
		t.Errorf("reason %q", r.Reason)
	}
	if n := link.calls.Load(); n != 0 {
		t.Errorf("the link ran %d times on a poison pill, want 0", n)
	}
	if n := e.rdb.HLen(ctx, queue.StateKey("in")).Val(); n != 0 {
		t.Errorf("state hash keeps %d fields after the dead letter", n)
	}
	if v := testutil.ToFloat64(m.DeadLetters.WithLabelValues("main", ReasonRedeliveryLimit)); v != 1 {
		t.Errorf("dead letters redelivery_limit = %v", v)
	}

	// Below the limit the vCon runs, and its outcome clears the count.
	other := testUUID(2)
	e.queued(t, other)
	e.rdb.HSet(ctx, queue.StateKey("in"), "d:"+other, 2)
	e.runOnce(t, p, other)
	if got := e.whereIs(t, other, "in", []string{"out"}); len(got) != 1 || got[0] != "egress out" {
		t.Fatalf("a vCon with 2 deliveries is in %v, want egress", got)
	}
	if n := e.rdb.HLen(ctx, queue.StateKey("in")).Val(); n != 0 {
		t.Errorf("state hash keeps %d fields after the outcome", n)
	}
}

// TestPanicRecovered: a link that panics dead-letters that vCon with
// reason panic (the runtime error's text, no content) and the processor
// goes on with the next.
func TestPanicRecovered(t *testing.T) {
	e := newEnv(t)
	p, m, _ := e.processor(Chain{Name: "main", Ingress: []string{"in"}, Egress: []string{"out"},
		Links: []Step{{Name: "crash", Link: panicLink{}}}}, testOptions(), "w1")
	uuid := testUUID(1)
	e.queued(t, uuid)
	e.runOnce(t, p, uuid)
	if got := e.whereIs(t, uuid, "in", []string{"out"}); len(got) != 1 || got[0] != "dlq" {
		t.Fatalf("vCon is in %v, want the DLQ", got)
	}
	if r := e.reason(t, uuid).Reason; !strings.HasPrefix(r, "panic: link crash: link crash panicked: assignment to entry in nil map") {
		t.Errorf("reason %q", r)
	}
	if v := testutil.ToFloat64(m.Panics.WithLabelValues("main")); v != 1 {
		t.Errorf("panics = %v", v)
	}
	fine := Chain{Name: "main", Ingress: []string{"in"}, Egress: []string{"out"}, Links: []Step{{Name: "ok", Link: &paidLink{name: "ok"}}}}
	p2, _, _ := e.processor(fine, testOptions(), "w1")
	next := testUUID(2)
	e.queued(t, next)
	e.runOnce(t, p2, next)
	if got := e.whereIs(t, next, "in", []string{"out"}); len(got) != 1 || got[0] != "egress out" {
		t.Errorf("the next vCon is in %v, want egress", got)
	}
}

// TestDelayedRetry: a failure that may pass waits in the retry set,
// holding no worker, with its attempts recorded; it comes back when due
// and resumes after the links it completed. Attempts spent, it is
// dead-lettered with every attempt's reason. A failure that cannot pass
// is dead-lettered at once.
func TestDelayedRetry(t *testing.T) {
	policy := RetryPolicy{Attempts: 3, InitialBackoff: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
	tests := []struct {
		name      string
		failUntil int32 // the analyze link fails its runs up to this one
		err       error
		want      string // where the vCon ends: egress out or dlq
		wantRuns  int32  // runs of analyze
		attempts  int    // attempts recorded with the dead letter
	}{
		{"passes on the second attempt", 1, mayPassErr{"vendor answered 503"}, "egress out", 2, 0},
		{"passes on the last attempt", 2, mayPassErr{"vendor answered 503"}, "egress out", 3, 0},
		{"attempts spent", 99, mayPassErr{"vendor answered 503"}, "dlq", 3, 2},
		{"a timeout may pass", 1, context.DeadlineExceeded, "egress out", 2, 0},
		{"a 400 does not pass", 99, errors.New("vendor answered 400 Bad Request"), "dlq", 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			transcribe := &paidLink{name: "transcribe"}
			analyze := &paidLink{name: "analyze", fail: func(n int32) error {
				if n <= tc.failUntil {
					return tc.err
				}
				return nil
			}}
			ch := Chain{Name: "main", Ingress: []string{"in"}, Egress: []string{"out"}, Retry: policy,
				Links: []Step{{Name: "transcribe", Link: transcribe}, {Name: "analyze", Link: analyze}}}
			p, m, _ := e.processor(ch, testOptions(), "w1")
			uuid := testUUID(1)
			e.queued(t, uuid)
			for range 10 {
				e.runOnce(t, p, uuid)
				where := e.whereIs(t, uuid, "in", []string{"out"})
				if len(where) == 1 && (where[0] == "egress out" || where[0] == "dlq") {
					break
				}
				// Waiting for its retry: in no list, in the retry set, no
				// worker holds it.
				if len(where) != 0 || e.rdb.ZScore(ctx, queue.RetryKey("in"), uuid).Err() != nil {
					t.Fatalf("between attempts the vCon is in %v, want the retry set only", where)
				}
				if p.worker.Held() != 0 {
					t.Fatalf("a waiting retry holds a worker slot")
				}
				deadline := time.Now().Add(5 * time.Second)
				for e.rdb.LLen(ctx, "in").Val() == 0 {
					if _, err := queue.PromoteDue(ctx, e.rdb, []string{"in"}); err != nil {
						t.Fatal(err)
					}
					if time.Now().After(deadline) {
						t.Fatal("the retry never came due")
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			if where := e.whereIs(t, uuid, "in", []string{"out"}); len(where) != 1 || where[0] != tc.want {
				t.Fatalf("the vCon ends in %v, want %s", where, tc.want)
			}
			if n := analyze.calls.Load(); n != tc.wantRuns {
				t.Errorf("analyze ran %d times, want %d", n, tc.wantRuns)
			}
			// Paid for once: the retries resumed after transcribe.
			if n := transcribe.calls.Load(); n != 1 {
				t.Errorf("transcribe ran %d times, want 1 (retries resume after completed links)", n)
			}
			if tc.want == "dlq" {
				r := e.reason(t, uuid)
				if len(r.Attempts) != tc.attempts || r.Step != "link analyze" || !slices.Equal(r.Completed, []string{"transcribe"}) {
					t.Errorf("dead letter %+v: want %d earlier attempts, step link analyze, completed [transcribe]", r, tc.attempts)
				}
				if tags := e.tags(t, uuid); !slices.Contains(tags, "transcribe:1") {
					t.Errorf("the dead-lettered body lacks the completed link's result: tags %v", tags)
				}
			} else if n := e.rdb.HLen(ctx, queue.StateKey("in")).Val(); n != 0 {
				t.Errorf("state hash keeps %d fields after success", n)
			}
			if got, want := testutil.ToFloat64(m.Processed.WithLabelValues("main")), 1.0; got != want {
				t.Errorf("processed = %v, want %v (a waiting retry has not finished its chain)", got, want)
			}
		})
	}
}

// TestReplayResumesAfterCompletedLinks: a chain transcribe → analyze →
// a failing storage dead-letters with both links completed and their
// results in the body; the replay resumes at the storage, so each vendor
// was called once per vCon. --from-start runs them again.
func TestReplayResumesAfterCompletedLinks(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	transcribe, analyze := &paidLink{name: "transcribe"}, &paidLink{name: "analyze"}
	archive := &failingStorage{}
	archive.failing.Store(true)
	ch := Chain{Name: "main", Ingress: []string{"in"}, Egress: []string{"out"},
		Links:    []Step{{Name: "transcribe", Link: transcribe}, {Name: "analyze", Link: analyze}},
		Storages: []Sink{{Name: "archive", Storage: archive}}}
	p, _, _ := e.processor(ch, testOptions(), "w1")
	uuid := testUUID(1)
	e.queued(t, uuid)
	e.runOnce(t, p, uuid)
	r := e.reason(t, uuid)
	if r.Step != "storage archive" || !slices.Equal(r.Completed, []string{"transcribe", "analyze"}) {
		t.Fatalf("dead letter %+v, want step storage archive with both links completed", r)
	}
	if tags := e.tags(t, uuid); !slices.Contains(tags, "transcribe:1") || !slices.Contains(tags, "analyze:1") {
		t.Fatalf("body tags %v: the links' results were not kept", tags)
	}

	archive.failing.Store(false)
	if n, err := queue.Replay(ctx, e.rdb, "in", 10, false); err != nil || n != 1 {
		t.Fatalf("replay: %d, %v", n, err)
	}
	e.runOnce(t, p, uuid)
	if where := e.whereIs(t, uuid, "in", []string{"out"}); len(where) != 1 || where[0] != "egress out" {
		t.Fatalf("after the replay the vCon is in %v", where)
	}
	if transcribe.calls.Load() != 1 || analyze.calls.Load() != 1 {
		t.Errorf("vendors called transcribe %d, analyze %d times; want once each", transcribe.calls.Load(), analyze.calls.Load())
	}
	if n := e.rdb.HLen(ctx, queue.StateKey("in")).Val(); n != 0 {
		t.Errorf("state hash keeps %d fields after success", n)
	}

	// From the start: fail again, replay with fromStart, every link runs.
	other := testUUID(2)
	archive.failing.Store(true)
	e.queued(t, other)
	e.runOnce(t, p, other)
	archive.failing.Store(false)
	if _, err := queue.Replay(ctx, e.rdb, "in", 10, true); err != nil {
		t.Fatal(err)
	}
	e.runOnce(t, p, other)
	if transcribe.calls.Load() != 3 || analyze.calls.Load() != 3 {
		t.Errorf("after a from-start replay: transcribe %d, analyze %d calls; want 3 each", transcribe.calls.Load(), analyze.calls.Load())
	}
}

// TestBodyOutlivesItsTTLWhileProcessed: a body whose producer gave it
// less time than its processing takes is extended when taken, so the
// outcome finds it; on egress it keeps the queued retention, and at the
// end of its road it gets the normal expiry back.
func TestBodyOutlivesItsTTLWhileProcessed(t *testing.T) {
	for _, egress := range [][]string{{"out"}, nil} {
		t.Run(fmt.Sprintf("egress %v", egress), func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			slow := &paidLink{name: "slow", fail: func(int32) error { time.Sleep(600 * time.Millisecond); return nil }}
			opts := testOptions()
			opts.QueuedRetention, opts.ReadThroughTTL = time.Hour, 10*time.Minute
			p, _, _ := e.processor(Chain{Name: "main", Ingress: []string{"in"}, Egress: egress, Links: []Step{{Name: "slow", Link: slow}}}, opts, "w1")
			uuid := testUUID(1)
			e.putBody(t, uuid, document(uuid, 1000), 300*time.Millisecond)
			e.rdb.RPush(ctx, "in", uuid)
			e.runOnce(t, p, uuid)
			if r := e.reason(t, uuid).Reason; r != "" {
				t.Fatalf("dead-lettered: %s", r)
			}
			ttl := e.rdb.PTTL(ctx, vconstore.Key(uuid)).Val()
			lo, hi := 9*time.Minute, 10*time.Minute
			if len(egress) > 0 {
				lo, hi = 59*time.Minute, time.Hour
			}
			if ttl < lo || ttl > hi {
				t.Errorf("body TTL after the outcome %s, want %s to %s", ttl, lo, hi)
			}
		})
	}
}

// TestHTTPStatusDecidesRetry: the vendor plumbing's errors say whether they
// may pass: a 503 from a strict webhook link waits for a retry, a 400 is
// dead-lettered at once.
func TestHTTPStatusDecidesRetry(t *testing.T) {
	for _, tc := range []struct {
		status int
		retry  bool
	}{{http.StatusServiceUnavailable, true}, {http.StatusTooManyRequests, true}, {http.StatusBadRequest, false}} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(tc.status) }))
			defer srv.Close()
			e := newEnv(t)
			ctx := context.Background()
			ch := e.chain(t, "main", []string{"in"}, []string{"out"}, []mod{{"notify", "links.webhook", map[string]any{"webhook-urls": []any{srv.URL}, "strict": true}}}, nil)
			ch.Retry = RetryPolicy{Attempts: 2, InitialBackoff: time.Hour}
			p, _, _ := e.processor(ch, testOptions(), "w1")
			uuid := testUUID(1)
			e.queued(t, uuid)
			e.runOnce(t, p, uuid)
			waiting := e.rdb.ZScore(ctx, queue.RetryKey("in"), uuid).Err() == nil
			if waiting != tc.retry {
				t.Errorf("HTTP %d: waiting for a retry = %v, want %v (DLQ: %q)", tc.status, waiting, tc.retry, e.reason(t, uuid).Reason)
			}
		})
	}
}

// routeLink routes every vCon to its list and sets a TTL, as tag_router
// and expire_vcon do: effects the outcome applies, nothing in the body.
type routeLink struct {
	list  string
	calls atomic.Int32
}

func (l *routeLink) Run(context.Context, *vcon.VCon) (links.Result, error) {
	l.calls.Add(1)
	return links.Result{Routes: []string{l.list}, TTL: time.Hour}, nil
}

// TestResumeKeepsCompletedLinksEffects: a router that completed before a
// failure is not run again when the vCon resumes (a retry, a replay), so
// the routes and TTL it asked for are kept with the progress and applied
// by the outcome of the run that resumes: the vCon is routed exactly once.
// From the start, the router runs again and gives its own.
func TestResumeKeepsCompletedLinksEffects(t *testing.T) {
	for _, tc := range []struct {
		name      string
		retry     bool
		fromStart bool
	}{
		{"delayed retry", true, false},
		{"DLQ replay", false, false},
		{"DLQ replay from the start", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			router := &routeLink{list: "routed"}
			flaky := &paidLink{name: "analyze", fail: func(n int32) error {
				if n == 1 {
					return mayPassErr{"vendor timeout"}
				}
				return nil
			}}
			ch := Chain{Name: "main", Ingress: []string{"in"}, Egress: []string{"out"},
				Links: []Step{{Name: "router", Link: router}, {Name: "analyze", Link: flaky}}}
			if tc.retry {
				ch.Retry = RetryPolicy{Attempts: 2, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond}
			}
			p, _, _ := e.processor(ch, testOptions(), "w1")
			uuid := testUUID(7)
			e.queued(t, uuid)
			e.runOnce(t, p, uuid)
			if n := e.rdb.LLen(ctx, "routed").Val(); n != 0 {
				t.Fatalf("routed %d times by a failed run", n)
			}
			if tc.retry {
				time.Sleep(5 * time.Millisecond)
				if _, err := queue.PromoteDue(ctx, e.rdb, []string{"in"}); err != nil {
					t.Fatal(err)
				}
			} else if _, err := queue.Replay(ctx, e.rdb, "in", 10, tc.fromStart); err != nil {
				t.Fatal(err)
			}
			e.runOnce(t, p, uuid)
			if got := e.rdb.LRange(ctx, "routed", 0, -1).Val(); !slices.Equal(got, []string{uuid}) {
				t.Errorf("routed list %v, want the vCon once", got)
			}
			if ttl := e.rdb.TTL(ctx, vconstore.Key(uuid)).Val(); ttl <= 0 || ttl > time.Hour {
				t.Errorf("body TTL %v, want the router's hour", ttl)
			}
			wantRuns := int32(1)
			if tc.fromStart {
				wantRuns = 2
			}
			if n := router.calls.Load(); n != wantRuns {
				t.Errorf("router ran %d times, want %d", n, wantRuns)
			}
			if n := e.rdb.HLen(ctx, queue.StateKey("in")).Val(); n != 0 {
				t.Errorf("state hash keeps %d fields after success", n)
			}
		})
	}
}
