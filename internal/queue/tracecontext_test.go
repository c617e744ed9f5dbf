package queue

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

func TestTraceContextRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		record  string
		wantErr bool
	}{
		{"conserver record", `{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","trace_flags":1,"is_sampled":true}`, false},
		{"unsampled", `{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","trace_flags":0,"is_sampled":false}`, false},
		{"bad trace id", `{"trace_id":"zz","span_id":"00f067aa0ba902b7"}`, true},
		{"zero span id", `{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"0000000000000000"}`, true},
		{"not json", `trace`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc, err := ParseTraceContext(tt.record)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseTraceContext err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			ctx := tc.ContextWithRemote(context.Background())
			sc := trace.SpanContextFromContext(ctx)
			if sc.TraceID().String() != tc.TraceID || sc.SpanID().String() != tc.SpanID || sc.IsSampled() != tc.IsSampled {
				t.Fatalf("remote span context %v does not match %+v", sc, tc)
			}
			back, ok := TraceContextFrom(ctx)
			if !ok || back != tc {
				t.Fatalf("TraceContextFrom = %+v, %v; want %+v", back, ok, tc)
			}
		})
	}
	if _, ok := TraceContextFrom(context.Background()); ok {
		t.Fatal("TraceContextFrom without a span must report false")
	}
}
