package links

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

func parseVCon(t *testing.T, doc string) *vcon.VCon {
	t.Helper()
	v, err := vcon.Parse([]byte(doc))
	if err != nil {
		t.Fatalf("parse test vCon: %v", err)
	}
	return v
}

func mustNew(t *testing.T, module string, opts map[string]any, deps Deps) Link {
	t.Helper()
	l, err := New("test", module, opts, deps)
	if err != nil {
		t.Fatalf("New(%s): %v", module, err)
	}
	return l
}

func run(t *testing.T, l Link, v *vcon.VCon) Result {
	t.Helper()
	res, err := l.Run(context.Background(), v)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}

// continues reports whether res is Continue: no halt, no other uuid, no
// effects. (Result holds a slice, so it cannot be compared with ==.)
func continues(res Result) bool { return reflect.DeepEqual(res, Continue) }

// badOptionCase is a config a factory must refuse, with the text its error
// must contain (the key's name, so the user finds the line to fix).
type badOptionCase struct {
	name string
	opts map[string]any
	want string
}

func checkBadOptions(t *testing.T, module string, deps Deps, cases []badOptionCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := New("bad", module, tc.opts, deps)
			if err == nil {
				t.Fatalf("New accepted %v, built %T", tc.opts, l)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), `link "bad"`) {
				t.Fatalf("error %q does not name the link", err)
			}
		})
	}
}

func TestNewUnknownModuleListsKnown(t *testing.T) {
	_, err := New("x", "links.nope", nil, Deps{})
	if err == nil {
		t.Fatal("New accepted an unknown module")
	}
	for _, m := range []string{"links.nope", "links.tag", "links.tag_router", "links.jq_link", "links.sampler",
		"links.expire_vcon", "links.diet", "links.webhook"} {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error %q does not mention %s", err, m)
		}
	}
}

func TestOptionsDecoding(t *testing.T) {
	type decoded struct {
		n    float64
		i    int64
		b    bool
		list []string
		hdr  map[string]string
	}
	tests := []struct {
		name string
		opts options
		want decoded
		err  string
	}{
		{name: "defaults when absent", opts: nil, want: decoded{n: 1.5, i: 7, b: true}},
		{name: "json numbers", opts: options{"n": jsonNumber("2.5"), "i": jsonNumber("9")}, want: decoded{n: 2.5, i: 9, b: true}},
		{name: "yaml ints and floats", opts: options{"n": 3, "i": 4.0, "b": false}, want: decoded{n: 3, i: 4}},
		{name: "python style 0 for false", opts: options{"b": 0}, want: decoded{n: 1.5, i: 7}},
		{name: "list and headers", opts: options{"list": []any{"a", "b"}, "hdr": map[any]any{"X-N": 5, "X-S": "s"}},
			want: decoded{n: 1.5, i: 7, b: true, list: []string{"a", "b"}, hdr: map[string]string{"X-N": "5", "X-S": "s"}}},
		{name: "fractional integer", opts: options{"i": 1.5}, err: `option "i": want a whole number, got a number`},
		{name: "string number", opts: options{"n": "3"}, err: `option "n": want a number, got a string`},
		{name: "string bool", opts: options{"b": "yes"}, err: `option "b": want true or false, got a string`},
		{name: "list item", opts: options{"list": []any{"a", 1}}, err: `option "list": item 1: want a string, got a number`},
		{name: "header list value", opts: options{"hdr": map[string]any{"X": []any{}}}, err: `option "hdr": value of "X"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got decoded
			var err error
			if got.n, err = tc.opts.number("n", 1.5); err == nil {
				if got.i, err = tc.opts.integer("i", 7); err == nil {
					if got.b, err = tc.opts.boolean("b", true); err == nil {
						if got.list, err = tc.opts.strings("list"); err == nil {
							got.hdr, err = tc.opts.stringMap("hdr")
						}
					}
				}
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.n != tc.want.n || got.i != tc.want.i || got.b != tc.want.b ||
				strings.Join(got.list, ",") != strings.Join(tc.want.list, ",") || len(got.hdr) != len(tc.want.hdr) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for k, v := range tc.want.hdr {
				if got.hdr[k] != v {
					t.Fatalf("header %s = %q, want %q", k, got.hdr[k], v)
				}
			}
		})
	}
}

func jsonNumber(s string) any { return json.Number(s) }
