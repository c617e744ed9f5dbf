package follower

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/api"
	"github.com/vcon-operator/vcon-operator/internal/apiwire"
	"github.com/vcon-operator/vcon-operator/internal/config"
	"github.com/vcon-operator/vcon-operator/internal/httpx"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
	"github.com/vcon-operator/vcon-operator/internal/vcon/sample"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

const token = "upstream-token-1234"

// fault makes the upstream answer requests whose path ends with suffix
// (after the method) with status and body instead of the API's answer.
type fault struct {
	method, suffix string
	status         int
	body           string
}

// upstream is our own API on a loopback port with its own redis-server:
// the conserver a follower follows.
type upstream struct {
	t     *testing.T
	rdb   *redis.Client
	srv   *httptest.Server
	fault atomic.Pointer[fault]
	calls atomic.Int64
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	rdb := testenv.StartRedis(t).Client()
	s, err := api.New(rdb, api.Options{Tokens: []string{token}, VconTTL: time.Hour, ContextTTL: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	u := &upstream{t: t, rdb: rdb}
	h := s.Handler()
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.calls.Add(1)
		if f := u.fault.Load(); f != nil && r.Method == f.method && strings.HasSuffix(r.URL.Path, f.suffix) {
			w.WriteHeader(f.status)
			_, _ = w.Write([]byte(f.body))
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// post submits vCons through the API, queued on the upstream egress list.
func (u *upstream) post(list string, uuids ...string) {
	u.t.Helper()
	for _, id := range uuids {
		req, _ := http.NewRequest(http.MethodPost, u.srv.URL+"/api/vcon?ingress_lists="+list, bytes.NewReader(sample.Document(id, 2000)))
		req.Header.Set(apiwire.DefaultHeaderName, token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			u.t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			u.t.Fatalf("POST /api/vcon %s: status %d", id, resp.StatusCode)
		}
	}
}

func (u *upstream) list(name string) []string {
	u.t.Helper()
	got, err := u.rdb.LRange(context.Background(), name, 0, -1).Result()
	if err != nil {
		u.t.Fatal(err)
	}
	return got
}

func uuids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1)
	}
	return out
}

type local struct {
	t       *testing.T
	rdb     *redis.Client
	bodies  *vconstore.Store
	metrics *Metrics
}

func startLocal(t *testing.T) *local {
	t.Helper()
	rdb := testenv.StartRedis(t).Client()
	return &local{t: t, rdb: rdb, bodies: vconstore.New(rdb, vconstore.Options{}), metrics: NewMetrics(prometheus.NewRegistry())}
}

func (l *local) follower(name, owner string, cfg config.Follower, mutate ...func(*Options)) *Follower {
	o := Options{
		Owner: owner, BodyTTL: time.Hour, ContextTTL: time.Hour, Metrics: l.metrics,
		RequestTimeout: 2 * time.Second,
		FetchPolicy:    httpx.Policy{Retries: 1, Base: time.Millisecond, Max: time.Millisecond},
		Logger:         slog.New(slog.DiscardHandler),
	}
	for _, m := range mutate {
		m(&o)
	}
	return New(name, cfg, l.rdb, l.bodies, o)
}

func (l *local) list(name string) []string {
	l.t.Helper()
	got, err := l.rdb.LRange(context.Background(), name, 0, -1).Result()
	if err != nil {
		l.t.Fatal(err)
	}
	return got
}

func (l *local) dlqReason(ingress, uuid string) string {
	l.t.Helper()
	r, err := queue.Reasons(context.Background(), l.rdb, ingress, []string{uuid})
	if err != nil {
		l.t.Fatal(err)
	}
	return r[uuid].Reason
}

func cfgFor(u *upstream, lists ...string) config.Follower {
	return config.Follower{URL: u.srv.URL + "/api", EgressList: "out", IngressLists: lists, AuthToken: token, PullingInterval: time.Second, FetchVconLimit: 2}
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

// TestFollowsExactlyOnceAcrossRestart: vCons posted to the upstream's
// egress list arrive here once each, bodies intact, also when the follower
// dies between popping them upstream and queueing them here, and while it
// is dead no other worker polls.
func TestFollowsExactlyOnceAcrossRestart(t *testing.T) {
	ctx := context.Background()
	up, loc := startUpstream(t), startLocal(t)
	ids := uuids(5)
	up.post("out", ids...)

	// The first worker pops two, then upstream fails every body fetch:
	// the popped uuids exist only here, in the pending list.
	first := loc.follower("upstream", "worker-a", cfgFor(up, "in", "also"))
	// Egress pops newest first: ids[4] is fetched, ids[3] fails.
	up.fault.Store(&fault{method: "GET", suffix: ids[3], status: 500, body: `{"detail":"boom"}`})
	err := first.Poll(ctx)
	if err == nil || !strings.Contains(err.Error(), "HTTP 500") {
		t.Fatalf("Poll with failing fetches: %v, want the upstream's HTTP 500", err)
	}
	if got := loc.list(queue.FollowerPendingKey("upstream")); !slices.Equal(got, ids[3:4]) {
		t.Fatalf("pending %v, want the popped uuid not yet queued, %s", got, ids[3])
	}
	if got := up.list("out"); len(got) != 3 {
		t.Fatalf("upstream egress %v, want 3 left", got)
	}
	if got := loc.list("in"); !slices.Equal(got, ids[4:]) {
		t.Fatalf("in %v, want the one vCon fetched before the failure, %s", got, ids[4])
	}

	// The first worker is gone without releasing its lease (a crash):
	// a second one must not poll until the lease expires.
	up.fault.Store(nil)
	second := loc.follower("upstream", "worker-b", cfgFor(up, "in", "also"))
	calls := up.calls.Load()
	if err := second.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if up.calls.Load() != calls {
		t.Fatal("a second worker polled upstream while the first held the lease")
	}
	loc.rdb.PExpire(ctx, queue.FollowerLeaseKey("upstream"), time.Millisecond)
	time.Sleep(5 * time.Millisecond)

	for i := 0; i < 5 && len(up.list("out")) > 0; i++ {
		if err := second.Poll(ctx); err != nil {
			t.Fatalf("Poll %d: %v", i, err)
		}
	}
	if err := second.Poll(ctx); err != nil { // one more: nothing left to do
		t.Fatal(err)
	}
	for _, list := range []string{"in", "also"} {
		if got := sorted(loc.list(list)); !slices.Equal(got, ids) {
			t.Errorf("%s = %v, want each of %v once", list, got, ids)
		}
	}
	if got := loc.list(queue.FollowerPendingKey("upstream")); len(got) != 0 {
		t.Errorf("pending %v after the upstream was drained", got)
	}
	for _, id := range ids {
		b, err := loc.bodies.Get(ctx, id)
		if err != nil {
			t.Fatalf("body of %s: %v", id, err)
		}
		var doc map[string]any
		if err := json.Unmarshal(b.Data, &doc); err != nil || doc["uuid"] != id {
			t.Errorf("body of %s is not its vCon: %.80s", id, b.Data)
		}
		if b.PTTL <= 0 || b.PTTL > time.Hour {
			t.Errorf("body of %s has TTL %s, want BodyTTL", id, b.PTTL)
		}
	}
	if got := testutil.ToFloat64(loc.metrics.vcons.WithLabelValues("upstream", OutcomeFollowed)); got != 5 {
		t.Errorf("followed = %v, want 5", got)
	}
	if got := testutil.ToFloat64(loc.metrics.pending.WithLabelValues("upstream")); got != 0 {
		t.Errorf("pending gauge = %v, want 0", got)
	}
}

// TestUpstreamFailuresLoseNothing: an upstream that refuses the token,
// fails, answers garbage or is not there pops nothing that is lost; the
// poll says why, counts it, and the next good poll takes everything.
func TestUpstreamFailuresLoseNothing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		token  string
		fault  *fault
		down   bool
		reason string
		want   string
	}{
		{name: "wrong token", token: "not-the-token", reason: ErrUnauthorized,
			want: "HTTP 403: Invalid API Key (upstream refused the API token: check auth_token"},
		{name: "server error", fault: &fault{method: "GET", suffix: "/vcon/egress", status: 500, body: `{"detail":"Failed to pop from egress list"}`},
			reason: ErrUpstream, want: "HTTP 500: Failed to pop from egress list"},
		{name: "garbage", fault: &fault{method: "GET", suffix: "/vcon/egress", status: 200, body: "<html>login</html>"},
			reason: ErrInvalidAnswer, want: "the answer is not a JSON list of uuids (invalid JSON at byte 1)"},
		{name: "not a list of strings", fault: &fault{method: "GET", suffix: "/vcon/egress", status: 200, body: `{"uuids":[]}`},
			reason: ErrInvalidAnswer, want: "is not a JSON list of uuids"},
		{name: "unreachable", down: true, reason: ErrUnavailable, want: "request failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			up, loc := startUpstream(t), startLocal(t)
			ids := uuids(3)
			up.post("out", ids...)
			cfg := cfgFor(up, "in")
			cfg.FetchVconLimit = 10
			good := cfg
			if tc.token != "" {
				cfg.AuthToken = tc.token
			}
			if tc.down {
				cfg.URL = "http://127.0.0.1:" + fmt.Sprint(testenv.FreePort(t))
			}
			up.fault.Store(tc.fault)
			f := loc.follower("f", "w", cfg)
			err := f.Poll(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Poll: %v\nwant an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), token) || (tc.token != "" && strings.Contains(err.Error(), tc.token)) {
				t.Errorf("the error quotes the token: %v", err)
			}
			if got := testutil.ToFloat64(loc.metrics.errors.WithLabelValues("f", tc.reason)); got != 1 {
				t.Errorf("errors{reason=%s} = %v, want 1", tc.reason, got)
			}
			if got := up.list("out"); len(got) != 3 {
				t.Errorf("upstream egress %v: the failed poll popped something", got)
			}
			if got := loc.list("in"); len(got) != 0 {
				t.Errorf("in = %v after a failed poll", got)
			}

			up.fault.Store(nil)
			if err := loc.follower("f", "w", good).Poll(ctx); err != nil {
				t.Fatalf("Poll once upstream is fine: %v", err)
			}
			if got := sorted(loc.list("in")); !slices.Equal(got, ids) {
				t.Errorf("in = %v, want %v", got, ids)
			}
		})
	}
}

// TestVconsUpstreamCannotGiveAreDeadLettered: a vCon whose body upstream
// no longer has, or answers with something that is not it, goes to
// DLQ:{ingress} with the reason; the others are followed.
func TestVconsUpstreamCannotGiveAreDeadLettered(t *testing.T) {
	for _, tc := range []struct {
		name    string
		break_  func(up *upstream, id string)
		maxBody int64 // the worker's --max-body-bytes; its default when 0
		want    string
	}{
		{name: "gone upstream", break_: func(up *upstream, id string) { up.rdb.Del(context.Background(), "vcon:"+id) },
			want: "not_found: upstream has no such vCon (GET /vcon/{uuid} answered 404)"},
		{name: "not JSON", break_: func(up *upstream, id string) {
			up.fault.Store(&fault{method: "GET", suffix: id, status: 200, body: "<html>"})
		}, want: "malformed: upstream answered GET /vcon/{uuid} with something that is not a vCon: invalid JSON"},
		{name: "another vCon", break_: func(up *upstream, id string) {
			up.fault.Store(&fault{method: "GET", suffix: id, status: 200, body: `{"uuid":"00000000-0000-4000-8000-999999999999"}`})
		}, want: "malformed: upstream answered GET /vcon/{uuid} with a document whose uuid is not that vCon's"},
		{name: "over the worker's body limit", maxBody: 1000,
			want: "bytes, over the worker's limit of 1000 (--max-body-bytes)"},
		{name: "over what any worker reads", break_: func(up *upstream, id string) {
			up.fault.Store(&fault{method: "GET", suffix: id, status: 200, body: strings.Repeat(" ", httpx.MaxAnswerBytes+1)})
		}, want: "too_large: the body is over 33554432 bytes"},
		{name: "not a uuid", break_: func(up *upstream, id string) {
			up.rdb.RPush(context.Background(), "out", "../../admin")
		}, want: "malformed: upstream egress list held something that is not a vCon uuid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			up, loc := startUpstream(t), startLocal(t)
			ids := uuids(3)
			up.post("out", ids...)
			bad := ids[1]
			if tc.break_ != nil {
				tc.break_(up, bad)
			}
			if tc.name == "not a uuid" {
				bad = "../../admin"
			}
			cfg := cfgFor(up, "in")
			cfg.FetchVconLimit = 10
			if err := loc.follower("f", "w", cfg, func(o *Options) { o.MaxBodyBytes = tc.maxBody }).Poll(ctx); err != nil {
				t.Fatalf("Poll: %v", err)
			}
			if tc.maxBody > 0 {
				// Every sample body is over the limit: all are dead letters.
				if got := sorted(loc.list(queue.DLQKey("in"))); !slices.Equal(got, ids) || len(loc.list("in")) != 0 {
					t.Fatalf("DLQ:in = %v, in = %v; want every vCon dead-lettered", got, loc.list("in"))
				}
				if got := loc.dlqReason("in", bad); !strings.Contains(got, tc.want) {
					t.Errorf("reason %q\nwant %q", got, tc.want)
				}
				return
			}
			if got := loc.list(queue.DLQKey("in")); !slices.Equal(got, []string{bad}) {
				t.Fatalf("DLQ:in = %v, want [%s]", got, bad)
			}
			if got := loc.dlqReason("in", bad); !strings.Contains(got, tc.want) {
				t.Errorf("reason %q\nwant %q", got, tc.want)
			}
			want := slices.DeleteFunc(slices.Clone(ids), func(s string) bool { return s == bad })
			if got := sorted(loc.list("in")); !slices.Equal(got, want) {
				t.Errorf("in = %v, want the others, %v", got, want)
			}
			if got := loc.list(queue.FollowerPendingKey("f")); len(got) != 0 {
				t.Errorf("pending = %v", got)
			}
		})
	}
}

// TestRefusedQueueingDeadLettersWithTheBody: an ingress list Redis cannot
// push to (a key of another type) dead-letters the vCon with its body.
func TestRefusedQueueingDeadLettersWithTheBody(t *testing.T) {
	ctx := context.Background()
	up, loc := startUpstream(t), startLocal(t)
	id := uuids(1)[0]
	up.post("out", id)
	loc.rdb.HSet(ctx, "in", "not", "a list")
	if err := loc.follower("f", "w", cfgFor(up, "in")).Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if got := loc.list(queue.DLQKey("in")); !slices.Equal(got, []string{id}) {
		t.Fatalf("DLQ:in = %v", got)
	}
	if got := loc.dlqReason("in", id); !strings.Contains(got, "outcome_failed: Redis refused to queue it: RPUSH in: the key holds a hash") {
		t.Errorf("reason %q", got)
	}
	if _, err := loc.bodies.Get(ctx, id); err != nil {
		t.Errorf("the dead-lettered vCon has no body: %v", err)
	}
	if got := loc.list(queue.FollowerPendingKey("f")); len(got) != 0 {
		t.Errorf("pending = %v", got)
	}
}

// failPending makes the local client's RPUSH onto a follower's pending
// list fail, as when local Redis goes away right after the upstream pop.
type failPending struct{ key string }

func (h failPending) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h failPending) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "rpush" && len(cmd.Args()) > 1 && cmd.Args()[1] == h.key {
			err := errors.New("connection reset by peer")
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}
func (h failPending) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestUnrecordablePopsGoBackUpstream: uuids popped upstream that cannot
// be recorded here are pushed back onto the upstream egress list; when
// upstream refuses them too they are counted lost (and logged by uuid).
func TestUnrecordablePopsGoBackUpstream(t *testing.T) {
	for _, tc := range []struct {
		name        string
		refuseBack  bool
		wantOutcome string
		wantUp      int
	}{
		{name: "pushed back", wantOutcome: OutcomeReturned, wantUp: 3},
		{name: "upstream refuses them back", refuseBack: true, wantOutcome: OutcomeLost, wantUp: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			up, loc := startUpstream(t), startLocal(t)
			ids := uuids(3)
			up.post("out", ids...)
			loc.rdb.AddHook(failPending{key: queue.FollowerPendingKey("f")})
			if tc.refuseBack {
				up.fault.Store(&fault{method: "POST", suffix: "/vcon/ingress", status: 503, body: "down"})
			}
			err := loc.follower("f", "w", cfgFor(up, "in")).Poll(ctx)
			if err == nil || !strings.Contains(err.Error(), "local Redis: record 2 popped uuids") {
				t.Fatalf("Poll: %v", err)
			}
			if got := up.list("out"); len(got) != tc.wantUp {
				t.Errorf("upstream egress %v, want %d uuids", got, tc.wantUp)
			}
			if got := testutil.ToFloat64(loc.metrics.vcons.WithLabelValues("f", tc.wantOutcome)); got != 2 {
				t.Errorf("%s = %v, want 2", tc.wantOutcome, got)
			}
		})
	}
}

// TestRunPollsOnItsIntervalAndReleasesTheLease: Run keeps polling, and a
// clean stop hands the lease over at once.
func TestRunPollsOnItsIntervalAndReleasesTheLease(t *testing.T) {
	up, loc := startUpstream(t), startLocal(t)
	cfg := cfgFor(up, "in")
	cfg.PullingInterval = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); loc.follower("f", "w", cfg).Run(ctx) }()
	ids := uuids(4)
	for _, id := range ids {
		up.post("out", id)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(loc.list("in")) < len(ids) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	if got := sorted(loc.list("in")); !slices.Equal(got, ids) {
		t.Errorf("in = %v, want %v", got, ids)
	}
	if n, _ := loc.rdb.Exists(context.Background(), queue.FollowerLeaseKey("f")).Result(); n != 0 {
		t.Error("the lease survived a clean stop")
	}
}

// TestOneVconUpstreamCannotServe: a vCon upstream answers 5xx for while
// it serves the others does not hold them up; it is dead-lettered after
// MaxFetchFailures polls. An upstream that is down as a whole (its egress
// pop failing too) counts nothing against the pending vCons.
func TestOneVconUpstreamCannotServe(t *testing.T) {
	ctx := context.Background()
	up, loc := startUpstream(t), startLocal(t)
	ids := uuids(4)
	up.post("out", ids[:2]...)
	poison := ids[1] // popped first: newest
	cfg := cfgFor(up, "in")
	cfg.FetchVconLimit = 10
	f := loc.follower("f", "w", cfg)
	up.fault.Store(&fault{method: "GET", suffix: poison, status: 500, body: `{"detail":"corrupt"}`})
	if err := f.Poll(ctx); err == nil || !strings.Contains(err.Error(), "vCon "+poison+" kept pending (failed poll 1 of 5)") {
		t.Fatalf("first poll: %v", err)
	}

	// Upstream goes down entirely for many polls: nothing is charged.
	up.fault.Store(&fault{method: "GET", suffix: "", status: 502, body: "bad gateway"})
	for range 2 * MaxFetchFailures {
		if err := f.Poll(ctx); err == nil || !strings.Contains(err.Error(), "HTTP 502") {
			t.Fatalf("poll while upstream is down: %v", err)
		}
	}
	if got := loc.list(queue.DLQKey("in")); len(got) != 0 {
		t.Fatalf("an upstream outage dead-lettered %v", got)
	}

	// Upstream is back but still cannot serve the poison: the others keep
	// flowing, and the poison goes to the DLQ at its fifth failed poll.
	up.fault.Store(&fault{method: "GET", suffix: poison, status: 500, body: `{"detail":"corrupt"}`})
	up.post("out", ids[2:]...)
	for i := 2; i <= MaxFetchFailures; i++ {
		err := f.Poll(ctx)
		if i < MaxFetchFailures && (err == nil || !strings.Contains(err.Error(), fmt.Sprintf("failed poll %d of 5", i))) {
			t.Fatalf("poll %d: %v", i, err)
		}
		if i == MaxFetchFailures && err != nil {
			t.Fatalf("poll %d: %v", i, err)
		}
	}
	if got := loc.list(queue.DLQKey("in")); !slices.Equal(got, []string{poison}) {
		t.Fatalf("DLQ:in = %v, want [%s]", got, poison)
	}
	if got := loc.dlqReason("in", poison); !strings.Contains(got, "upstream_error: upstream failed to give it in 5 polls while answering the others") || !strings.Contains(got, "HTTP 500 after 2 attempts: corrupt") {
		t.Errorf("reason %q", got)
	}
	want := []string{ids[0], ids[2], ids[3]}
	if got := sorted(loc.list("in")); !slices.Equal(got, want) {
		t.Errorf("in = %v, want %v", got, want)
	}
	for _, key := range []string{queue.FollowerPendingKey("f"), queue.FollowerAttemptsKey("f")} {
		if n := loc.rdb.Exists(ctx, key).Val(); n != 0 {
			t.Errorf("%s left behind", key)
		}
	}
}
