package links

import (
	"context"
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
