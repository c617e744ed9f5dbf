package links

import (
	"slices"
	"testing"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

func TestTag(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		tags []any
		want []string
	}{
		{
			name: "creates the attachment, plain tag becomes t:t",
			doc:  `{"uuid":"u1"}`,
			tags: []any{"reviewed", "team:sales"},
			want: []string{"reviewed:reviewed", "team:sales"},
		},
		{
			name: "appends to the conserver form",
			doc:  `{"uuid":"u1","attachments":[{"purpose":"tags","body":"[\"a:1\"]","encoding":"json"}]}`,
			tags: []any{"b:2"},
			want: []string{"a:1", "b:2"},
		},
		{
			name: "reads a legacy list body and does not duplicate",
			doc:  `{"uuid":"u1","attachments":[{"type":"tags","body":["a:1"]}]}`,
			tags: []any{"a:1", "c"},
			want: []string{"a:1", "c:c"},
		},
		{
			// conserver's add_tag(tag, tag) writes "team:sales:team:sales".
			name: "name:value written once",
			doc:  `{"uuid":"u1"}`,
			tags: []any{"team:sales"},
			want: []string{"team:sales"},
		},
		{
			// conserver's add_tag appends a tag that is already there.
			name: "a tag already there is not added again",
			doc:  `{"uuid":"u1","attachments":[{"purpose":"tags","body":"[\"team:sales\"]","encoding":"json"}]}`,
			tags: []any{"team:sales", "team:sales"},
			want: []string{"team:sales"},
		},
		{
			name: "value may hold colons",
			doc:  `{"uuid":"u1"}`,
			tags: []any{"url:http://x"},
			want: []string{"url:http://x"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := parseVCon(t, tc.doc)
			l := mustNew(t, "links.tag", map[string]any{"tags": tc.tags}, Deps{})
			if res := run(t, l, v); !continues(res) {
				t.Fatalf("result %+v, want Continue", res)
			}
			if got := vcon.Tags(v); !slices.Equal(got, tc.want) {
				t.Fatalf("tags %q, want %q", got, tc.want)
			}
			var n int
			for _, a := range v.List(vcon.Attachments) {
				if a["purpose"] == "tags" || a["type"] == "tags" {
					n++
					if _, isString := a["body"].(string); !isString || a["encoding"] != "json" {
						t.Fatalf("tags attachment not in conserver form: %v", a)
					}
				}
			}
			if n != 1 {
				t.Fatalf("%d tags attachments, want 1", n)
			}
		})
	}
}

func TestTagBadOptions(t *testing.T) {
	checkBadOptions(t, "links.tag", Deps{}, []badOptionCase{
		{name: "absent", opts: nil, want: `option "tags": required`},
		{name: "empty", opts: map[string]any{"tags": []any{}}, want: `option "tags": required`},
		{name: "not a list", opts: map[string]any{"tags": map[string]any{"a": "b"}}, want: `option "tags": want a list of strings, got a map`},
		{name: "item not a string", opts: map[string]any{"tags": []any{"a", 3}}, want: `option "tags": item 1`},
		{name: "no name", opts: map[string]any{"tags": []any{":x"}}, want: `option "tags": item 0: tag ":x" has no name`},
	})
}
