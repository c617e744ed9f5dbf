package pipeline

import (
	"context"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/vcon-operator/vcon-operator/internal/queue"
)

// TestTraceContinued: a producer's context record continues into one span
// per vCon with a child per link and per storage, and the egress list gets
// a record pointing at the worker's span.
func TestTraceContinued(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev); _ = tp.Shutdown(context.Background()) })

	e := newEnv(t)
	ctx := context.Background()
	dir := t.TempDir()
	ch := e.chain(t, "main", []string{"in"}, []string{"out1", "out2"},
		[]mod{{"tag", "links.tag", map[string]any{"tags": []any{"a"}}}, {"keep", "links.jq_link", map[string]any{"filter": "true"}}},
		[]mod{fileStore(dir), {"copy", "storage.redis_storage", nil}})
	p, _, _ := e.processor(ch, testOptions(), "w")

	producer := queue.TraceContext{TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7", TraceFlags: 1, IsSampled: true}
	uuid := testUUID(7)
	e.putBody(t, uuid, document(uuid, 1500), 0)
	e.rdb.RPush(ctx, queue.ContextKey("in", uuid), producer.JSON())
	e.rdb.RPush(ctx, "in", uuid)
	if err := p.Process(ctx, e.take(t, p, "in")); err != nil {
		t.Fatal(err)
	}

	if n := e.rdb.Exists(ctx, queue.ContextKey("in", uuid)).Val(); n != 0 {
		t.Error("the ingress context record was not consumed")
	}
	spans := rec.Ended()
	var root sdktrace.ReadOnlySpan
	children := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		if s.SpanContext().TraceID().String() != producer.TraceID {
			t.Errorf("span %q is in trace %s, want the producer's %s", s.Name(), s.SpanContext().TraceID(), producer.TraceID)
		}
		if strings.HasPrefix(s.Name(), "vcon.process") {
			if root != nil {
				t.Fatalf("two vCon spans: %q and %q", root.Name(), s.Name())
			}
			root = s
		} else {
			children[s.Name()] = s
		}
	}
	if root == nil {
		t.Fatalf("no vCon span among %d spans", len(spans))
	}
	if got := root.Parent().SpanID().String(); got != producer.SpanID || !root.Parent().IsRemote() {
		t.Errorf("vCon span parent = %s (remote %v), want the producer's span %s", got, root.Parent().IsRemote(), producer.SpanID)
	}
	var names []string
	for name, s := range children {
		names = append(names, name)
		if s.Parent().SpanID() != root.SpanContext().SpanID() {
			t.Errorf("span %q is not a child of the vCon span", name)
		}
	}
	sort.Strings(names)
	want := []string{"link keep", "link tag", "storage copy", "storage files"}
	if !slices.Equal(names, want) {
		t.Errorf("child spans = %v, want %v", names, want)
	}

	for _, l := range []string{"out1", "out2"} {
		recs := e.list(t, queue.ContextKey(l, uuid))
		if len(recs) != 1 {
			t.Fatalf("context records for %s = %v, want one", l, recs)
		}
		tc, err := queue.ParseTraceContext(recs[0])
		if err != nil {
			t.Fatal(err)
		}
		if tc.TraceID != producer.TraceID || tc.SpanID != root.SpanContext().SpanID().String() {
			t.Errorf("egress record %+v, want trace %s span %s", tc, producer.TraceID, root.SpanContext().SpanID())
		}
		if ttl := e.rdb.TTL(ctx, queue.ContextKey(l, uuid)).Val(); ttl <= 0 {
			t.Errorf("egress context record has no TTL (%s)", ttl)
		}
	}
}

// TestErrorRatioSeriesMatch: the monitoring guide divides
// vcon_processing_errors_total by vcon_processed_total; the two must carry
// the same label sets so the division matches series, and the ratio must be
// the share of dead-lettered vCons.
func TestErrorRatioSeriesMatch(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tag := []mod{{"tag", "links.tag", map[string]any{"tags": []any{"a"}}}}
	procA, m, reg := e.processor(e.chain(t, "alpha", []string{"in-a"}, []string{"out"}, tag, nil), testOptions(), "w")
	procB := NewProcessor(e.rdb, e.bodies, procA.worker, e.chain(t, "beta", []string{"in-b"}, nil, tag, nil), testOptions(), m, e.log)

	run := func(p *Processor, list string, n int, good bool) {
		for i := range n {
			uuid := testUUID(1000*len(list) + i + map[bool]int{true: 0, false: 500}[good])
			if good {
				e.putBody(t, uuid, document(uuid, 800), 0)
			} else {
				e.putBody(t, uuid, []byte("not json"), 0)
			}
			e.rdb.RPush(ctx, list, uuid)
			if err := p.Process(ctx, e.take(t, p, list)); err != nil {
				t.Fatal(err)
			}
		}
	}
	run(procA, "in-a", 3, true)
	run(procA, "in-a", 1, false)
	run(procB, "in-b", 2, true)

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	labelSets := map[string][]string{}
	for _, f := range families {
		if f.GetName() != "vcon_processed_total" && f.GetName() != "vcon_processing_errors_total" {
			continue
		}
		for _, mt := range f.GetMetric() {
			var parts []string
			for _, lp := range mt.GetLabel() {
				parts = append(parts, lp.GetName()+"="+lp.GetValue())
			}
			labelSets[f.GetName()] = append(labelSets[f.GetName()], strings.Join(parts, ","))
		}
	}
	for _, k := range labelSets {
		sort.Strings(k)
	}
	if p, e := labelSets["vcon_processed_total"], labelSets["vcon_processing_errors_total"]; len(p) != 2 || !slices.Equal(p, e) {
		t.Fatalf("label sets differ: processed %v, errors %v", p, e)
	}
	for chain, want := range map[string]float64{"alpha": 0.25, "beta": 0} {
		errs := testutil.ToFloat64(m.Errors.WithLabelValues(chain))
		processed := testutil.ToFloat64(m.Processed.WithLabelValues(chain))
		if got := errs / processed; got != want {
			t.Errorf("chain %s: errors/processed = %v/%v = %v, want %v", chain, errs, processed, got, want)
		}
	}
	if n := testutil.CollectAndCount(m.DeadLetters, "vcon_dead_letters_total"); n != 2*len(reasons) {
		t.Errorf("vcon_dead_letters_total has %d series, want %d reasons x 2 chains", n, len(reasons))
	}
}

// TestSeriesHandles: the per-vCon series are resolved once per processor
// (metrics.go, series), and /metrics must list the same series, with the
// same values, as when each vCon looked them up: the histograms and the
// rarer link outcomes appear at their first observation, not before.
func TestSeriesHandles(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	dir := t.TempDir()
	ch := e.chain(t, "main", []string{"in"}, []string{"out"},
		[]mod{{"tag", "links.tag", map[string]any{"tags": []any{"a"}}}},
		[]mod{fileStore(dir), {"copy", "storage.redis_storage", nil}})
	p, m, _ := e.processor(ch, testOptions(), "w")

	counts := func() map[string]int {
		return map[string]int{
			"duration":         testutil.CollectAndCount(m.Duration),
			"link_duration":    testutil.CollectAndCount(m.LinkDuration),
			"storage_duration": testutil.CollectAndCount(m.StorageDuration),
			"link_outcomes":    testutil.CollectAndCount(m.LinkOutcomes),
			"storage_writes":   testutil.CollectAndCount(m.StorageWrites),
		}
	}
	// Before any vCon: the counters init makes exist at zero, no
	// histogram series.
	want := map[string]int{"duration": 0, "link_duration": 0, "storage_duration": 0, "link_outcomes": 3, "storage_writes": 6}
	if got := counts(); !maps.Equal(got, want) {
		t.Errorf("series before the first vCon = %v, want %v", got, want)
	}
	for i := range 2 {
		uuid := testUUID(40 + i)
		e.putBody(t, uuid, document(uuid, 800), 0)
		e.rdb.RPush(ctx, "in", uuid)
		if err := p.Process(ctx, e.take(t, p, "in")); err != nil {
			t.Fatal(err)
		}
	}
	// The file storage is written by the worker (a duration series), the
	// Redis one by the outcome (none).
	want = map[string]int{"duration": 1, "link_duration": 1, "storage_duration": 1, "link_outcomes": 3, "storage_writes": 6}
	if got := counts(); !maps.Equal(got, want) {
		t.Errorf("series after two vCons = %v, want %v", got, want)
	}
	for name, tc := range map[string]struct {
		got  float64
		want float64
	}{
		"processed":                  {testutil.ToFloat64(m.Processed.WithLabelValues("main")), 2},
		"in flight":                  {testutil.ToFloat64(m.InFlight.WithLabelValues("main")), 0},
		"link continue":              {testutil.ToFloat64(m.LinkOutcomes.WithLabelValues("main", "tag", OutcomeContinue)), 2},
		"storage files success":      {testutil.ToFloat64(m.StorageWrites.WithLabelValues("main", "files", OutcomeSuccess)), 2},
		"storage copy success":       {testutil.ToFloat64(m.StorageWrites.WithLabelValues("main", "copy", OutcomeSuccess)), 2},
		"storage copy failure":       {testutil.ToFloat64(m.StorageWrites.WithLabelValues("main", "copy", OutcomeFailure)), 0},
		"duration observations":      {histogramCount(t, m.Duration.WithLabelValues("main")), 2},
		"link duration observations": {histogramCount(t, m.LinkDuration.WithLabelValues("main", "tag")), 2},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", name, tc.got, tc.want)
		}
	}
}

func histogramCount(t *testing.T, o prometheus.Observer) float64 {
	t.Helper()
	var pb dto.Metric
	if err := o.(prometheus.Metric).Write(&pb); err != nil {
		t.Fatal(err)
	}
	return float64(pb.GetHistogram().GetSampleCount())
}
