package telemetry

import (
	"math"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// The OTLP clients (http/protobuf and gRPC alike) marshal what they are
// given with proto.Marshal, which walks every span, key-value and value
// message twice (sizes, then bytes) through the protobuf runtime's
// generic coders: most of an export's CPU, a few µs per traced vCon. A
// message's unknown fields are marshalled as the bytes they are, so the
// exporter encodes each batch itself, straight from the SDK's spans into
// protobuf wire format, and hands the clients ResourceSpans messages that
// hold nothing but those bytes as unknown fields. What goes on the wire is
// byte for byte what proto.Marshal makes of otlptrace's messages (every
// field in field-number order, proto3 defaults omitted, a oneof value
// always written), and the clients keep doing everything else: endpoints,
// headers, TLS, compression, retries, partial successes.
// TestWireMatchesOTLPTrace compares the bytes.
//
// One client feature reads the messages: with OTEL_GO_X_OBSERVABILITY
// the clients count the spans of an export for their own metrics, in the
// messages' ScopeSpans. Then the exporter sends messages as before.

// Field numbers of the OTLP messages the encoder writes
// (opentelemetry/proto/{trace,common,resource}/v1).
const (
	fieldResourceSpansResource   protowire.Number = 1
	fieldResourceSpansScopeSpans protowire.Number = 2
	fieldResourceSpansSchemaURL  protowire.Number = 3

	fieldScopeSpansScope     protowire.Number = 1
	fieldScopeSpansSpans     protowire.Number = 2
	fieldScopeSpansSchemaURL protowire.Number = 3

	fieldSpanTraceID           protowire.Number = 1
	fieldSpanSpanID            protowire.Number = 2
	fieldSpanTraceState        protowire.Number = 3
	fieldSpanParentSpanID      protowire.Number = 4
	fieldSpanName              protowire.Number = 5
	fieldSpanKind              protowire.Number = 6
	fieldSpanStartTime         protowire.Number = 7
	fieldSpanEndTime           protowire.Number = 8
	fieldSpanAttributes        protowire.Number = 9
	fieldSpanDroppedAttributes protowire.Number = 10
	fieldSpanEvents            protowire.Number = 11
	fieldSpanDroppedEvents     protowire.Number = 12
	fieldSpanLinks             protowire.Number = 13
	fieldSpanDroppedLinks      protowire.Number = 14
	fieldSpanStatus            protowire.Number = 15
	fieldSpanFlags             protowire.Number = 16

	fieldStatusMessage protowire.Number = 2
	fieldStatusCode    protowire.Number = 3

	fieldKeyValueKey   protowire.Number = 1
	fieldKeyValueValue protowire.Number = 2

	fieldAnyString protowire.Number = 1
	fieldAnyBool   protowire.Number = 2
	fieldAnyInt    protowire.Number = 3
	fieldAnyDouble protowire.Number = 4
)

// clientReadsMessages reports whether the OTLP clients read the messages
// they are given for more than marshalling them: their experimental
// observability (OTEL_GO_X_OBSERVABILITY, "true" in any case, as the
// clients read it) counts the spans of each export.
func clientReadsMessages() bool {
	return strings.EqualFold(os.Getenv("OTEL_GO_X_OBSERVABILITY"), "true")
}

// wireGroup is the spans of one resource and scope in a batch, in order.
type wireGroup struct {
	res   *resource.Resource
	rkey  attribute.Distinct
	scope instrumentation.Scope
	spans []queuedSpan
}

// encode returns the batch as ResourceSpans messages whose content is
// their unknown fields, grouped as otlptrace groups the spans (by
// resource, then by scope, each in the order it first appears). The bytes
// live in the exporter's buffers, valid until the next batch.
func (e *otlpExporter) encode(ss []queuedSpan) []*tracepb.ResourceSpans {
	groups := e.groups[:0]
	for _, sd := range ss {
		var (
			res   *resource.Resource
			scope instrumentation.Scope
		)
		switch {
		case sd.fast != nil:
			res, scope = sd.fast.tracer.resource, sd.fast.tracer.scope
		case sd.sdk != nil:
			res, scope = sd.sdk.Resource(), sd.sdk.InstrumentationScope()
		default:
			continue
		}
		rkey := res.Equivalent()
		// A batch is mostly one group: the last one is tried first, then
		// the others, a handful at most.
		g := len(groups) - 1
		if g < 0 || groups[g].rkey != rkey || groups[g].scope != scope {
			for g = range groups {
				if groups[g].rkey == rkey && groups[g].scope == scope {
					break
				}
			}
			if len(groups) == 0 || groups[g].rkey != rkey || groups[g].scope != scope {
				if len(groups) < cap(groups) {
					groups = groups[:len(groups)+1]
					groups[len(groups)-1].spans = groups[len(groups)-1].spans[:0]
				} else {
					groups = append(groups, wireGroup{})
				}
				g = len(groups) - 1
				groups[g].res, groups[g].rkey, groups[g].scope = res, rkey, scope
			}
		}
		groups[g].spans = append(groups[g].spans, sd)
	}

	var rss []*tracepb.ResourceSpans
	buf := e.buf[:0]
	done := make([]bool, len(groups)) // a resource's groups are encoded with its first
	for i := range groups {
		if done[i] {
			continue
		}
		start := len(buf)
		res := groups[i].res
		if res != nil {
			buf = protowire.AppendTag(buf, fieldResourceSpansResource, protowire.BytesType)
			buf = protowire.AppendBytes(buf, e.resourceBytes(res))
		}
		for j := i; j < len(groups); j++ {
			if done[j] || groups[j].rkey != groups[i].rkey {
				continue
			}
			done[j] = true
			e.scopeSpans = e.appendScopeSpans(e.scopeSpans[:0], &groups[j])
			buf = protowire.AppendTag(buf, fieldResourceSpansScopeSpans, protowire.BytesType)
			buf = protowire.AppendBytes(buf, e.scopeSpans)
		}
		if url := res.SchemaURL(); url != "" {
			buf = protowire.AppendTag(buf, fieldResourceSpansSchemaURL, protowire.BytesType)
			buf = protowire.AppendString(buf, url)
		}
		rs := &tracepb.ResourceSpans{}
		// Full slice expression: a later append to buf never writes into
		// this message's bytes.
		rs.ProtoReflect().SetUnknown(buf[start:len(buf):len(buf)])
		rss = append(rss, rs)
	}
	// The spans are garbage once sent; a burst's buffers are not kept.
	for i := range groups {
		clear(groups[i].spans)
		if cap(groups[i].spans) > 2*sdktrace.DefaultMaxExportBatchSize {
			groups[i].spans = nil
		}
	}
	e.groups = groups[:0]
	if cap(buf) <= 1<<20 {
		e.buf = buf
	}
	return rss
}

// resourceBytes is r's Resource message as otlptrace makes it, encoded
// once per resource.
func (e *otlpExporter) resourceBytes(r *resource.Resource) []byte {
	k := r.Equivalent()
	b, ok := e.rawResources[k]
	if !ok {
		b, _ = proto.Marshal(e.resource(r)) // a message of ours: it marshals
		e.rawResources[k] = b
	}
	return b
}

// scopeBytes is is's InstrumentationScope message, encoded once per
// scope; nil for the zero scope, which otlptrace leaves out.
func (e *otlpExporter) scopeBytes(is instrumentation.Scope) []byte {
	b, ok := e.rawScopes[is]
	if !ok {
		if m := e.scope(is); m != nil {
			b, _ = proto.Marshal(m)
			if b == nil {
				b = []byte{} // an empty scope message is still written
			}
		}
		e.rawScopes[is] = b
	}
	return b
}

// appendScopeSpans appends g's ScopeSpans message.
func (e *otlpExporter) appendScopeSpans(b []byte, g *wireGroup) []byte {
	if sb := e.scopeBytes(g.scope); sb != nil {
		b = protowire.AppendTag(b, fieldScopeSpansScope, protowire.BytesType)
		b = protowire.AppendBytes(b, sb)
	}
	for _, sd := range g.spans {
		if sd.fast != nil {
			e.span = appendFastSpan(e.span[:0], sd.fast)
		} else {
			e.span = e.appendSpan(e.span[:0], sd.sdk)
		}
		b = protowire.AppendTag(b, fieldScopeSpansSpans, protowire.BytesType)
		b = protowire.AppendBytes(b, e.span)
	}
	if g.scope.SchemaURL != "" {
		b = protowire.AppendTag(b, fieldScopeSpansSchemaURL, protowire.BytesType)
		b = protowire.AppendString(b, g.scope.SchemaURL)
	}
	return b
}

// appendSpan appends sd's Span message, the fields as spanMessage.fill
// sets them.
func (e *otlpExporter) appendSpan(b []byte, sd sdktrace.ReadOnlySpan) []byte {
	sc := sd.SpanContext()
	b = appendSpanHead(b, sc, sd.Parent(), sd.Name(), sd.SpanKind(), sd.StartTime(), sd.EndTime(), sd.Attributes())
	b = appendVarintField(b, fieldSpanDroppedAttributes, uint64(clampUint32(sd.DroppedAttributes())))
	for _, ev := range spanEvents(sd.Events()) {
		b = appendMessageField(b, fieldSpanEvents, ev)
	}
	b = appendVarintField(b, fieldSpanDroppedEvents, uint64(clampUint32(sd.DroppedEvents())))
	for _, l := range spanLinks(sd.Links()) {
		b = appendMessageField(b, fieldSpanLinks, l)
	}
	b = appendVarintField(b, fieldSpanDroppedLinks, uint64(clampUint32(sd.DroppedLinks())))
	b = appendStatus(b, sd.Status())
	return appendFlags(b, sc.TraceFlags(), sd.Parent())
}

// appendSpanHead appends a Span message's fields up to its attributes, in
// field order: what the SDK's spans and the fast path's records share.
func appendSpanHead(b []byte, sc, parent trace.SpanContext, name string, kind trace.SpanKind, start, end time.Time, attrs []attribute.KeyValue) []byte {
	tid, sid := sc.TraceID(), sc.SpanID()
	b = protowire.AppendTag(b, fieldSpanTraceID, protowire.BytesType)
	b = protowire.AppendBytes(b, tid[:])
	b = protowire.AppendTag(b, fieldSpanSpanID, protowire.BytesType)
	b = protowire.AppendBytes(b, sid[:])
	b = appendStringField(b, fieldSpanTraceState, sc.TraceState().String())
	if p := parent.SpanID(); p.IsValid() {
		b = protowire.AppendTag(b, fieldSpanParentSpanID, protowire.BytesType)
		b = protowire.AppendBytes(b, p[:])
	}
	b = appendStringField(b, fieldSpanName, name)
	b = appendVarintField(b, fieldSpanKind, uint64(spanKind(kind)))
	b = appendFixed64Field(b, fieldSpanStartTime, uint64(max(0, start.UnixNano()))) //nolint:gosec // not negative
	b = appendFixed64Field(b, fieldSpanEndTime, uint64(max(0, end.UnixNano())))     //nolint:gosec // not negative
	for _, kv := range attrs {
		b = protowire.AppendTag(b, fieldSpanAttributes, protowire.BytesType)
		b = appendKeyValue(b, kv)
	}
	return b
}

// appendStatus appends a span's Status message, always there, empty when
// unset.
func appendStatus(b []byte, st sdktrace.Status) []byte {
	code := uint64(statusCode(st.Code))
	size := 0
	if st.Description != "" {
		size += protowire.SizeTag(fieldStatusMessage) + protowire.SizeBytes(len(st.Description))
	}
	if code != 0 {
		size += protowire.SizeTag(fieldStatusCode) + protowire.SizeVarint(code)
	}
	b = protowire.AppendTag(b, fieldSpanStatus, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	b = appendStringField(b, fieldStatusMessage, st.Description)
	return appendVarintField(b, fieldStatusCode, code)
}

// appendFlags appends a span's flags field.
func appendFlags(b []byte, tf trace.TraceFlags, parent trace.SpanContext) []byte {
	if flags := spanFlags(tf, parent); flags != 0 {
		b = protowire.AppendTag(b, fieldSpanFlags, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, flags)
	}
	return b
}

// appendKeyValue appends kv's KeyValue message, length first. A scalar is
// encoded here; a composite value (rare on a worker's spans) is
// marshalled from the message otlptrace would make.
func appendKeyValue(b []byte, kv attribute.KeyValue) []byte {
	keySize := 0
	if kv.Key != "" {
		keySize = protowire.SizeTag(fieldKeyValueKey) + protowire.SizeBytes(len(kv.Key))
	}
	var valueSize int
	switch kv.Value.Type() {
	case attribute.STRING:
		valueSize = protowire.SizeTag(fieldAnyString) + protowire.SizeBytes(len(kv.Value.AsString()))
	case attribute.BOOL:
		valueSize = protowire.SizeTag(fieldAnyBool) + 1
	case attribute.INT64:
		valueSize = protowire.SizeTag(fieldAnyInt) + protowire.SizeVarint(uint64(kv.Value.AsInt64())) //nolint:gosec // protobuf's int64 encoding
	case attribute.FLOAT64:
		valueSize = protowire.SizeTag(fieldAnyDouble) + protowire.SizeFixed64()
	default:
		value, _ := proto.Marshal(anyValue(kv.Value))
		b = protowire.AppendVarint(b, uint64(keySize+protowire.SizeTag(fieldKeyValueValue)+protowire.SizeBytes(len(value))))
		b = appendStringField(b, fieldKeyValueKey, string(kv.Key))
		b = protowire.AppendTag(b, fieldKeyValueValue, protowire.BytesType)
		return protowire.AppendBytes(b, value)
	}
	b = protowire.AppendVarint(b, uint64(keySize+protowire.SizeTag(fieldKeyValueValue)+protowire.SizeBytes(valueSize)))
	b = appendStringField(b, fieldKeyValueKey, string(kv.Key))
	b = protowire.AppendTag(b, fieldKeyValueValue, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(valueSize))
	// A oneof member is written even when it holds its type's zero.
	switch kv.Value.Type() {
	case attribute.STRING:
		b = protowire.AppendTag(b, fieldAnyString, protowire.BytesType)
		b = protowire.AppendString(b, kv.Value.AsString())
	case attribute.BOOL:
		b = protowire.AppendTag(b, fieldAnyBool, protowire.VarintType)
		b = protowire.AppendVarint(b, protowire.EncodeBool(kv.Value.AsBool()))
	case attribute.INT64:
		b = protowire.AppendTag(b, fieldAnyInt, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(kv.Value.AsInt64())) //nolint:gosec // protobuf's int64 encoding
	case attribute.FLOAT64:
		b = protowire.AppendTag(b, fieldAnyDouble, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, math.Float64bits(kv.Value.AsFloat64()))
	}
	return b
}

// The helpers below write a proto3 scalar field, nothing for its default.

func appendStringField(b []byte, n protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, n, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendVarintField(b []byte, n protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, n, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendFixed64Field(b []byte, n protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, n, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, v)
}

// appendMessageField appends a message that otlptrace's conversion made
// (an event, a link), marshalled as the client would.
func appendMessageField(b []byte, n protowire.Number, m proto.Message) []byte {
	mb, _ := proto.Marshal(m)
	b = protowire.AppendTag(b, n, protowire.BytesType)
	return protowire.AppendBytes(b, mb)
}
