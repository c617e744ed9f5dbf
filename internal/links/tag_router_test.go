package links

import (
	"context"
	"slices"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

func TestTagRouter(t *testing.T) {
	srv := testenv.StartRedis(t)
	rdb := srv.Client()
	ctx := context.Background()
	const tagged = `{"uuid":"u1","attachments":[{"purpose":"tags","encoding":"json","body":"[\"urgent:yes\",\"team:sales\",\"lang:en\"]"}]}`
	tests := []struct {
		name string
		doc  string
		opts map[string]any
		halt bool
		want map[string][]string // list -> contents after the run
	}{
		{
			name: "route on tag name",
			doc:  tagged,
			opts: map[string]any{"tag_routes": map[string]any{"urgent": "urgent_list", "billing": "billing_list"}},
			want: map[string][]string{"urgent_list": {"u1"}, "billing_list": nil},
		},
		{
			name: "route on full name:value",
			doc:  tagged,
			opts: map[string]any{"tag_routes": map[string]any{"team:sales": "sales_list", "team:support": "support_list"}},
			want: map[string][]string{"sales_list": {"u1"}, "support_list": nil},
		},
		{
			name: "several lists, each pushed once",
			doc:  tagged,
			opts: map[string]any{"tag_routes": map[string]any{"urgent": []any{"a", "b"}, "lang": "a"}},
			want: map[string][]string{"a": {"u1"}, "b": {"u1"}},
		},
		{
			name: "legacy attachment with a list body",
			doc:  `{"uuid":"u2","attachments":[{"type":"tags","body":["urgent:1"]}]}`,
			opts: map[string]any{"tag_routes": map[string]any{"urgent": "urgent_list"}},
			want: map[string][]string{"urgent_list": {"u2"}},
		},
		{
			name: "no tags: nothing pushed, forwarded",
			doc:  `{"uuid":"u3"}`,
			opts: map[string]any{"tag_routes": map[string]any{"urgent": "urgent_list"}},
			want: map[string][]string{"urgent_list": nil},
		},
		{
			name: "forward_original false halts after routing",
			doc:  tagged,
			opts: map[string]any{"tag_routes": map[string]any{"urgent": "urgent_list"}, "forward_original": false},
			halt: true,
			want: map[string][]string{"urgent_list": {"u1"}},
		},
		{
			name: "forward_original false halts without a match too",
			doc:  `{"uuid":"u3"}`,
			opts: map[string]any{"tag_routes": map[string]any{"urgent": "urgent_list"}, "forward_original": false},
			halt: true,
			want: map[string][]string{"urgent_list": nil},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := rdb.FlushDB(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			l := mustNew(t, "links.tag_router", tc.opts, Deps{Redis: rdb})
			res := run(t, l, parseVCon(t, tc.doc))
			if res.Halt != tc.halt {
				t.Fatalf("Halt = %v, want %v", res.Halt, tc.halt)
			}
			for list, want := range tc.want {
				got, err := rdb.LRange(ctx, list, 0, -1).Result()
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
					t.Errorf("list %s = %q, want %q", list, got, want)
				}
			}
		})
	}
}

func TestTagRouterRedisDown(t *testing.T) {
	srv := testenv.StartRedis(t)
	rdb := srv.Client()
	l := mustNew(t, "links.tag_router", map[string]any{"tag_routes": map[string]any{"urgent": "urgent_list"}}, Deps{Redis: rdb})
	srv.Stop()
	v := parseVCon(t, `{"uuid":"u1","attachments":[{"purpose":"tags","encoding":"json","body":"[\"urgent:yes\"]"}]}`)
	if _, err := l.Run(context.Background(), v); err == nil {
		t.Fatal("Run succeeded with Redis stopped; the route would be lost silently")
	}
}

func TestTagRouterBadOptions(t *testing.T) {
	srv := testenv.StartRedis(t)
	deps := Deps{Redis: srv.Client()}
	checkBadOptions(t, "links.tag_router", deps, []badOptionCase{
		{name: "absent", opts: nil, want: `option "tag_routes": required`},
		{name: "not a map", opts: map[string]any{"tag_routes": []any{"a"}}, want: `option "tag_routes": want a map`},
		{name: "number target", opts: map[string]any{"tag_routes": map[string]any{"a": 5}}, want: `option "tag_routes"`},
		{name: "empty target", opts: map[string]any{"tag_routes": map[string]any{"a": ""}}, want: `route "a": empty list name`},
		{name: "bad forward_original", opts: map[string]any{"tag_routes": map[string]any{"a": "l"}, "forward_original": "no"}, want: `option "forward_original"`},
	})
	checkBadOptions(t, "links.tag_router", Deps{}, []badOptionCase{
		{name: "no redis", opts: map[string]any{"tag_routes": map[string]any{"a": "l"}}, want: "needs a Redis client"},
	})
}

// TestTagRouterTraceContext: a routed uuid carries the trace context, as an
// egress push does, so the chain that takes it continues the trace; without
// a span nothing but the uuid is written.
func TestTagRouterTraceContext(t *testing.T) {
	rdb := testenv.StartRedis(t).Client()
	l := mustNew(t, "links.tag_router", map[string]any{"tag_routes": map[string]any{"urgent": []any{"a", "b"}}}, Deps{Redis: rdb})
	doc := `{"uuid":"u1","attachments":[{"purpose":"tags","encoding":"json","body":"[\"urgent:yes\"]"}]}`
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:     trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8},
		TraceFlags: trace.FlagsSampled,
	})
	for _, tc := range []struct {
		name string
		ctx  context.Context
	}{
		{"untraced", context.Background()},
		{"traced", trace.ContextWithSpanContext(context.Background(), sc)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if err := rdb.FlushDB(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Run(tc.ctx, parseVCon(t, doc)); err != nil {
				t.Fatal(err)
			}
			want, traced := queue.TraceContextFrom(tc.ctx)
			for _, list := range []string{"a", "b"} {
				if got := rdb.LRange(ctx, list, 0, -1).Val(); !slices.Equal(got, []string{"u1"}) {
					t.Errorf("list %s = %q, want [u1]", list, got)
				}
				key := queue.ContextKey(list, "u1")
				records := rdb.LRange(ctx, key, 0, -1).Val()
				if !traced {
					if len(records) != 0 {
						t.Errorf("%s = %q without a span", key, records)
					}
					continue
				}
				if len(records) != 1 || records[0] != want.JSON() {
					t.Errorf("%s = %q, want [%s]", key, records, want.JSON())
				}
				if ttl := rdb.TTL(ctx, key).Val(); ttl <= 0 || ttl > queue.DefaultContextTTL {
					t.Errorf("%s TTL = %v, want at most %v", key, ttl, queue.DefaultContextTTL)
				}
			}
		})
	}
}
