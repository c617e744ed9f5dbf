package links

import (
	"context"
	"strings"
	"testing"
	"time"
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
		{filter: `$ENV | length`, match: false}, // no environment: secrets stay out
		{filter: `.analysis[0].body.sentiment`, wantErr: "jq_link: filter failed: expected an object but got: string"},
		{filter: `.parties[0].name | error`, wantErr: "the program raised error()"},
		{filter: `.parties[0].name + 1`, wantErr: "cannot add: string"},
	}
	for _, tc := range tests {
		t.Run(tc.filter, func(t *testing.T) {
			for _, forward := range []bool{true, false} {
				l := mustNew(t, "links.jq_link", map[string]any{"filter": tc.filter, "forward_matches": forward}, Deps{})
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
	})
}
