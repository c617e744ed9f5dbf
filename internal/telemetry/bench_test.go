package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// discardExporter drops every batch: the SDK's part of a vCon's tracing,
// without the export's.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// BenchmarkVConSpans is the tracing a traced worker does per vCon, as the
// pipeline does it (a consumer span per vCon continuing a producer's
// context, a link's span and a storage's, their attributes; no trace
// context record, which is read and written in Redis), through the batcher to
// an exporter that drops the spans or to the OTLP http/protobuf exporter
// and a local receiver. cpu-µs/op is the process's CPU per vCon, the
// receiver's included (it only reads the body).
func BenchmarkVConSpans(b *testing.B) {
	for _, export := range []string{"discard", "otlp", "fast"} {
		b.Run(export, func(b *testing.B) {
			ctx := context.Background()
			var exp sdktrace.SpanExporter = discardExporter{}
			if export != "discard" {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
				defer srv.Close()
				var err error
				exp, err = newOTLPExporter(ctx, otlptracehttp.NewClient(otlptracehttp.WithEndpointURL(srv.URL+"/v1/traces")))
				if err != nil {
					b.Fatal(err)
				}
			}
			res, _ := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", "bench")))
			// fast: the OTLP exporter on the fast path.
			tp, shutdown := newTracerProvider(res, exp, batchOptionsFromEnv(), export == "fast", false)
			tr := tp.Tracer("github.com/vcon-operator/vcon-operator/internal/pipeline")
			parent := trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
				TraceID: trace.TraceID{0x4b, 0xf9, 1}, SpanID: trace.SpanID{0x00, 0xf0, 2}, TraceFlags: trace.FlagsSampled, Remote: true,
			}))
			// As internal/pipeline's spanKit makes them.
			processOpts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)}
			processAttrs := []attribute.KeyValue{attribute.String("vcon.chain", "bench"), attribute.String("vcon.ingress_list", "in")}
			linkEnd := []attribute.KeyValue{attribute.String("vcon.link", "tag"), attribute.String("vcon.outcome", "continue")}
			storageOpts := []trace.SpanStartOption{trace.WithAttributes(attribute.String("vcon.storage", "copy"))}
			filtered := []attribute.KeyValue{attribute.Bool("vcon.filtered", false)}
			uuid := "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
			b.ReportAllocs()
			cpu0 := processCPU()
			b.ResetTimer()
			for range b.N {
				vctx, span := tr.Start(parent, "vcon.process bench", processOpts...)
				if span.IsRecording() {
					span.SetAttributes(processAttrs...)
					span.SetAttributes(attribute.String("vcon.uuid", uuid))
				}
				_, link := tr.Start(vctx, "link tag")
				link.SetAttributes(linkEnd...)
				link.End()
				_, st := tr.Start(vctx, "storage copy", storageOpts...)
				st.End()
				span.SetAttributes(filtered...)
				span.End()
			}
			if err := shutdown(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/1000/float64(b.N), "cpu-µs/op")
		})
	}
}

// processCPU is the user plus system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// marshalClient marshals each upload as the OTLP clients do, and drops it.
type marshalClient struct{ captureClient }

func (c *marshalClient) UploadTraces(_ context.Context, rss []*tracepb.ResourceSpans) error {
	_, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: rss})
	return err
}

// BenchmarkExport is the exporter's CPU per span, up to the bytes a client
// sends, for batches of a worker's spans (a vCon's span, its link's and
// its storage's), by
// the wire encoding and by conversion into messages.
func BenchmarkExport(b *testing.B) {
	ctx := context.Background()
	rec := tracetest.NewSpanRecorder()
	res, _ := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", "bench")))
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSpanProcessor(rec))
	tr := tp.Tracer("github.com/vcon-operator/vcon-operator/internal/pipeline")
	parent := trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 1}, SpanID: trace.SpanID{0x00, 0xf0, 2}, TraceFlags: trace.FlagsSampled, Remote: true,
	}))
	for range sdktrace.DefaultMaxExportBatchSize / 3 {
		vctx, span := tr.Start(parent, "vcon.process bench", trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(attribute.String("vcon.chain", "bench"), attribute.String("vcon.ingress_list", "in")))
		span.SetAttributes(attribute.String("vcon.uuid", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"))
		_, link := tr.Start(vctx, "link tag", trace.WithAttributes(attribute.String("vcon.link", "tag")))
		link.SetAttributes(attribute.String("vcon.outcome", "continue"))
		link.End()
		_, st := tr.Start(vctx, "storage copy", trace.WithAttributes(attribute.String("vcon.storage", "copy")))
		st.End()
		span.SetAttributes(attribute.Bool("vcon.filtered", false))
		span.End()
	}
	batch := rec.Ended()
	for _, messages := range []bool{false, true} {
		name := "wire"
		if messages {
			name = "messages"
		}
		b.Run(name, func(b *testing.B) {
			exp, err := newOTLPExporter(ctx, &marshalClient{})
			if err != nil {
				b.Fatal(err)
			}
			exp.messages = messages
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := exp.ExportSpans(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/span")
		})
	}
}
