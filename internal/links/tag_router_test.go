package links

import (
	"context"
	"slices"
	"testing"

	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

// TestTagRouter: the router returns the lists to push the uuid to, each
// once, and pushes nothing itself (the pipeline does, in the outcome).
func TestTagRouter(t *testing.T) {
	srv := testenv.StartRedis(t)
	rdb := srv.Client()
	ctx := context.Background()
	const tagged = `{"uuid":"u1","attachments":[{"purpose":"tags","encoding":"json","body":"[\"urgent:yes\",\"team:sales\",\"lang:en\"]"}]}`
	tests := []struct {
		name   string
		doc    string
		opts   map[string]any
		halt   bool
		routes []string
	}{
		{
			name:   "route on tag name",
			doc:    tagged,
			opts:   map[string]any{"tag_routes": map[string]any{"urgent": "urgent_list", "billing": "billing_list"}},
			routes: []string{"urgent_list"},
		},
		{
			name:   "route on full name:value",
			doc:    tagged,
			opts:   map[string]any{"tag_routes": map[string]any{"team:sales": "sales_list", "team:support": "support_list"}},
			routes: []string{"sales_list"},
		},
		{
			name:   "several lists, each named once, in tag order",
			doc:    tagged,
			opts:   map[string]any{"tag_routes": map[string]any{"urgent": []any{"a", "b"}, "lang": "a"}},
			routes: []string{"a", "b"},
		},
		{
			name:   "legacy attachment with a list body",
			doc:    `{"uuid":"u2","attachments":[{"type":"tags","body":["urgent:1"]}]}`,
			opts:   map[string]any{"tag_routes": map[string]any{"urgent": "urgent_list"}},
			routes: []string{"urgent_list"},
		},
		{
			// conserver skips a tag without a colon.
			name:   "bare tag routes on itself",
			doc:    `{"uuid":"u7","attachments":[{"purpose":"tags","body":["vip"]}]}`,
			opts:   map[string]any{"tag_routes": map[string]any{"vip": "vip_list"}},
			routes: []string{"vip_list"},
		},
		{
			// conserver's router reads the keys of an object body as tag names.
			name:   "object body: its keys are the tags",
			doc:    `{"uuid":"u4","attachments":[{"purpose":"tags","encoding":"json","body":"{\"urgent\":\"yes\",\"vip\":true}"}]}`,
			opts:   map[string]any{"tag_routes": map[string]any{"urgent": "urgent_list", "vip": "vip_list"}},
			routes: []string{"urgent_list", "vip_list"},
		},
		{
			name:   "object body not yet encoded",
			doc:    `{"uuid":"u5","attachments":[{"type":"tags","body":{"urgent":1}}]}`,
			opts:   map[string]any{"tag_routes": map[string]any{"urgent": "urgent_list"}},
			routes: []string{"urgent_list"},
		},
		{
			// conserver pushes once per matching tag: twice here.
			name:   "two tags to one list: pushed once",
			doc:    `{"uuid":"u6","attachments":[{"purpose":"tags","body":["urgent:yes","urgent:again"]}]}`,
			opts:   map[string]any{"tag_routes": map[string]any{"urgent": "urgent_list"}},
			routes: []string{"urgent_list"},
		},
		{
			name: "no tags: no route, forwarded",
			doc:  `{"uuid":"u3"}`,
			opts: map[string]any{"tag_routes": map[string]any{"urgent": "urgent_list"}},
		},
		{
			name:   "forward_original false halts after routing",
			doc:    tagged,
			opts:   map[string]any{"tag_routes": map[string]any{"urgent": "urgent_list"}, "forward_original": false},
			halt:   true,
			routes: []string{"urgent_list"},
		},
		{
			name: "forward_original false halts without a match too",
			doc:  `{"uuid":"u3"}`,
			opts: map[string]any{"tag_routes": map[string]any{"urgent": "urgent_list"}, "forward_original": false},
			halt: true,
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
			if !slices.Equal(res.Routes, tc.routes) {
				t.Errorf("Routes = %q, want %q", res.Routes, tc.routes)
			}
			if res.NextUUID != "" || res.TTL != 0 {
				t.Errorf("result %+v sets more than Halt and Routes", res)
			}
			if keys := rdb.Keys(ctx, "*").Val(); len(keys) != 0 {
				t.Errorf("Run wrote to Redis: %q", keys)
			}
		})
	}
}

func TestTagRouterBadOptions(t *testing.T) {
	srv := testenv.StartRedis(t)
	deps := Deps{Redis: srv.Client()}
	checkBadOptions(t, "links.tag_router", deps, []badOptionCase{
		{name: "absent", opts: nil, want: `option "tag_routes": required`},
		{name: "not a map", opts: map[string]any{"tag_routes": []any{"a"}}, want: `option "tag_routes": want a map`},
		{name: "number target", opts: map[string]any{"tag_routes": map[string]any{"a": 5}}, want: `option "tag_routes.a": want a list of strings, got 5`},
		{name: "empty target", opts: map[string]any{"tag_routes": map[string]any{"a": ""}}, want: `option "tag_routes.a": empty list name`},
		{name: "bad forward_original", opts: map[string]any{"tag_routes": map[string]any{"a": "l"}, "forward_original": "no"}, want: `option "forward_original"`},
	})
	checkBadOptions(t, "links.tag_router", Deps{}, []badOptionCase{})
}
