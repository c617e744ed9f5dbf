package api

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/queueops"
)

const u4 = "018e5a2c-6b1f-7c3a-9d4e-2f1a3b4c5d71"

// TestOpsRoutes: the routes kubectl vcon uses through the service proxy,
// on a real redis-server, with and without the token.
func TestOpsRoutes(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	// seedDLQ dead-letters u1 (timeout), u2 (jq error) and u3 (no reason)
	// on "work", and queues nothing else.
	seedDLQ := func(t *testing.T, h *harness) {
		t.Helper()
		if err := h.rdb.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		pipe := h.rdb.TxPipeline()
		queue.QueueDeadLetter(pipe, queue.Item{List: "work", UUID: u1}, queue.DLQReason{Reason: "timeout after 30s", At: at})
		queue.QueueDeadLetter(pipe, queue.Item{List: "work", UUID: u2}, queue.DLQReason{Reason: "link jq: jq: error", Step: "jq", At: at})
		pipe.RPush(ctx, queue.DLQKey("work"), u3)
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	h := newHarness(t, nil)
	tests := []struct {
		name, method, target, body string
		opts                       []reqOpt
		code                       int
		want                       string // JSON the answer must equal, when set
		wantIngress, wantDLQ       []string
	}{
		{name: "token required", method: "GET", target: "/api/ops/queues?ingress_list=work", opts: []reqOpt{noToken()}, code: 403, want: `{"detail":"Invalid API Key"}`},
		{name: "token required to purge", method: "POST", target: "/api/ops/dlq/purge?ingress_list=work", body: `["` + u1 + `"]`, opts: []reqOpt{noToken()}, code: 403, wantDLQ: []string{u1, u2, u3}},
		{name: "queues", method: "GET", target: "/api/ops/queues?ingress_list=work&egress_list=out", code: 200,
			want: `{"ingress":0,"inFlight":0,"retry":0,"dlq":3,"egress":0,"lists":[{"kind":"ingress","key":"work","length":0},{"kind":"retry","key":"vcon-operator:retry:{work}:work","length":0},{"kind":"dlq","key":"DLQ:work","length":3},{"kind":"egress","key":"out","length":0}]}`},
		{name: "queues needs a list", method: "GET", target: "/api/ops/queues", code: 422},
		{name: "queues refuses a bad list", method: "GET", target: "/api/ops/queues?ingress_list=vcon:x", code: 422},
		{name: "replay by reason", method: "POST", target: "/api/ops/dlq/replay?ingress_list=work&reason=jq:", code: 200, want: `{"moved":1}`, wantIngress: []string{u2}, wantDLQ: []string{u1, u3}},
		{name: "replay all", method: "POST", target: "/api/ops/dlq/replay?ingress_list=work", code: 200, want: `{"moved":3}`, wantIngress: []string{u1, u2, u3}},
		{name: "replay count", method: "POST", target: "/api/ops/dlq/replay?ingress_list=work&count=1", code: 200, want: `{"moved":1}`, wantIngress: []string{u1}, wantDLQ: []string{u2, u3}},
		{name: "replay bad count", method: "POST", target: "/api/ops/dlq/replay?ingress_list=work&count=-1", code: 422, wantDLQ: []string{u1, u2, u3}},
		{name: "purge named", method: "POST", target: "/api/ops/dlq/purge?ingress_list=work", body: `["` + u1 + `","` + u3 + `"]`, code: 200, want: `{"purged":2}`, wantDLQ: []string{u2}},
		{name: "purge not an array", method: "POST", target: "/api/ops/dlq/purge?ingress_list=work", body: `{"a":1}`, code: 422, wantDLQ: []string{u1, u2, u3}},
		{name: "purge bad entry", method: "POST", target: "/api/ops/dlq/purge?ingress_list=work", body: `["a b"]`, code: 422, wantDLQ: []string{u1, u2, u3}},
		{name: "vcon nowhere", method: "GET", target: "/api/ops/vcon/" + u4 + "?ingress_list=work", code: 200, want: `{"uuid":"` + u4 + `","places":[]}`},
		{name: "vcon bad uuid", method: "GET", target: "/api/ops/vcon/nope?ingress_list=work", code: 422},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seedDLQ(t, h)
			rec := h.doJSON(tc.method, tc.target, tc.body, tc.opts...)
			mustStatus(t, rec, tc.code)
			if tc.want != "" && strings.TrimSpace(rec.Body.String()) != tc.want {
				t.Errorf("body\n%s\nwant\n%s", rec.Body.String(), tc.want)
			}
			if tc.code >= 300 && tc.code != 422 && tc.code != 403 {
				return
			}
			if got := h.rdb.LRange(ctx, "work", 0, -1).Val(); !slices.Equal(got, tc.wantIngress) && len(got)+len(tc.wantIngress) > 0 {
				t.Errorf("ingress %v, want %v", got, tc.wantIngress)
			}
			wantDLQ := tc.wantDLQ
			if wantDLQ == nil && tc.wantIngress == nil {
				wantDLQ = []string{u1, u2, u3}
			}
			if got := h.rdb.LRange(ctx, queue.DLQKey("work"), 0, -1).Val(); !slices.Equal(got, wantDLQ) && len(got)+len(wantDLQ) > 0 {
				t.Errorf("DLQ %v, want %v", got, wantDLQ)
			}
		})
	}

	t.Run("vcon found with its body and record", func(t *testing.T) {
		seedDLQ(t, h)
		rec := h.doJSON("GET", "/api/ops/vcon/"+u1+"?ingress_list=work", "")
		mustStatus(t, rec, 200)
		v := decode[queueops.Vcon](t, rec)
		if len(v.Places) != 1 || v.Places[0].Kind != queue.KindDLQ || v.DeadLetters["work"].Reason != "timeout after 30s" || v.Body != nil {
			t.Errorf("got %s", rec.Body.String())
		}
		mustStatus(t, h.doJSON("POST", "/api/vcon?ingress_lists=work", testVcon(u4)), 201)
		v = decode[queueops.Vcon](t, h.doJSON("GET", "/api/ops/vcon/"+u4+"?ingress_list=work", ""))
		var body map[string]any
		if err := json.Unmarshal(v.Body, &body); err != nil || body["uuid"] != u4 {
			t.Errorf("body %s: %v", v.Body, err)
		}
		if len(v.Places) != 1 || v.Places[0].Kind != queue.KindIngress || v.BodyTTLSeconds == nil {
			t.Errorf("places %+v ttl %v", v.Places, v.BodyTTLSeconds)
		}
	})
}
