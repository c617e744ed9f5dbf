package pipeline

import (
	"context"
	"slices"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// The span names and attributes made once per processor (spanKit) are the
// ones each vCon's spans carry, for every vCon, not only the first; those
// set only on a recording span (the uuid, the outcome) are there too, each
// span's in the order it always had them.
func TestSpanAttributes(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev); _ = tp.Shutdown(context.Background()) })

	e := newEnv(t)
	ctx := context.Background()
	ch := e.chain(t, "main", []string{"in"}, []string{"out"},
		[]mod{{"tag", "links.tag", map[string]any{"tags": []any{"a"}}}},
		[]mod{{"copy", "storage.redis_storage", nil}, fileStore(t.TempDir())})
	p, _, _ := e.processor(ch, testOptions(), "w")
	uuids := map[string]bool{}
	for i := range 2 {
		uuid := testUUID(i)
		uuids[uuid] = true
		e.putBody(t, uuid, document(uuid, 1000), 0)
		e.rdb.RPush(ctx, "in", uuid)
		if err := p.Process(ctx, e.take(t, p, "in")); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]map[attribute.Key]string{
		"vcon.process main": {"vcon.chain": "main", "vcon.ingress_list": "in", "vcon.filtered": "false"},
		"link tag":          {"vcon.link": "tag", "vcon.outcome": "continue"},
		"storage copy":      {"vcon.storage": "copy"},
		"storage files":     {"vcon.storage": "files"},
	}
	// The keys in the order a span ends with them, as the SDK exports
	// them: what the worker's spans carried when their attributes were
	// start options and later SetAttributes.
	wantKeys := map[string][]attribute.Key{
		"vcon.process main": {"vcon.chain", "vcon.ingress_list", "vcon.uuid", "vcon.filtered"},
		"link tag":          {"vcon.link", "vcon.outcome"},
		"storage copy":      {"vcon.storage"},
		"storage files":     {"vcon.storage"},
	}
	seen := map[string]int{}
	for _, s := range rec.Ended() {
		var keys []attribute.Key
		for _, kv := range s.Attributes() {
			keys = append(keys, kv.Key)
		}
		if !slices.Equal(keys, wantKeys[s.Name()]) {
			t.Errorf("span %q has the attributes %v, want %v in that order", s.Name(), keys, wantKeys[s.Name()])
		}
		attrs, ok := want[s.Name()]
		if !ok {
			t.Errorf("unexpected span %q", s.Name())
			continue
		}
		seen[s.Name()]++
		got := map[attribute.Key]string{}
		for _, kv := range s.Attributes() {
			got[kv.Key] = kv.Value.Emit()
		}
		for k, v := range attrs {
			if got[k] != v {
				t.Errorf("span %q: %s = %q, want %q (attributes %v)", s.Name(), k, got[k], v, got)
			}
		}
		if s.Name() == "vcon.process main" {
			if !uuids[got["vcon.uuid"]] || s.SpanKind() != trace.SpanKindConsumer {
				t.Errorf("vCon span: uuid %q, kind %v; want a uuid and a consumer span", got["vcon.uuid"], s.SpanKind())
			}
		}
	}
	for name := range want {
		if seen[name] != 2 {
			t.Errorf("span %q ended %d times, want once per vCon (2)", name, seen[name])
		}
	}
}
