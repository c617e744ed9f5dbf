package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestInterpolation(t *testing.T) {
	env := envOf(map[string]string{
		"KEY":    "sk-123",
		"EMPTY":  "",
		"TRICKY": "a\"b: c\n- d\n'e' #f",
		"HOST":   "db",
	})
	for _, tc := range []struct {
		name    string
		value   string // YAML for options.v of link l
		want    any
		wantErr string
	}{
		{name: "set", value: "${KEY}", want: "sk-123"},
		{name: "set inside text", value: "Bearer ${KEY}!", want: "Bearer sk-123!"},
		{name: "two references", value: "${HOST}:${PORT:-5432}", want: "db:5432"},
		{name: "unset with default", value: "${MISSING:-fallback}", want: "fallback"},
		{name: "empty default", value: "${MISSING:-}", want: ""},
		{name: "empty value takes the default", value: "${EMPTY:-fallback}", want: "fallback"},
		{name: "empty value without default", value: "${EMPTY}", want: ""},
		{name: "escape", value: "$${KEY}", want: "${KEY}"},
		{name: "escape beside a reference", value: "$${KEY}=${KEY}", want: "${KEY}=sk-123"},
		{name: "lone dollar", value: "cost $5 and $KEY", want: "cost $5 and $KEY"},
		{name: "quotes and newlines stay one string", value: "${TRICKY}", want: "a\"b: c\n- d\n'e' #f"},
		{name: "exactly a reference to digits stays a string", value: "${PORT:-5432}", want: "5432"},
		{name: "reference to true stays a string", value: "${FLAG:-true}", want: "true"},
		{name: "in a list", value: "[x, '${KEY}', ['${HOST}']]", want: []any{"x", "sk-123", []any{"db"}}},
		{name: "in a nested map", value: "{a: {b: '${KEY}'}, n: 1}", want: map[string]any{"a": map[string]any{"b": "sk-123"}, "n": int64(1)}},
		{name: "keys are not interpolated", value: "{'${KEY}': 1}", want: map[string]any{"${KEY}": int64(1)}},
		{name: "unset without default", value: "${OPENAI_API_KEY}",
			wantErr: "links.l.options.v: environment variable OPENAI_API_KEY is not set"},
		{name: "unset in a list names the index", value: "[ok, '${NOPE}']",
			wantErr: "links.l.options.v[1]: environment variable NOPE is not set"},
		{name: "unclosed", value: "'pa$${ss ${KEY'", wantErr: "links.l.options.v: a ${ is not closed"},
		{name: "bad name", value: "'${1KEY}'", wantErr: "malformed ${...} reference"},
		{name: "empty name", value: "'${}'", wantErr: "malformed ${...} reference"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := "links:\n  l:\n    module: links.tag\n    options:\n      v: " + tc.value + "\n"
			c, err := Parse([]byte(doc), env)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "sk-123") {
					t.Errorf("error leaks a variable's value: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := c.Links["l"].Options["v"]; !reflect.DeepEqual(got, tc.want) {
				t.Errorf("v = %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestInterpolationEverywhere(t *testing.T) {
	doc := `
links:
  l: {module: "${LINK_MODULE}"}
chains:
  c:
    links: [l]
    ingress_lists: ["${INGRESS:-default}"]
    timeout: ${TIMEOUT}
followers:
  f: {url: "${UPSTREAM}", auth_token: "${UPSTREAM_TOKEN}", pulling_interval: "${PULL}"}
`
	c, err := Parse([]byte(doc), envOf(map[string]string{"LINK_MODULE": "links.tag", "TIMEOUT": "30", "UPSTREAM": "http://u", "UPSTREAM_TOKEN": "tok", "PULL": "15"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Links["l"].Module != "links.tag" || c.Chains["c"].IngressLists[0] != "default" ||
		c.Chains["c"].Timeout.Seconds() != 30 || !reflect.DeepEqual(c.Followers["f"], Follower{URL: "http://u", AuthToken: "tok", PullingInterval: 15 * time.Second}) {
		t.Errorf("references not resolved everywhere: %#v", c)
	}
}

func TestErrorsAreAllReported(t *testing.T) {
	doc := "links:\n  a: {module: links.tag, options: {k: '${A}'}}\n  b: {module: links.tag, options: {k: '${B}'}}\n"
	_, err := Parse([]byte(doc), envOf(nil))
	for _, want := range []string{"links.a.options.k: environment variable A", "links.b.options.k: environment variable B"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to contain %q", err, want)
		}
	}
}

func TestNilLookupChecksButKeepsReferences(t *testing.T) {
	c, err := Parse([]byte("links:\n  l: {module: links.tag, options: {k: 'x ${A} $${B} ${C:-d}'}}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Links["l"].Options["k"]; got != "x ${A} $${B} ${C:-d}" {
		t.Errorf("k = %q", got)
	}
	if _, err := Parse([]byte("links:\n  l: {module: links.tag, options: {k: '${A'}}\n"), nil); err == nil {
		t.Error("a malformed reference must fail even without lookup")
	}
}

func TestAliasesAndMergeKeys(t *testing.T) {
	doc := `
x-common: &common
  model: gpt-4o
  temperature: 0
links:
  a:
    module: links.analyze
    options:
      <<: *common
      temperature: 0.5
  b:
    module: links.analyze
    options: *common
`
	c, err := Parse([]byte(doc), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Links["a"].Options, (map[string]any{"model": "gpt-4o", "temperature": 0.5}); !reflect.DeepEqual(got, want) {
		t.Errorf("a options = %#v, want %#v", got, want)
	}
	if got, want := c.Links["b"].Options, (map[string]any{"model": "gpt-4o", "temperature": int64(0)}); !reflect.DeepEqual(got, want) {
		t.Errorf("b options = %#v, want %#v", got, want)
	}
}

func TestAliasBombIsRefused(t *testing.T) {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 8; i++ {
		b.WriteString("a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [")
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	_, err := Parse([]byte(b.String()), nil)
	if err == nil {
		t.Fatal("want an error for a document expanding to 10^8 nodes")
	}
	if !strings.Contains(err.Error(), "expands to more than") && !strings.Contains(err.Error(), "excessive aliasing") {
		t.Errorf("err = %v", err)
	}
}
