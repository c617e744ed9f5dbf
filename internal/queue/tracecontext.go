package queue

import (
	"context"
	"encoding/json"
	"fmt"

	"go.opentelemetry.io/otel/trace"
)

// TraceContext is conserver's JSON record of a span, stored in the list
// context:{list}:{uuid} beside a queued uuid (producers RPUSH it before
// enqueueing; the consumer LPOPs it).
type TraceContext struct {
	TraceID    string `json:"trace_id"`
	SpanID     string `json:"span_id"`
	TraceFlags int    `json:"trace_flags"`
	IsSampled  bool   `json:"is_sampled"`
}

// TraceContextFrom returns the trace context of the current span; false when
// there is no valid span (conserver writes the record only when one exists).
func TraceContextFrom(ctx context.Context) (TraceContext, bool) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return TraceContext{}, false
	}
	return TraceContext{
		TraceID:    sc.TraceID().String(),
		SpanID:     sc.SpanID().String(),
		TraceFlags: int(sc.TraceFlags()),
		IsSampled:  sc.IsSampled(),
	}, true
}

// JSON encodes the record as conserver writes it.
func (tc TraceContext) JSON() string {
	b, _ := json.Marshal(tc)
	return string(b)
}

// ParseTraceContext decodes a record, checking the ids.
func ParseTraceContext(s string) (TraceContext, error) {
	var tc TraceContext
	if err := json.Unmarshal([]byte(s), &tc); err != nil {
		return TraceContext{}, fmt.Errorf("trace context: %w", err)
	}
	if _, err := tc.spanContext(); err != nil {
		return TraceContext{}, err
	}
	return tc, nil
}

func (tc TraceContext) spanContext() (trace.SpanContext, error) {
	tid, err := trace.TraceIDFromHex(tc.TraceID)
	if err != nil {
		return trace.SpanContext{}, fmt.Errorf("trace context: trace_id: %w", err)
	}
	sid, err := trace.SpanIDFromHex(tc.SpanID)
	if err != nil {
		return trace.SpanContext{}, fmt.Errorf("trace context: span_id: %w", err)
	}
	flags := trace.TraceFlags(byte(tc.TraceFlags))
	if tc.IsSampled {
		flags = flags.WithSampled(true)
	}
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: flags, Remote: true}), nil
}

// ContextWithRemote returns ctx with the record as the remote parent, so the
// next span started from it continues the producer's trace. An invalid
// record leaves ctx unchanged.
func (tc TraceContext) ContextWithRemote(ctx context.Context) context.Context {
	sc, err := tc.spanContext()
	if err != nil {
		return ctx
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc)
}
