package pipeline

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestUnsupportedCritical: a vCon whose critical list names an extension
// the worker does not support is dead-lettered as unsupported_critical,
// naming it, before any link runs; supported ones run as usual.
func TestUnsupportedCritical(t *testing.T) {
	for _, tc := range []struct {
		name      string
		field     string
		value     any
		supported []string
		dlq       string // "" : processed
	}{
		{"unknown", "critical", []any{"x-lawful-intercept"}, nil, "unsupported_critical: x-lawful-intercept (this worker supports CC"},
		{"legacy must_support", "must_support", []any{"CC", "x-old"}, nil, "unsupported_critical: x-old ("},
		{"none supported", "critical", []any{"CC"}, []string{}, "unsupported_critical: CC (this worker supports none"},
		{"default CC", "critical", []any{"CC"}, nil, ""},
		{"configured", "critical", []any{"x-lawful-intercept"}, []string{"CC", "x-lawful-intercept"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ch := e.chain(t, "main", []string{"in"}, []string{"out"}, []mod{{"tag", "links.tag", map[string]any{"tags": []any{"seen"}}}}, nil)
			opts := testOptions()
			opts.SupportedExtensions = tc.supported
			p, m, _ := e.processor(ch, opts, "w1")
			u := testUUID(4)
			var doc map[string]any
			_ = json.Unmarshal(document(u, 700), &doc)
			doc[tc.field] = tc.value
			b, _ := json.Marshal(doc)
			e.putBody(t, u, b, time.Hour)
			e.rdb.RPush(context.Background(), "in", u)
			e.runOnce(t, p, u)
			if tc.dlq == "" {
				if where := e.whereIs(t, u, "in", []string{"out"}); !slices.Equal(where, []string{"egress out"}) {
					t.Fatalf("the vCon is in %v, want egress", where)
				}
				return
			}
			if where := e.whereIs(t, u, "in", []string{"out"}); !slices.Equal(where, []string{"dlq"}) {
				t.Fatalf("the vCon is in %v, want the DLQ", where)
			}
			if r := e.reasonOf(t, "in", u); !strings.HasPrefix(r, tc.dlq) {
				t.Errorf("reason %q, want it to start %q", r, tc.dlq)
			}
			if tags := e.tags(t, u); len(tags) != 0 {
				t.Errorf("a link ran on it: tags %v", tags)
			}
			if got := testutil.ToFloat64(m.DeadLetters.WithLabelValues("main", ReasonUnsupportedCritical)); got != 1 {
				t.Errorf("dead letters counted %v, want 1", got)
			}
		})
	}
}
