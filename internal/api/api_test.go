package api

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/apiwire"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/version"
)

const (
	u1 = "018e5a2c-6b1f-7c3a-9d4e-2f1a3b4c5d6e"
	u2 = "018e5a2c-6b1f-7c3a-9d4e-2f1a3b4c5d6f"
	u3 = "018e5a2c-6b1f-7c3a-9d4e-2f1a3b4c5d70"
)

func TestPostVconWritesConserverDataModel(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	rec := h.doJSON("POST", "/api/vcon?ingress_lists=a&ingress_lists=b", testVcon(strings.ToUpper(u1)))
	mustStatus(t, rec, http.StatusCreated)
	got := decode[map[string]any](t, rec)
	if got["uuid"] != u1 {
		t.Errorf("answered uuid %v, want lower-cased %s", got["uuid"], u1)
	}
	if _, ok := got["x_custom"]; !ok {
		t.Error("unknown field x_custom was dropped")
	}
	stored, err := h.rdb.Get(ctx, "vcon:"+u1).Result()
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	if stored != rec.Body.String() {
		t.Errorf("stored body differs from the answer")
	}
	if ttl := h.rdb.TTL(ctx, "vcon:"+u1).Val(); ttl <= 3500*time.Second || ttl > 3600*time.Second {
		t.Errorf("body TTL %v, want VCON_REDIS_EXPIRY 3600s", ttl)
	}
	score, err := h.rdb.ZScore(ctx, "vcons", "vcon:"+u1).Result()
	if err != nil || score != 1705314600 {
		t.Errorf("vcons score %v (%v), want 1705314600", score, err)
	}
	for _, k := range []string{"tel:+15551234567", "name:Alice", "mailto:bob@example.com"} {
		if !h.rdb.SIsMember(ctx, k, u1).Val() {
			t.Errorf("%s lacks %s", k, u1)
		}
		if ttl := h.rdb.TTL(ctx, k).Val(); ttl <= 86000*time.Second {
			t.Errorf("%s TTL %v, want VCON_INDEX_EXPIRY", k, ttl)
		}
	}
	for _, l := range []string{"a", "b"} {
		if items := h.rdb.LRange(ctx, l, 0, -1).Val(); len(items) != 1 || items[0] != u1 {
			t.Errorf("list %s = %v, want [%s]", l, items, u1)
		}
		// No span is recorded without a tracer provider, and conserver
		// writes the context only when one exists.
		if n := h.rdb.Exists(ctx, queue.ContextKey(l, u1)).Val(); n != 0 {
			t.Errorf("context written without a span")
		}
	}
}

func TestPostVconFillsWhatConserverReadersIndexInto(t *testing.T) {
	h := newHarness(t, nil)
	rec := h.doJSON("POST", "/api/vcon", `{"vcon":"0.0.1","uuid":"`+u1+`","created_at":"2024-01-15T10:30:00+00:00"}`)
	mustStatus(t, rec, http.StatusCreated)
	got := decode[map[string]any](t, rec)
	for _, k := range []string{"parties", "dialog", "analysis", "attachments"} {
		if arr, ok := got[k].([]any); !ok || len(arr) != 0 {
			t.Errorf("%s = %v, want []", k, got[k])
		}
	}
}

// seed stores vCons through the API.
func (h *harness) seed(uuids ...string) {
	h.t.Helper()
	for _, u := range uuids {
		mustStatus(h.t, h.doJSON("POST", "/api/vcon", testVcon(u)), http.StatusCreated)
	}
}

func TestEndpoints(t *testing.T) {
	type check func(t *testing.T, h *harness, body string)
	jsonEq := func(want string) check {
		return func(t *testing.T, _ *harness, body string) {
			var a, b any
			if err := json.Unmarshal([]byte(body), &a); err != nil {
				t.Fatalf("answer %q: %v", body, err)
			}
			_ = json.Unmarshal([]byte(want), &b)
			aj, _ := json.Marshal(a)
			bj, _ := json.Marshal(b)
			if string(aj) != string(bj) {
				t.Errorf("answer %s, want %s", aj, bj)
			}
		}
	}
	contains := func(sub string) check {
		return func(t *testing.T, _ *harness, body string) {
			if !strings.Contains(body, sub) {
				t.Errorf("answer %s lacks %s", body, sub)
			}
		}
	}
	ctx := context.Background()
	cases := []struct {
		name   string
		setup  func(h *harness)
		method string
		target string
		body   string
		opts   []reqOpt
		code   int
		check  check
	}{
		{name: "version", method: "GET", target: "/api/version", opts: []reqOpt{noToken()}, code: 200,
			check: jsonEq(`{"version":"` + version.Version + `","git_commit":"` + version.GitCommit + `","build_time":"` + version.BuildTime + `"}`)},
		{name: "health", method: "GET", target: "/api/health", opts: []reqOpt{noToken()}, code: 200, check: contains(`"status":"healthy"`)},
		{name: "queue depth", setup: func(h *harness) { h.rdb.RPush(ctx, "default", "x", "y") },
			method: "GET", target: "/api/stats/queue?list_name=default", opts: []reqOpt{noToken()}, code: 200,
			check: jsonEq(`{"list_name":"default","depth":2}`)},
		{name: "queue depth needs list_name", method: "GET", target: "/api/stats/queue", code: 422, check: contains(`"loc":["query","list_name"]`)},
		{name: "get vcon", setup: func(h *harness) { h.seed(u1) }, method: "GET", target: "/api/vcon/" + u1, code: 200, check: contains(`"uuid":"` + u1 + `"`)},
		{name: "get vcon upper-case uuid", setup: func(h *harness) { h.seed(u1) }, method: "GET", target: "/api/vcon/" + strings.ToUpper(u1), code: 200, check: contains(u1)},
		{name: "get vcon missing", method: "GET", target: "/api/vcon/" + u1, code: 404, check: jsonEq(`{"detail":"vCon not found"}`)},
		{name: "get vcon not a uuid", method: "GET", target: "/api/vcon/nope", code: 422, check: contains(`"path","vcon_uuid"`)},
		{name: "list newest first", setup: func(h *harness) {
			h.seed(u1, u2)
			h.rdb.ZAdd(ctx, "vcons", redis.Z{Score: 1705314700, Member: "vcon:" + u2})
		}, method: "GET", target: "/api/vcon", code: 200, check: jsonEq(`["` + u2 + `","` + u1 + `"]`)},
		{name: "list paged", setup: func(h *harness) {
			h.seed(u1, u2)
			h.rdb.ZAdd(ctx, "vcons", redis.Z{Score: 1705314700, Member: "vcon:" + u2})
		}, method: "GET", target: "/api/vcon?page=2&size=1", code: 200, check: jsonEq(`["` + u1 + `"]`)},
		{name: "list since/until inclusive, ISO and epoch", setup: func(h *harness) {
			h.seed(u1, u2, u3)
			h.rdb.ZAdd(ctx, "vcons", redis.Z{Score: 1705314700, Member: "vcon:" + u2}, redis.Z{Score: 1705314800, Member: u3})
		}, method: "GET", target: "/api/vcon?since=1705314700&until=2024-01-15T10:33:20Z", code: 200,
			check: jsonEq(`["` + u3 + `","` + u2 + `"]`)},
		{name: "list bad page", method: "GET", target: "/api/vcon?page=0", code: 422, check: contains(`"query","page"`)},
		{name: "list size over max", method: "GET", target: "/api/vcon?size=1000000", code: 422, check: contains(`less_than_equal`)},
		{name: "list bad since", method: "GET", target: "/api/vcon?since=yesterday", code: 422, check: contains(`"query","since"`)},
		{name: "multi get with a miss", setup: func(h *harness) { h.seed(u1) },
			method: "GET", target: "/api/vcons?vcon_uuids=" + u1 + "&vcon_uuids=" + u2, code: 200,
			check: func(t *testing.T, _ *harness, body string) {
				var got []map[string]any
				if err := json.Unmarshal([]byte(body), &got); err != nil || len(got) != 2 || got[0]["uuid"] != u1 || got[1] != nil {
					t.Errorf("answer %s", body)
				}
			}},
		{name: "multi get bad uuid", method: "GET", target: "/api/vcons?vcon_uuids=x", code: 422, check: contains(`"query","vcon_uuids",0`)},
		{name: "search by tel", setup: func(h *harness) { h.seed(u1) }, method: "GET", target: "/api/vcons/search?tel=%2B15551234567", code: 200, check: jsonEq(`["` + u1 + `"]`)},
		{name: "search is a true AND", setup: func(h *harness) {
			h.seed(u1, u2)
			h.rdb.SRem(ctx, "mailto:bob@example.com", u2)
		}, method: "GET", target: "/api/vcons/search?tel=%2B15551234567&mailto=bob@example.com", code: 200, check: jsonEq(`["` + u1 + `"]`)},
		{name: "search AND with an empty set matches nothing", setup: func(h *harness) { h.seed(u1) },
			method: "GET", target: "/api/vcons/search?name=Alice&mailto=nobody@example.com", code: 200, check: jsonEq(`[]`)},
		{name: "search without terms", method: "GET", target: "/api/vcons/search", code: 400,
			check: jsonEq(`{"detail":"At least one search parameter must be provided"}`)},
		{name: "delete", setup: func(h *harness) { h.seed(u1) }, method: "DELETE", target: "/api/vcon/" + u1, code: 204,
			check: func(t *testing.T, h *harness, _ string) {
				for _, k := range []string{"vcon:" + u1, "tel:+15551234567", "name:Alice", "mailto:bob@example.com"} {
					if h.rdb.Exists(ctx, k).Val() != 0 {
						t.Errorf("%s survives the delete", k)
					}
				}
				if h.rdb.ZCard(ctx, "vcons").Val() != 0 {
					t.Error("vcons keeps the deleted vCon")
				}
			}},
		{name: "delete missing", method: "DELETE", target: "/api/vcon/" + u1, code: 204},
		{name: "ingress skips unknown uuids", setup: func(h *harness) { h.seed(u1) },
			method: "POST", target: "/api/vcon/ingress?ingress_list=work", body: `["` + u1 + `","` + u2 + `"]`, code: 204,
			check: func(t *testing.T, h *harness, _ string) {
				if got := h.rdb.LRange(ctx, "work", 0, -1).Val(); len(got) != 1 || got[0] != u1 {
					t.Errorf("work = %v", got)
				}
			}},
		{name: "ingress bad uuid", method: "POST", target: "/api/vcon/ingress?ingress_list=work", body: `["` + u1 + `","../x"]`, code: 422, check: contains(`"body",1`)},
		{name: "ingress not an array", method: "POST", target: "/api/vcon/ingress?ingress_list=work", body: `{"a":1}`, code: 422},
		{name: "egress pops newest first", setup: func(h *harness) { h.rdb.RPush(ctx, "out", u1, u2, u3) },
			method: "GET", target: "/api/vcon/egress?egress_list=out&limit=2", code: 200, check: jsonEq(`["` + u3 + `","` + u2 + `"]`)},
		{name: "egress default one", setup: func(h *harness) { h.rdb.RPush(ctx, "out", u1, u2) },
			method: "GET", target: "/api/vcon/egress?egress_list=out", code: 200, check: jsonEq(`["` + u2 + `"]`)},
		{name: "egress empty", method: "GET", target: "/api/vcon/egress?egress_list=out&limit=5", code: 200, check: jsonEq(`[]`)},
		{name: "egress negative limit", method: "GET", target: "/api/vcon/egress?egress_list=out&limit=-1", code: 422},
		{name: "egress huge limit", method: "GET", target: "/api/vcon/egress?egress_list=out&limit=99999999", code: 422},
		{name: "count", setup: func(h *harness) { h.rdb.RPush(ctx, "out", u1, u2) }, method: "GET", target: "/api/vcon/count?egress_list=out", code: 200, check: jsonEq(`2`)},
		{name: "dlq", setup: func(h *harness) { h.rdb.RPush(ctx, "DLQ:work", u1, u2) }, method: "GET", target: "/api/dlq?ingress_list=work", code: 200,
			check: jsonEq(`["` + u1 + `","` + u2 + `"]`)},
		{name: "dlq with reasons", setup: func(h *harness) {
			pipe := h.rdb.TxPipeline()
			queue.QueueDeadLetter(pipe, queue.Item{List: "work", UUID: u1}, queue.DLQReason{Reason: "boom", Chain: "c", Step: "tag", At: time.Unix(1700000000, 0).UTC()})
			_, _ = pipe.Exec(ctx)
			h.rdb.RPush(ctx, "DLQ:work", u2)
		}, method: "GET", target: "/api/dlq?ingress_list=work&with_reasons=true", code: 200,
			check: jsonEq(`[{"uuid":"` + u1 + `","reason":"boom","chain":"c","step":"tag","at":"2023-11-14T22:13:20Z"},{"uuid":"` + u2 + `"}]`)},
		{name: "reprocess", setup: func(h *harness) { h.rdb.RPush(ctx, "DLQ:work", u1, u2, u3) },
			method: "POST", target: "/api/dlq/reprocess?ingress_list=work&count=2", code: 200, check: func(t *testing.T, h *harness, body string) {
				if body != "2" {
					t.Errorf("answer %s, want 2", body)
				}
				if got := h.rdb.LRange(ctx, "work", 0, -1).Val(); strings.Join(got, ",") != u1+","+u2 {
					t.Errorf("work = %v", got)
				}
			}},
		{name: "reprocess count zero", method: "POST", target: "/api/dlq/reprocess?ingress_list=work&count=0", code: 422},
		{name: "reprocess count over max", method: "POST", target: "/api/dlq/reprocess?ingress_list=work&count=100001", code: 422},
		{name: "index rebuild", setup: func(h *harness) {
			h.seed(u1, u2)
			h.rdb.Del(ctx, "vcons", "tel:+15551234567")
		}, method: "GET", target: "/api/index_vcons", code: 200, check: func(t *testing.T, h *harness, body string) {
			if body != "2" || h.rdb.ZCard(ctx, "vcons").Val() != 2 || h.rdb.SCard(ctx, "tel:+15551234567").Val() != 2 {
				t.Errorf("answer %s, index not rebuilt", body)
			}
		}},
		{name: "config without file", method: "GET", target: "/api/config", code: 200, check: jsonEq(`{}`)},
		{name: "config write disabled", method: "POST", target: "/api/config", body: `{"chains":{}}`, code: 403},
		{name: "unknown path", method: "GET", target: "/api/nope", code: 404, check: jsonEq(`{"detail":"Not Found"}`)},
		{name: "wrong method", method: "PUT", target: "/api/vcon", code: 405, check: jsonEq(`{"detail":"Method Not Allowed"}`)},
		{name: "auth required", method: "GET", target: "/api/vcon", opts: []reqOpt{noToken()}, code: 403, check: jsonEq(`{"detail":"Invalid API Key"}`)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			if tc.setup != nil {
				tc.setup(h)
			}
			rec := h.doJSON(tc.method, tc.target, tc.body, tc.opts...)
			mustStatus(t, rec, tc.code)
			for _, hd := range []string{HeaderVersion, HeaderCommit} {
				if rec.Header().Get(hd) == "" {
					t.Errorf("missing %s", hd)
				}
			}
			if tc.check != nil {
				tc.check(t, h, rec.Body.String())
			}
		})
	}
}

func TestAuth(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tokens")
	if err := os.WriteFile(file, []byte("\nfile-token-1\r\n\n  file-token-2  \n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := LoadTokens("env-token", file)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(tokens, ",") != "env-token,file-token-1,file-token-2" {
		t.Fatalf("tokens %q: blank lines must be ignored", tokens)
	}
	h := newHarness(t, func(o *Options) { o.Tokens = tokens; o.HeaderName = "x-api-key" })
	cases := []struct {
		name string
		opts []reqOpt
		code int
	}{
		{"env token", []reqOpt{withHeader("x-api-key", "env-token")}, 200},
		{"file token", []reqOpt{withHeader("x-api-key", "file-token-2")}, 200},
		{"missing", nil, 403},
		{"empty", []reqOpt{withHeader("x-api-key", "")}, 403},
		{"wrong", []reqOpt{withHeader("x-api-key", "env-token2")}, 403},
		{"prefix of a token", []reqOpt{withHeader("x-api-key", "env-toke")}, 403},
		{"default header name is not used", []reqOpt{withHeader(apiwire.DefaultHeaderName, "env-token")}, 403},
		{"duplicate header", []reqOpt{withHeader("x-api-key", "env-token"), withHeader("x-api-key", "env-token")}, 403},
		{"oversized", []reqOpt{withHeader("x-api-key", strings.Repeat("A", 1<<20))}, 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := h.doJSON("GET", "/api/vcon", "", append([]reqOpt{noToken()}, tc.opts...)...)
			mustStatus(t, rec, tc.code)
			if tc.code == 403 && rec.Body.String() != `{"detail":"Invalid API Key"}` {
				t.Errorf("body %s", rec.Body.String())
			}
		})
	}

	t.Run("refuses to start without a token", func(t *testing.T) {
		r := redis.NewClient(&redis.Options{Addr: h.redis.Addr})
		defer r.Close()
		if _, err := New(r, Options{}); err != ErrNoToken {
			t.Fatalf("New without token: %v, want ErrNoToken", err)
		}
		srv, err := New(r, Options{InsecureNoAuth: true})
		if err != nil {
			t.Fatalf("New with InsecureNoAuth: %v", err)
		}
		rec := httptestDo(srv, "GET", "/api/vcon")
		mustStatus(t, rec, 200)
	})
}

func TestHealthReportsRedis(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.HealthTimeout = 500 * time.Millisecond })
	mustStatus(t, h.doJSON("GET", "/api/health", "", noToken()), 200)
	h.redis.Stop()
	rec := h.doJSON("GET", "/api/health", "", noToken())
	mustStatus(t, rec, http.StatusServiceUnavailable)
	got := decode[map[string]any](t, rec)
	if got["status"] != "unhealthy" || !strings.HasPrefix(got["reason"].(string), "redis: ") {
		t.Errorf("answer %s", rec.Body.String())
	}
	h.redis.Start()
	waitFor(t, "healthy again", func() bool { return h.doJSON("GET", "/api/health", "").Code == 200 })
}

func TestMetricsUseRouteTemplates(t *testing.T) {
	h := newHarness(t, nil)
	h.doJSON("GET", "/api/vcon/"+u1, "")
	h.doJSON("GET", "/api/vcon/"+u2, "")
	h.doJSON("GET", "/no/such/"+u3, "")
	rec := h.doJSON("GET", "/metrics", "", noToken())
	mustStatus(t, rec, 200)
	body := rec.Body.String()
	for _, want := range []string{
		`vcon_api_requests_total{code="404",method="GET",route="/api/vcon/{uuid}"} 2`,
		`vcon_api_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`vcon_api_request_duration_seconds_count{method="GET",route="/api/vcon/{uuid}"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, u := range []string{u1, u2, u3} {
		if strings.Contains(body, u) {
			t.Errorf("/metrics carries the raw path %s", u)
		}
	}
}
