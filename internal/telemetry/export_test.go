package telemetry

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// captureClient keeps each upload's request bytes, as a client would send
// them.
type captureClient struct {
	mu      sync.Mutex
	uploads [][]byte
	started int
	stopped int
}

func (c *captureClient) Start(context.Context) error { c.started++; return nil }
func (c *captureClient) Stop(context.Context) error  { c.stopped++; return nil }
func (c *captureClient) UploadTraces(_ context.Context, rss []*tracepb.ResourceSpans) error {
	// Sorted by resource so that two conversions compare: otlptrace
	// orders resources as its map iterates. A resource is read from the
	// message as a receiver decodes it: the wire encoding's messages hold
	// only unknown fields.
	resources := map[*tracepb.ResourceSpans]string{}
	for _, rs := range rss {
		b, err := proto.Marshal(rs)
		if err != nil {
			return err
		}
		var decoded tracepb.ResourceSpans
		if err := proto.Unmarshal(b, &decoded); err != nil {
			return err
		}
		resources[rs] = prototext.Format(decoded.GetResource())
	}
	rss = slices.Clone(rss)
	slices.SortFunc(rss, func(a, b *tracepb.ResourceSpans) int { return strings.Compare(resources[a], resources[b]) })
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&tracepb.TracesData{ResourceSpans: rss})
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.uploads = append(c.uploads, b)
	return nil
}

// TestExportMatchesOTLPTrace: otlpExporter sends what otlptrace's exporter
// sends for the same spans, batch after batch as it reuses its messages
// and buffers: spans of every kind and status, with and without a (remote)
// parent, attributes of every type, events, links, trace state, two
// resources and scopes, and batches that shrink and grow. The wire
// encoding's bytes are proto.Marshal's of otlptrace's messages, byte for
// byte; the messages (when the client reads them) decode the same.
func TestExportMatchesOTLPTrace(t *testing.T) {
	for _, tc := range []struct {
		name     string
		messages bool
	}{{"wire", false}, {"messages", true}} {
		t.Run(tc.name, func(t *testing.T) { testExportMatchesOTLPTrace(t, tc.messages) })
	}
}

func testExportMatchesOTLPTrace(t *testing.T, messages bool) {
	ctx := context.Background()
	rec := tracetest.NewSpanRecorder()
	resA := resource.NewSchemaless(attribute.String("service.name", "a"))
	resB, _ := resource.New(ctx, resource.WithAttributes(attribute.String("service.name", "b"), attribute.Int("n", 2)), resource.WithSchemaURL("https://opentelemetry.io/schemas/1.26.0"))
	tpA := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithResource(resA))
	tpB := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithResource(resB))

	remote := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 1}, SpanID: trace.SpanID{0x00, 0xf0, 2}, TraceFlags: trace.FlagsSampled, Remote: true,
	})
	ts, _ := trace.ParseTraceState("vendor=value")
	remoteWithState := remote.WithTraceState(ts)
	all := []attribute.KeyValue{
		attribute.String("s", "v"), attribute.Bool("b", true), attribute.Int64("i", -7), attribute.Float64("f", 1.5),
		attribute.String("empty", ""), attribute.Bool("false", false), attribute.Int64("zero", 0), attribute.Float64("fzero", 0),
		attribute.Int64("big", 1<<40), {Key: "", Value: attribute.StringValue("no key")},
		attribute.StringSlice("ss", []string{"x", "y"}), attribute.BoolSlice("bs", []bool{true, false}),
		attribute.Int64Slice("is", []int64{1, 2}), attribute.Float64Slice("fs", []float64{0.5}),
	}
	var batches [][]sdktrace.ReadOnlySpan
	mark := 0
	cut := func() {
		ended := rec.Ended()
		batches = append(batches, ended[mark:])
		mark = len(ended)
	}
	// Batch 1: a vCon's spans as the worker makes them, and more.
	pctx := trace.ContextWithRemoteSpanContext(ctx, remoteWithState)
	vctx, vspan := tpA.Tracer("github.com/vcon-operator/vcon-operator/internal/pipeline").Start(pctx, "vcon.process main",
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attribute.String("vcon.chain", "main"), attribute.String("vcon.uuid", "u1")))
	_, l := tpA.Tracer("github.com/vcon-operator/vcon-operator/internal/pipeline").Start(vctx, "link tag", trace.WithAttributes(attribute.String("vcon.link", "tag")))
	l.SetAttributes(attribute.String("vcon.outcome", "continue"))
	l.End()
	_, st := tpA.Tracer("github.com/vcon-operator/vcon-operator/internal/pipeline").Start(vctx, "storage copy", trace.WithAttributes(attribute.String("vcon.storage", "copy")))
	st.SetStatus(codes.Error, "storage write failed")
	st.End()
	vspan.SetAttributes(attribute.Bool("vcon.filtered", false))
	vspan.End()
	_, s := tpB.Tracer("other", trace.WithInstrumentationVersion("1.2.3"), trace.WithInstrumentationAttributes(attribute.String("scope", "attr"))).Start(ctx, "root",
		trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(all...), trace.WithLinks(trace.Link{SpanContext: remote, Attributes: []attribute.KeyValue{attribute.String("l", "1")}}))
	s.AddEvent("event", trace.WithAttributes(attribute.Int("e", 1)))
	s.SetStatus(codes.Ok, "")
	s.End()
	cut()
	// Batch 2: fewer spans, fewer attributes, other kinds, a resource
	// without attributes and a scope of only a name.
	for _, kind := range []trace.SpanKind{trace.SpanKindClient, trace.SpanKindProducer} {
		_, s := tpA.Tracer("x").Start(ctx, "small", trace.WithSpanKind(kind))
		s.End()
	}
	tpEmpty := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithResource(resource.Empty()))
	_, s = tpEmpty.Tracer("bare").Start(ctx, "bare")
	s.End()
	cut()
	// Batch 3: more spans than ever, composite values where scalars were.
	for i := range 6 {
		_, s := tpA.Tracer("github.com/vcon-operator/vcon-operator/internal/pipeline").Start(pctx, "grown",
			trace.WithAttributes(all[(i+4)%len(all)], all[i%len(all)]))
		s.End()
	}
	cut()

	theirs, ours := &captureClient{}, &captureClient{}
	ref := otlptrace.NewUnstarted(theirs)
	exp, err := newOTLPExporter(ctx, ours)
	if err != nil {
		t.Fatal(err)
	}
	exp.messages = messages
	for i, b := range batches {
		if err := ref.ExportSpans(ctx, b); err != nil {
			t.Fatal(err)
		}
		if err := exp.ExportSpans(ctx, b); err != nil {
			t.Fatal(err)
		}
		var want, got tracepb.TracesData
		if err := errors.Join(proto.Unmarshal(theirs.uploads[i], &want), proto.Unmarshal(ours.uploads[i], &got)); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&want, &got) {
			t.Errorf("batch %d differs:\notlptrace: %s\nours:      %s", i+1, prototext.Format(&want), prototext.Format(&got))
		} else if !messages && !bytes.Equal(theirs.uploads[i], ours.uploads[i]) {
			t.Errorf("batch %d decodes the same, but its bytes are not proto.Marshal's:\notlptrace: %x\nours:      %x", i+1, theirs.uploads[i], ours.uploads[i])
		}
	}
	if err := exp.ExportSpans(ctx, nil); err != nil || len(ours.uploads) != len(batches) {
		t.Errorf("an empty batch was sent (%v)", err)
	}
	_ = exp.Shutdown(ctx)
	_ = exp.Shutdown(ctx)
	if ours.started != 1 || ours.stopped != 1 {
		t.Errorf("client started %d and stopped %d times, want once each", ours.started, ours.stopped)
	}
}
