package telemetry

import (
	"context"
	"fmt"
	"math"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// otlpExporter is otlptrace.Exporter (the OTLP exporter autoexport makes,
// on the same http/protobuf or gRPC client) with a cheaper conversion of
// spans for the client. otlptrace converts each batch into new messages
// (a span, its ids, its status and three objects per attribute, about
// forty allocations per traced vCon), which the client then marshals.
// This exporter encodes the batch into protobuf's wire format itself and
// hands the client messages that carry those bytes (wire.go); only when
// the client reads the messages (its experimental observability counts
// their spans) does it convert into messages, reused from one batch to the
// next: the client is done with them once UploadTraces returns (it
// marshals them, or sends them, before), and exports run one at a time.
// What it sends is what otlptrace sends (TestExportMatchesOTLPTrace and
// TestWireMatchesOTLPTrace compare them).
type otlpExporter struct {
	client otlptrace.Client

	// messages is set when the client reads the messages it is given:
	// the batches are converted into messages, not encoded.
	messages bool

	mu        sync.Mutex // one export at a time: the messages and buffers are reused
	stopped   bool
	spans     []*spanMessage
	resources map[attribute.Distinct]*resourcepb.Resource
	scopes    map[instrumentation.Scope]*commonpb.InstrumentationScope

	// The wire encoding's reused state: the batch's groups, its bytes, a
	// ScopeSpans' and a span's, and the resources and scopes encoded once.
	groups       []wireGroup
	wrapped      []queuedSpan // ExportSpans' batch as the encoder takes it
	plain        []sdktrace.ReadOnlySpan
	buf          []byte
	scopeSpans   []byte
	span         []byte
	rawResources map[attribute.Distinct][]byte
	rawScopes    map[instrumentation.Scope][]byte
}

// spanMessage is one reusable span message with the storage its fields
// point into.
type spanMessage struct {
	span           tracepb.Span
	status         tracepb.Status
	traceID        [16]byte
	spanID, parent [8]byte
	attrs          []*commonpb.KeyValue
	values         []*valueMessage
}

// valueMessage is one reusable attribute of a scalar type.
type valueMessage struct {
	kv  commonpb.KeyValue
	any commonpb.AnyValue
	s   commonpb.AnyValue_StringValue
	b   commonpb.AnyValue_BoolValue
	i   commonpb.AnyValue_IntValue
	d   commonpb.AnyValue_DoubleValue
}

// newOTLPExporter starts client and returns the exporter that uses it.
func newOTLPExporter(ctx context.Context, client otlptrace.Client) (*otlpExporter, error) {
	if err := client.Start(ctx); err != nil {
		return nil, err
	}
	return &otlpExporter{
		client:       client,
		messages:     clientReadsMessages(),
		resources:    map[attribute.Distinct]*resourcepb.Resource{},
		scopes:       map[instrumentation.Scope]*commonpb.InstrumentationScope{},
		rawResources: map[attribute.Distinct][]byte{},
		rawScopes:    map[instrumentation.Scope][]byte{},
	}, nil
}

// ExportSpans sends a batch of the SDK's spans.
func (e *otlpExporter) ExportSpans(ctx context.Context, ss []sdktrace.ReadOnlySpan) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.messages {
		return e.upload(ctx, e.transform(ss))
	}
	e.wrapped = e.wrapped[:0]
	for _, sd := range ss {
		e.wrapped = append(e.wrapped, queuedSpan{sdk: sd})
	}
	err := e.upload(ctx, e.encode(e.wrapped))
	clear(e.wrapped)
	return err
}

// exportQueued sends a batch of the batcher's queue, the SDK's spans and
// the fast path's. The fast path is chosen only when the batches are
// encoded (Setup): converting into messages takes only the SDK's.
func (e *otlpExporter) exportQueued(ctx context.Context, ss []queuedSpan) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.messages {
		rss := e.encode(ss)
		// Encoded, the fast path's records are referred to by nothing
		// but the batcher's slice, which is cleared, never read again.
		for _, s := range ss {
			if s.fast != nil {
				releaseRecord(s.fast)
			}
		}
		return e.upload(ctx, rss)
	}
	e.plain = e.plain[:0]
	for _, s := range ss {
		if s.sdk != nil {
			e.plain = append(e.plain, s.sdk)
		}
	}
	err := e.upload(ctx, e.transform(e.plain))
	clear(e.plain)
	return err
}

func (e *otlpExporter) upload(ctx context.Context, rss []*tracepb.ResourceSpans) error {
	if len(rss) == 0 {
		return nil
	}
	if err := e.client.UploadTraces(ctx, rss); err != nil {
		return fmt.Errorf("traces export: %w", err)
	}
	return nil
}

// Shutdown stops the client; a second Shutdown does nothing.
func (e *otlpExporter) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return nil
	}
	e.stopped = true
	return e.client.Stop(ctx)
}

// transform groups the spans by resource, then by scope, as otlptrace
// does. The groups are new for each batch (a handful per batch); the
// spans' messages are reused.
func (e *otlpExporter) transform(ss []sdktrace.ReadOnlySpan) []*tracepb.ResourceSpans {
	type scopeKey struct {
		r  attribute.Distinct
		is instrumentation.Scope
	}
	var (
		rss       []*tracepb.ResourceSpans
		byRes     = map[attribute.Distinct]*tracepb.ResourceSpans{}
		byScope   = map[scopeKey]*tracepb.ScopeSpans{}
		last      scopeKey
		lastScope *tracepb.ScopeSpans
		n         int
	)
	for _, sd := range ss {
		if sd == nil {
			continue
		}
		res := sd.Resource()
		k := scopeKey{r: res.Equivalent(), is: sd.InstrumentationScope()}
		scopeSpans := lastScope
		// A batch is mostly one resource and one scope: comparing with the
		// last span's spares two map lookups per span.
		if scopeSpans == nil || k != last {
			var ok bool
			if scopeSpans, ok = byScope[k]; !ok {
				scopeSpans = &tracepb.ScopeSpans{Scope: e.scope(k.is), Spans: []*tracepb.Span{}, SchemaUrl: k.is.SchemaURL}
				byScope[k] = scopeSpans
				rs, ok := byRes[k.r]
				if !ok {
					rs = &tracepb.ResourceSpans{Resource: e.resource(res), SchemaUrl: res.SchemaURL()}
					byRes[k.r] = rs
					rss = append(rss, rs)
				}
				rs.ScopeSpans = append(rs.ScopeSpans, scopeSpans)
			}
			last, lastScope = k, scopeSpans
		}
		if n == len(e.spans) {
			e.spans = append(e.spans, &spanMessage{})
		}
		m := e.spans[n]
		n++
		m.fill(sd)
		scopeSpans.Spans = append(scopeSpans.Spans, &m.span)
	}
	if len(e.spans) > 2*n && len(e.spans) > 2*sdktrace.DefaultMaxExportBatchSize {
		e.spans = e.spans[:n] // a burst's messages are not kept
	}
	return rss
}

// resource is r's message, made once per resource: the client only reads
// it.
func (e *otlpExporter) resource(r *resource.Resource) *resourcepb.Resource {
	if r == nil {
		return nil
	}
	k := r.Equivalent()
	m, ok := e.resources[k]
	if !ok {
		m = &resourcepb.Resource{Attributes: iterValues(r.Iter())}
		e.resources[k] = m
	}
	return m
}

// scope is is's message, made once per scope.
func (e *otlpExporter) scope(is instrumentation.Scope) *commonpb.InstrumentationScope {
	if is == (instrumentation.Scope{}) {
		return nil
	}
	m, ok := e.scopes[is]
	if !ok {
		m = &commonpb.InstrumentationScope{Name: is.Name, Version: is.Version, Attributes: iterValues(is.Attributes.Iter())}
		e.scopes[is] = m
	}
	return m
}

// fill sets every field of the message from sd, as otlptrace's span
// conversion does.
func (m *spanMessage) fill(sd sdktrace.ReadOnlySpan) {
	sc := sd.SpanContext()
	m.traceID, m.spanID = sc.TraceID(), sc.SpanID()
	st := sd.Status()
	m.status.Code, m.status.Message = statusCode(st.Code), st.Description
	s := &m.span
	s.TraceId, s.SpanId = m.traceID[:], m.spanID[:]
	s.TraceState = sc.TraceState().String()
	s.ParentSpanId = nil
	s.Flags = spanFlags(sc.TraceFlags(), sd.Parent())
	s.Name = sd.Name()
	s.Kind = spanKind(sd.SpanKind())
	s.StartTimeUnixNano = uint64(max(0, sd.StartTime().UnixNano())) //nolint:gosec // not negative
	s.EndTimeUnixNano = uint64(max(0, sd.EndTime().UnixNano()))     //nolint:gosec // not negative
	s.Attributes = m.attributes(sd.Attributes())
	s.DroppedAttributesCount = clampUint32(sd.DroppedAttributes())
	s.Events = spanEvents(sd.Events())
	s.DroppedEventsCount = clampUint32(sd.DroppedEvents())
	s.Links = spanLinks(sd.Links())
	s.DroppedLinksCount = clampUint32(sd.DroppedLinks())
	s.Status = &m.status
	if p := sd.Parent().SpanID(); p.IsValid() {
		m.parent = p
		s.ParentSpanId = m.parent[:]
	}
}

// attributes converts attrs into the message's reused key-values; a value
// of a composite type is converted anew, as otlptrace does.
func (m *spanMessage) attributes(attrs []attribute.KeyValue) []*commonpb.KeyValue {
	if len(attrs) == 0 {
		return nil
	}
	m.attrs = m.attrs[:0]
	for i, kv := range attrs {
		if i == len(m.values) {
			m.values = append(m.values, &valueMessage{})
		}
		vm := m.values[i]
		vm.kv.Key = string(kv.Key)
		vm.kv.Value = &vm.any
		switch kv.Value.Type() {
		case attribute.STRING:
			vm.s.StringValue = kv.Value.AsString()
			vm.any.Value = &vm.s
		case attribute.BOOL:
			vm.b.BoolValue = kv.Value.AsBool()
			vm.any.Value = &vm.b
		case attribute.INT64:
			vm.i.IntValue = kv.Value.AsInt64()
			vm.any.Value = &vm.i
		case attribute.FLOAT64:
			vm.d.DoubleValue = kv.Value.AsFloat64()
			vm.any.Value = &vm.d
		default:
			vm.kv.Value = anyValue(kv.Value)
		}
		m.attrs = append(m.attrs, &vm.kv)
	}
	return m.attrs
}

func statusCode(c codes.Code) tracepb.Status_StatusCode {
	switch c {
	case codes.Ok:
		return tracepb.Status_STATUS_CODE_OK
	case codes.Error:
		return tracepb.Status_STATUS_CODE_ERROR
	}
	return tracepb.Status_STATUS_CODE_UNSET
}

// spanFlags are the W3C trace flags with the bits saying whether the
// parent is remote, as otlptrace sets them.
func spanFlags(tf trace.TraceFlags, parent trace.SpanContext) uint32 {
	flags := uint32(tf) | uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK)
	if parent.IsRemote() {
		flags |= uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK)
	}
	return flags
}

func spanKind(k trace.SpanKind) tracepb.Span_SpanKind {
	switch k {
	case trace.SpanKindInternal:
		return tracepb.Span_SPAN_KIND_INTERNAL
	case trace.SpanKindClient:
		return tracepb.Span_SPAN_KIND_CLIENT
	case trace.SpanKindServer:
		return tracepb.Span_SPAN_KIND_SERVER
	case trace.SpanKindProducer:
		return tracepb.Span_SPAN_KIND_PRODUCER
	case trace.SpanKindConsumer:
		return tracepb.Span_SPAN_KIND_CONSUMER
	}
	return tracepb.Span_SPAN_KIND_UNSPECIFIED
}

func clampUint32(v int) uint32 {
	if v < 0 {
		return 0
	}
	if int64(v) > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(v)
}

// The conversions below are for what a worker's spans seldom carry
// (events, links, composite attribute values, resources and scopes, made
// once): new messages each time, as otlptrace makes them.

func spanEvents(es []sdktrace.Event) []*tracepb.Span_Event {
	if len(es) == 0 {
		return nil
	}
	events := make([]*tracepb.Span_Event, len(es))
	for i := range es {
		events[i] = &tracepb.Span_Event{
			Name:                   es[i].Name,
			TimeUnixNano:           uint64(max(0, es[i].Time.UnixNano())), //nolint:gosec // not negative
			Attributes:             keyValues(es[i].Attributes),
			DroppedAttributesCount: clampUint32(es[i].DroppedAttributeCount),
		}
	}
	return events
}

func spanLinks(ls []sdktrace.Link) []*tracepb.Span_Link {
	if len(ls) == 0 {
		return nil
	}
	out := make([]*tracepb.Span_Link, 0, len(ls))
	for _, l := range ls {
		tid, sid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		out = append(out, &tracepb.Span_Link{
			TraceId:                tid[:],
			SpanId:                 sid[:],
			Attributes:             keyValues(l.Attributes),
			DroppedAttributesCount: clampUint32(l.DroppedAttributeCount),
			Flags:                  spanFlags(l.SpanContext.TraceFlags(), l.SpanContext),
		})
	}
	return out
}

func keyValues(attrs []attribute.KeyValue) []*commonpb.KeyValue {
	if len(attrs) == 0 {
		return nil
	}
	out := make([]*commonpb.KeyValue, 0, len(attrs))
	for _, kv := range attrs {
		out = append(out, &commonpb.KeyValue{Key: string(kv.Key), Value: anyValue(kv.Value)})
	}
	return out
}

func iterValues(it attribute.Iterator) []*commonpb.KeyValue {
	if it.Len() == 0 {
		return nil
	}
	out := make([]*commonpb.KeyValue, 0, it.Len())
	for it.Next() {
		kv := it.Attribute()
		out = append(out, &commonpb.KeyValue{Key: string(kv.Key), Value: anyValue(kv.Value)})
	}
	return out
}

func anyValue(v attribute.Value) *commonpb.AnyValue {
	av := new(commonpb.AnyValue)
	switch v.Type() {
	case attribute.BOOL:
		av.Value = &commonpb.AnyValue_BoolValue{BoolValue: v.AsBool()}
	case attribute.INT64:
		av.Value = &commonpb.AnyValue_IntValue{IntValue: v.AsInt64()}
	case attribute.FLOAT64:
		av.Value = &commonpb.AnyValue_DoubleValue{DoubleValue: v.AsFloat64()}
	case attribute.STRING:
		av.Value = &commonpb.AnyValue_StringValue{StringValue: v.AsString()}
	case attribute.BYTESLICE:
		av.Value = &commonpb.AnyValue_BytesValue{BytesValue: v.AsByteSlice()}
	case attribute.BOOLSLICE:
		av.Value = arrayValue(v.AsBoolSlice(), func(b bool) *commonpb.AnyValue {
			return &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: b}}
		})
	case attribute.INT64SLICE:
		av.Value = arrayValue(v.AsInt64Slice(), func(i int64) *commonpb.AnyValue {
			return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: i}}
		})
	case attribute.FLOAT64SLICE:
		av.Value = arrayValue(v.AsFloat64Slice(), func(d float64) *commonpb.AnyValue {
			return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: d}}
		})
	case attribute.STRINGSLICE:
		av.Value = arrayValue(v.AsStringSlice(), func(s string) *commonpb.AnyValue {
			return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
		})
	case attribute.SLICE:
		av.Value = arrayValue(v.AsSlice(), anyValue)
	case attribute.MAP:
		av.Value = &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: keyValues(v.AsMap())}}
	case attribute.EMPTY:
	default:
		av.Value = &commonpb.AnyValue_StringValue{StringValue: "INVALID"}
	}
	return av
}

func arrayValue[T any](vals []T, conv func(T) *commonpb.AnyValue) *commonpb.AnyValue_ArrayValue {
	out := make([]*commonpb.AnyValue, len(vals))
	for i, v := range vals {
		out[i] = conv(v)
	}
	return &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: out}}
}
