package telemetry

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"runtime"
	rt "runtime/trace"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
)

// The SDK's span costs a traced worker a few µs per vCon: a recording
// span object, its attributes' slice grown call by call, a snapshot of it
// all at End, each made for three spans per vCon. The fast path records
// a span of what a worker's spans do (a kind, a few scalar attributes, a
// status, a name) in a record, reused, that the batcher queues and the
// exporter encodes (appendFastSpan).
//
// It is exact by construction rather than by imitation: a span that does
// anything else (an event, an error recorded, a link, an attribute that
// is not a scalar or more attributes than the span holds, ending while
// panicking) first becomes the SDK's span it would have been, started by
// the SDK's tracer of the same scope with the same parent, ids, kind,
// start time, name, attributes and status, and the SDK does the rest. A
// span that starts with what the fast path does not record (links,
// runtime/trace on) or is not sampled is the SDK's from the start.
//
// What the fast path records itself is what the SDK would have made of
// it only for some configurations, which fastPathConfigured checks.

// fastAttributeCap is the attributes a fast span holds: a vCon's span has
// four (six when retried), a link's two, a storage's one.
const fastAttributeCap = 6

// fastPathConfigured reports whether the fast path records spans as the
// SDK does under the environment: its sampler decides by the parent's
// flags alone as the SDK's default (parentbased_always_on) or always_on
// does, and attributes are neither truncated nor limited below what a
// fast span holds (OTEL_SPAN_ATTRIBUTE_* and OTEL_ATTRIBUTE_* unset).
// The SDK's own observability (OTEL_GO_X_OBSERVABILITY) counts spans the
// fast path would not show it, so it keeps the SDK too; so does an
// exporter that is not ours, which could not read the fast spans.
func fastPathConfigured(exporter sdktrace.SpanExporter) (alwaysOn, ok bool) {
	e, ours := exporter.(*otlpExporter)
	if !ours || e.messages {
		return false, false
	}
	// The attribute limits as sdktrace reads them: the span's, else the
	// general ones.
	for _, key := range []string{
		"OTEL_GO_X_OBSERVABILITY", "OTEL_GO_X_SELF_OBSERVABILITY",
		"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
		"OTEL_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
	} {
		if os.Getenv(key) != "" {
			return false, false
		}
	}
	// As sdktrace reads it.
	switch strings.ToLower(strings.TrimSpace(os.Getenv("OTEL_TRACES_SAMPLER"))) {
	case "", "parentbased_always_on":
		return false, true
	case "always_on":
		return true, true
	}
	return false, false
}

// presetIDsKey is the context key of a span context whose ids the SDK's
// span about to start takes (idGenerator): a fast span becoming the SDK's
// keeps its ids.
type presetIDsKey struct{}

// idGenerator is the SDK's random one, but for a span given its ids.
type idGenerator struct{}

func (idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if sc, ok := ctx.Value(presetIDsKey{}).(trace.SpanContext); ok {
		return sc.TraceID(), sc.SpanID()
	}
	return newTraceID(), newSpanID()
}

func (idGenerator) NewSpanID(ctx context.Context, _ trace.TraceID) trace.SpanID {
	if sc, ok := ctx.Value(presetIDsKey{}).(trace.SpanContext); ok {
		return sc.SpanID()
	}
	return newSpanID()
}

// fastProvider is the tracer provider of a worker on the fast path: the
// SDK's provider, whose tracers' spans the fast path records when it can.
type fastProvider struct {
	embedded.TracerProvider

	sdk      *sdktrace.TracerProvider
	batcher  *batcher
	alwaysOn bool

	mu      sync.Mutex
	tracers map[trace.Tracer]trace.Tracer // by the SDK's tracer
}

func newFastProvider(sdk *sdktrace.TracerProvider, b *batcher, alwaysOn bool) *fastProvider {
	return &fastProvider{sdk: sdk, batcher: b, alwaysOn: alwaysOn, tracers: map[trace.Tracer]trace.Tracer{}}
}

// Tracer is the SDK's tracer of the scope, on the fast path. A tracer of
// a provider shut down is the SDK's (a no-op one).
func (p *fastProvider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	sdk := p.sdk.Tracer(name, opts...)
	p.mu.Lock()
	defer p.mu.Unlock()
	if t, ok := p.tracers[sdk]; ok {
		return t
	}
	t := p.newTracer(sdk)
	p.tracers[sdk] = t
	return t
}

// newTracer wraps an SDK tracer. The scope and resource its spans are
// exported with are the SDK's own, read from a span it starts and never
// ends (so never exports); a tracer whose spans are not the SDK's
// recording ones (shut down) stays as it is.
func (p *fastProvider) newTracer(sdk trace.Tracer) trace.Tracer {
	_, probe := sdk.Start(trace.ContextWithSpanContext(context.Background(), trace.SpanContext{}), "", trace.WithNewRoot())
	ro, ok := probe.(sdktrace.ReadOnlySpan)
	if !ok || !probe.IsRecording() {
		return sdk
	}
	return &fastTracer{provider: p, sdk: sdk, scope: ro.InstrumentationScope(), resource: ro.Resource()}
}

// ForceFlush exports every span ended before the call.
func (p *fastProvider) ForceFlush(ctx context.Context) error { return p.sdk.ForceFlush(ctx) }

// Shutdown exports what is queued and stops exporting.
func (p *fastProvider) Shutdown(ctx context.Context) error { return p.sdk.Shutdown(ctx) }

// fastTracer starts fast spans where the fast path records them, the SDK
// tracer's spans elsewhere.
type fastTracer struct {
	embedded.Tracer

	provider *fastProvider
	sdk      trace.Tracer
	scope    instrumentation.Scope
	resource *resource.Resource
}

// Start starts a span as the SDK's tracer does (tracer.newSpan): the
// parent from ctx unless a new root, its trace id or a new one, a new span
// id, the parent's trace state and flags with sampled set.
func (t *fastTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if ctx == nil {
		ctx = context.Background()
	}
	config := trace.NewSpanStartConfig(opts...)
	if len(config.Links()) > 0 || !fastAttributes(0, config.Attributes()) || rt.IsEnabled() {
		return t.sdk.Start(ctx, name, opts...)
	}
	var psc trace.SpanContext
	if !config.NewRoot() {
		psc = trace.SpanContextFromContext(ctx)
	}
	// parentbased_always_on samples what its parent sampled, a root
	// always; always_on everything.
	if !t.provider.alwaysOn && psc.IsValid() && !psc.IsSampled() {
		return t.sdk.Start(ctx, name, opts...)
	}
	scc := trace.SpanContextConfig{TraceID: psc.TraceID(), TraceState: psc.TraceState(), TraceFlags: psc.TraceFlags() | trace.FlagsSampled}
	if !scc.TraceID.IsValid() {
		scc.TraceID = newTraceID()
	}
	scc.SpanID = newSpanID()
	r := spanRecords.Get().(*spanRecord)
	*r = spanRecord{
		tracer: t,
		sc:     trace.NewSpanContext(scc),
		parent: psc,
		kind:   trace.ValidateSpanKind(config.SpanKind()),
		name:   name,
		start:  config.Timestamp(),
	}
	if r.start.IsZero() {
		r.start = time.Now()
	}
	r.nattrs = copy(r.attrs[:], config.Attributes())
	s := &fastSpan{tracer: t, sc: r.sc, rec: r}
	return trace.ContextWithSpan(ctx, s), s
}

// fastAttributes reports whether a fast span holding n attributes records
// attrs itself: scalars with a key, as the SDK keeps them (no limit
// reached, nothing truncated), and room for them.
func fastAttributes(n int, attrs []attribute.KeyValue) bool {
	if n+len(attrs) > fastAttributeCap {
		return false
	}
	for _, a := range attrs {
		if !a.Valid() {
			return false
		}
		switch a.Value.Type() {
		case attribute.BOOL, attribute.INT64, attribute.FLOAT64, attribute.STRING:
		default:
			return false
		}
	}
	return true
}

// fastSpan is a span on the fast path: while it records, what it
// records is rec; ended, rec is queued for export and the span lets go of
// it; become the SDK's span, sdk is that span. The span is what its user
// holds, for as long as they like; the record, the bulk, is reused once
// exported (spanRecords), so that a traced worker allocates a few dozen
// bytes per span rather than the record's several hundred.
type fastSpan struct {
	embedded.Span

	tracer *fastTracer
	sc     trace.SpanContext

	mu  sync.Mutex
	rec *spanRecord
	sdk trace.Span
}

// spanRecord is what a fast span records, as the batcher queues it and
// the exporter encodes it (appendFastSpan).
type spanRecord struct {
	tracer *fastTracer
	sc     trace.SpanContext
	parent trace.SpanContext
	kind   trace.SpanKind
	start  time.Time
	end    time.Time
	name   string
	status sdktrace.Status
	// attrs are as the SDK's span holds them before its snapshot: in the
	// order set, a key set twice twice (appendFastSpan keeps the first
	// place and the last value).
	attrs  [fastAttributeCap]attribute.KeyValue
	nattrs int
}

// spanRecords are records exported (or given up by a span become the
// SDK's), for spans to come.
var spanRecords = sync.Pool{New: func() any { return new(spanRecord) }}

// releaseRecord returns a record no one refers to any more to the pool.
func releaseRecord(r *spanRecord) {
	*r = spanRecord{}
	spanRecords.Put(r)
}

// becomeSDK starts the SDK's span this span is so far (s.mu held, s.rec
// set): its ids (idGenerator), parent, kind, start time, name,
// attributes set in one call (what the fast path set, the SDK would have
// appended as they came: under its limit, nothing to dedupe until the
// snapshot) and status (the SDK's result of any sequence of SetStatus is
// the one SetStatus of its code and description).
func (s *fastSpan) becomeSDK() {
	r := s.rec
	ctx := context.WithValue(trace.ContextWithSpanContext(context.Background(), r.parent), presetIDsKey{}, r.sc)
	opts := []trace.SpanStartOption{trace.WithSpanKind(r.kind), trace.WithTimestamp(r.start)}
	if r.nattrs > 0 {
		opts = append(opts, trace.WithAttributes(r.attrs[:r.nattrs]...))
	}
	_, s.sdk = s.tracer.sdk.Start(ctx, r.name, opts...)
	if r.status.Code != codes.Unset {
		s.sdk.SetStatus(r.status.Code, r.status.Description)
	}
	s.rec = nil
	releaseRecord(r)
}

// sdkSpan is the SDK's span this one has become, made so if it is still
// recording; nil if it ended on the fast path.
func (s *fastSpan) sdkSpan() trace.Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rec != nil {
		s.becomeSDK()
	}
	return s.sdk
}

func (s *fastSpan) SpanContext() trace.SpanContext { return s.sc }

func (s *fastSpan) IsRecording() bool {
	s.mu.Lock()
	sdk, recording := s.sdk, s.rec != nil
	s.mu.Unlock()
	if sdk != nil {
		return sdk.IsRecording()
	}
	return recording
}

// SetStatus as the SDK's: a code lower than the span's is ignored (Ok is
// final), a description kept only with Error.
func (s *fastSpan) SetStatus(code codes.Code, description string) {
	s.mu.Lock()
	if sdk := s.sdk; sdk != nil {
		s.mu.Unlock()
		sdk.SetStatus(code, description)
		return
	}
	defer s.mu.Unlock()
	r := s.rec
	if r == nil || r.status.Code > code {
		return
	}
	r.status = sdktrace.Status{Code: code}
	if code == codes.Error {
		r.status.Description = description
	}
}

func (s *fastSpan) SetAttributes(attrs ...attribute.KeyValue) {
	if len(attrs) == 0 {
		return
	}
	s.mu.Lock()
	if r := s.rec; r != nil {
		if fastAttributes(r.nattrs, attrs) {
			r.nattrs += copy(r.attrs[r.nattrs:], attrs)
			s.mu.Unlock()
			return
		}
		s.becomeSDK()
	}
	sdk := s.sdk
	s.mu.Unlock()
	if sdk != nil {
		sdk.SetAttributes(attrs...)
	}
}

func (s *fastSpan) SetName(name string) {
	s.mu.Lock()
	if sdk := s.sdk; sdk != nil {
		s.mu.Unlock()
		sdk.SetName(name)
		return
	}
	defer s.mu.Unlock()
	if s.rec != nil {
		s.rec.name = name
	}
}

func (s *fastSpan) AddEvent(name string, opts ...trace.EventOption) {
	if sdk := s.sdkSpan(); sdk != nil {
		sdk.AddEvent(name, opts...)
	}
}

func (s *fastSpan) RecordError(err error, opts ...trace.EventOption) {
	if err == nil {
		return
	}
	if sdk := s.sdkSpan(); sdk != nil {
		sdk.RecordError(err, opts...)
	}
}

func (s *fastSpan) AddLink(link trace.Link) {
	if sdk := s.sdkSpan(); sdk != nil {
		sdk.AddLink(link)
	}
}

func (s *fastSpan) TracerProvider() trace.TracerProvider { return s.tracer.provider }

// End ends the span as the SDK's does, the end time monotonic from the
// start unless given, then queues its record. Ending while panicking (End
// deferred), the SDK records the panic as an exception event; a span
// that does becomes the SDK's first. recover works only called by End
// itself, End being the deferred call, so End records the event, as the
// SDK's End would have, and panics again.
func (s *fastSpan) End(options ...trace.SpanEndOption) {
	s.mu.Lock()
	if r := s.rec; r != nil {
		et := r.start.Add(time.Since(r.start))
		if recovered := recover(); recovered != nil {
			s.becomeSDK()
			sdk := s.sdk
			s.mu.Unlock()
			endPanicking(sdk, recovered, options) // panics again
		}
		r.end = et
		config := trace.NewSpanEndConfig(options...)
		if ts := config.Timestamp(); !ts.IsZero() {
			r.end = ts
		}
		s.rec = nil
		s.mu.Unlock()
		s.tracer.provider.batcher.enqueue(queuedSpan{fast: r})
		return
	}
	sdk := s.sdk
	s.mu.Unlock()
	if sdk == nil || !sdk.IsRecording() {
		return
	}
	if recovered := recover(); recovered != nil {
		endPanicking(sdk, recovered, options)
	}
	sdk.End(options...)
}

// endPanicking ends sdk as the SDK's End does when it recovers a panic:
// an exception event of the panic's type and message (and the stack with
// trace.WithStackTrace), then the end, then the panic again.
func endPanicking(sdk trace.Span, recovered any, options []trace.SpanEndOption) {
	opts := []trace.EventOption{trace.WithAttributes(
		attribute.String("exception.type", typeStr(recovered)),
		attribute.String("exception.message", fmt.Sprint(recovered)),
	)}
	if config := trace.NewSpanEndConfig(options...); config.StackTrace() {
		opts = append(opts, trace.WithAttributes(attribute.String("exception.stacktrace", recordStackTrace())))
	}
	sdk.AddEvent("exception", opts...)
	sdk.End(options...)
	panic(recovered)
}

// typeStr is sdktrace's name of a panic value's type.
func typeStr(i any) string {
	t := reflect.TypeOf(i)
	if t.PkgPath() == "" && t.Name() == "" {
		return t.String()
	}
	return fmt.Sprintf("%s.%s", t.PkgPath(), t.Name())
}

// recordStackTrace is sdktrace's stack of an exception event.
func recordStackTrace() string {
	stackTrace := make([]byte, 2048)
	n := runtime.Stack(stackTrace, false)
	return string(stackTrace[0:n])
}

// appendFastSpan appends an ended fast span's Span message, as appendSpan
// does the SDK's snapshot of the same span: its attributes deduplicated
// as the snapshot does (a key's first place, its last value), none
// dropped, no events or links.
func appendFastSpan(b []byte, s *spanRecord) []byte {
	var unique [fastAttributeCap]attribute.KeyValue
	n := 0
next:
	for _, kv := range s.attrs[:s.nattrs] {
		for i := range n {
			if unique[i].Key == kv.Key {
				unique[i] = kv
				continue next
			}
		}
		unique[n] = kv
		n++
	}
	b = appendSpanHead(b, s.sc, s.parent, s.name, s.kind, s.start, s.end, unique[:n])
	b = appendStatus(b, s.status)
	return appendFlags(b, s.sc.TraceFlags(), s.parent)
}

// newTraceID and newSpanID are random non-zero ids, as sdktrace's
// default generator makes them.
func newTraceID() trace.TraceID {
	var tid trace.TraceID
	for !tid.IsValid() {
		binary.NativeEndian.PutUint64(tid[:8], rand.Uint64())
		binary.NativeEndian.PutUint64(tid[8:], rand.Uint64())
	}
	return tid
}

func newSpanID() trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		binary.NativeEndian.PutUint64(sid[:], rand.Uint64())
	}
	return sid
}
