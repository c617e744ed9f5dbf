package pipeline

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/telemetry"
)

// BenchmarkProcess is one vCon of about 5 KB through [links.tag] +
// storage.redis_storage + egress, taken and committed against a real
// redis-server: the worker's hot path without the runner (see
// hack/bench/worker for the end-to-end figure).
func BenchmarkProcess(b *testing.B) {
	e := newEnvTB(b)
	ctx := context.Background()
	ch := e.chainTB(b, "bench", []string{"in"}, []string{"out"},
		[]mod{{"tag", "links.tag", map[string]any{"tags": []any{"benchmarked"}}}},
		[]mod{{"copy", "storage.redis_storage", nil}})
	p, _, _ := e.processor(ch, Options{}, "w")
	if err := p.worker.Heartbeat(ctx, []string{"in"}); err != nil {
		b.Fatal(err)
	}
	uuid := testUUID(1)
	doc := document(uuid, 5000)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		e.rdb.Set(ctx, "vcon:"+uuid, doc, 0)
		e.rdb.RPush(ctx, "in", uuid)
		it, ok, err := p.worker.Take(ctx, "in", time.Second)
		if err != nil || !ok {
			b.Fatal(ok, err)
		}
		b.StartTimer()
		if err := p.Process(ctx, it); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBusyWorker is the worker's loop while its list is never empty
// (each outcome takes the next uuid), untraced and traced as in
// hack/bench/worker: a producer's trace context on every vCon, spans
// exported over OTLP http/protobuf to a local receiver. It reports the
// process's CPU per vCon (cpu-µs/op), export included, which is the
// figure the worker benchmark's targets are about; ns/op is mostly
// waiting for redis-server.
func BenchmarkBusyWorker(b *testing.B) {
	for _, traced := range []bool{false, true} {
		name := "untraced"
		if traced {
			name = "traced"
		}
		b.Run(name, func(b *testing.B) { benchmarkBusyWorker(b, traced) })
	}
}

func benchmarkBusyWorker(b *testing.B, traced bool) {
	ctx := context.Background()
	shutdown := func(context.Context) error { return nil }
	if traced {
		otlp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
		b.Cleanup(otlp.Close)
		b.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", otlp.URL+"/v1/traces")
		b.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
		prev := otel.GetTracerProvider()
		var err error
		if shutdown, err = telemetry.Setup(ctx, "bench"); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { otel.SetTracerProvider(prev) })
	}
	e := newEnvTB(b)
	ch := e.chainTB(b, "bench", []string{"in"}, []string{"out"},
		[]mod{{"tag", "links.tag", map[string]any{"tags": []any{"benchmarked"}}}},
		[]mod{{"copy", "storage.redis_storage", nil}})
	p, _, _ := e.processor(ch, Options{}, "w")
	if err := p.worker.Heartbeat(ctx, []string{"in"}); err != nil {
		b.Fatal(err)
	}
	const record = `{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","trace_flags":1,"is_sampled":true}`
	pipe := e.rdb.Pipeline()
	for i := range b.N {
		uuid := testUUID(i)
		pipe.Set(ctx, "vcon:"+uuid, document(uuid, 5000), 0)
		if traced {
			pipe.RPush(ctx, queue.ContextKey("in", uuid), record)
		}
		pipe.RPush(ctx, "in", uuid)
		if pipe.Len() >= 300 || i == b.N-1 {
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	it, ok, err := p.worker.Take(ctx, "in", time.Second)
	if err != nil || !ok {
		b.Fatal(ok, err)
	}
	always := func() bool { return true }
	b.ReportAllocs()
	cpu0 := processCPU()
	b.ResetTimer()
	for i := range b.N {
		next, took, err := p.ProcessThenTake(ctx, it, always)
		if err != nil {
			b.Fatal(err)
		}
		if took != (i < b.N-1) {
			b.Fatalf("vCon %d: took a successor %v", i, took)
		}
		it = next
	}
	// The spans still batched are exported within the measure.
	if err := shutdown(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

// processCPU is the user plus system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
