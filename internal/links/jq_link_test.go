package links

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const jqDoc = `{
  "uuid": "0190e3c2-0000-7000-8000-000000000001",
  "vcon": "0.0.1",
  "parties": [{"name": "Alice Secretname", "tel": "+15551234567"}],
  "dialog": [{"type": "recording", "duration": 120, "mimetype": "audio/wav"}, {"type": "text", "duration": 30.5}],
  "analysis": [{"type": "sentiment", "dialog": 0, "body": {"sentiment": "positive", "score": 0.9}}],
  "attachments": [{"type": "tags", "body": ["priority:high"]}]
}`

func TestJQTruthiness(t *testing.T) {
	t.Setenv("JQ_TEST_SECRET", "hunter2")
	tests := []struct {
		filter  string
		match   bool
		wantErr string // when set, Run must fail with this text
	}{
		{filter: `.uuid`, match: true},
		{filter: `.missing`, match: false},
		{filter: `""`, match: false},
		{filter: `"x"`, match: true},
		{filter: `0`, match: false},
		{filter: `0.0`, match: false},
		{filter: `-1`, match: true},
		{filter: `[]`, match: false},
		{filter: `[0]`, match: true},
		{filter: `{}`, match: false},
		{filter: `false`, match: false},
		{filter: `null`, match: false},
		{filter: `empty`, match: false},
		{filter: `halt`, match: false},
		{filter: `false, true`, match: false}, // only the first output counts
		{filter: `[.dialog[] | select(.duration > 100)] | length`, match: true},
		{filter: `.dialog[1].duration == 30.5`, match: true},
		{filter: `.dialog[0].duration == 120`, match: true},
		// Numbers of the document, output as they are, read as Python
		// reads the numbers conserver's jq returns.
		{filter: `.dialog[0].duration`, match: true},
		{filter: `.analysis[0].dialog`, match: false},
		{filter: `.dialog[0].duration > 100 and .dialog[1].duration < 31`, match: true},
		// The program reads the document it is given, never changes it
		// (Run checks that the vCon is unchanged), even when it rewrites.
		{filter: `.dialog[0].duration = 0 | .parties[0] |= del(.name) | del(.attachments) | .dialog[0].duration == 0`, match: true},
		// The program sees the normalised document: version stamped,
		// mimetype renamed, object bodies turned into JSON strings.
		{filter: `.vcon == "0.4.0" and .dialog[0].mediatype == "audio/wav"`, match: true},
		{filter: `.analysis[0].body | type == "string"`, match: true},
		{filter: `.analysis[0].body | fromjson | .sentiment == "positive"`, match: true},
		{filter: `.attachments[0].body | fromjson | index("priority:high") != null`, match: true},
		// The fields conserver's API model declares are there, null when
		// the producer left them out, as in the document conserver stores.
		{filter: `has("subject") and .subject == null and has("amended")`, match: true},
		{filter: `.dialog[1] | has("url") and has("mediatype") and .alg == null`, match: true},
		{filter: `.parties[0] | keys == ["name", "tel"]`, match: true},
		{filter: `$ENV | length`, match: false}, // no environment: secrets stay out
		// Runtime errors, with strict: true (TestJQRuntimeError: without).
		{filter: `.analysis[0].body.sentiment`, wantErr: "jq_link: filter failed: expected an object but got: string"},
		{filter: `.parties[0].name | error`, wantErr: "the program raised error()"},
		{filter: `.parties[0].name + 1`, wantErr: "cannot add: string"},
	}
	for _, tc := range tests {
		t.Run(tc.filter, func(t *testing.T) {
			for _, forward := range []bool{true, false} {
				l := mustNew(t, "links.jq_link", map[string]any{"filter": tc.filter, "forward_matches": forward, "strict": true}, Deps{})
				v := parseVCon(t, jqDoc)
				before, _ := v.Marshal()
				res, err := l.Run(context.Background(), v)
				if after, _ := v.Marshal(); string(after) != string(before) {
					t.Fatalf("Run changed the vCon")
				}
				if tc.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
						t.Fatalf("error = %v, want %q", err, tc.wantErr)
					}
					for _, content := range []string{"Secretname", "positive", "hunter2"} {
						if strings.Contains(err.Error(), content) {
							t.Fatalf("error %q quotes vCon content %q", err, content)
						}
					}
					continue
				}
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
				if wantHalt := tc.match != forward; res.Halt != wantHalt {
					t.Fatalf("forward_matches=%v: Halt = %v, want %v", forward, res.Halt, wantHalt)
				}
			}
		})
	}
}

// TestJQRuntimeError: a program that raises on a vCon filters it out, as
// conserver's jq_link does (it logs the exception and returns None,
// whatever forward_matches says), and counts it; strict: true makes it the
// link's error, which dead-letters the vCon.
func TestJQRuntimeError(t *testing.T) {
	tests := []struct {
		name    string
		filter  string
		opts    map[string]any
		wantErr string // empty: filtered out, counted and logged
	}{
		{name: "default filters out", filter: `.parties[0].name + 1`},
		{name: "default filters out with forward_matches false", filter: `.parties[0].name | error`, opts: map[string]any{"forward_matches": false}},
		{name: "strict false said", filter: `.analysis[0].body.sentiment`, opts: map[string]any{"strict": false}},
		{name: "strict fails", filter: `.parties[0].name + 1`, opts: map[string]any{"strict": true}, wantErr: "cannot add: string"},
		{name: "strict as text", filter: `.parties[0].name | error`, opts: map[string]any{"strict": "true"}, wantErr: "the program raised error()"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs strings.Builder
			reg := prometheus.NewRegistry()
			opts := map[string]any{"filter": tc.filter}
			for k, v := range tc.opts {
				opts[k] = v
			}
			deps := Deps{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Metrics: reg}
			l := mustNew(t, "links.jq_link", opts, deps)
			res, err := l.Run(context.Background(), parseVCon(t, jqDoc))
			counted := testutil.ToFloat64(toleratedCounter(t, reg).WithLabelValues("test", "jq_error"))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Run = %+v, %v; want error %q", res, err, tc.wantErr)
				}
				if counted != 0 {
					t.Fatalf("a strict failure was counted as tolerated")
				}
				return
			}
			if err != nil || !res.Halt {
				t.Fatalf("Run = %+v, %v; want the vCon filtered out", res, err)
			}
			if counted != 1 {
				t.Fatalf("vcon_link_tolerated_errors_total{kind=jq_error} = %v, want 1", counted)
			}
			if !strings.Contains(logs.String(), "jq_link: filter failed") || !strings.Contains(logs.String(), "0190e3c2-0000-7000-8000-000000000001") {
				t.Fatalf("log does not say what failed for which vCon: %s", logs.String())
			}
			if strings.Contains(logs.String(), "Secretname") {
				t.Fatalf("log quotes vCon content: %s", logs.String())
			}
		})
	}
}

// toleratedCounter is the links' vcon_link_tolerated_errors_total on reg.
func toleratedCounter(t *testing.T, reg prometheus.Registerer) *prometheus.CounterVec {
	t.Helper()
	c, err := toleratedErrors(reg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestJQDefaultForwardsMatches(t *testing.T) {
	l := mustNew(t, "links.jq_link", map[string]any{"filter": `.dialog | length > 5`}, Deps{})
	if res := run(t, l, parseVCon(t, jqDoc)); !res.Halt {
		t.Fatal("a non-matching vCon was forwarded with the default forward_matches")
	}
}

func TestJQBoundedByContext(t *testing.T) {
	l := mustNew(t, "links.jq_link", map[string]any{"filter": `until(false; .)`}, Deps{})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := l.Run(ctx, parseVCon(t, jqDoc)); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "did not finish") {
			t.Fatalf("error = %v, want a deadline error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an endless filter outlived its context")
	}
}

func TestJQBadOptions(t *testing.T) {
	checkBadOptions(t, "links.jq_link", Deps{}, []badOptionCase{
		{name: "syntax error", opts: map[string]any{"filter": `.[`}, want: `option "filter": invalid jq program`},
		{name: "unknown function", opts: map[string]any{"filter": `nosuchfunc(1)`}, want: `option "filter": invalid jq program`},
		{name: "not a string", opts: map[string]any{"filter": 3}, want: `option "filter": want a string, got 3`},
		{name: "empty", opts: map[string]any{"filter": "  "}, want: `option "filter": empty`},
		{name: "bad forward_matches", opts: map[string]any{"filter": ".", "forward_matches": "yes"}, want: `option "forward_matches"`},
		{name: "bad strict", opts: map[string]any{"filter": ".", "strict": "maybe"}, want: `option "strict"`},
	})
}
