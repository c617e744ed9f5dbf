package queue

import (
	"context"
	"encoding/json"
	"slices"
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

// The hand-written record encoder and its fast parse must be encoding/json,
// byte for byte and value for value: producers and conserver read these
// records with their own JSON libraries.
func TestTraceContextRecordMatchesEncodingJSON(t *testing.T) {
	for _, tc := range traceContextSamples {
		want, _ := json.Marshal(tc)
		if got := tc.JSON(); got != string(want) {
			t.Errorf("JSON() of %+v = %s, encoding/json writes %s", tc, got, want)
		}
	}
	for _, rec := range traceRecordSamples {
		checkRecordParse(t, rec)
	}
}

func FuzzTraceContextRecord(f *testing.F) {
	for _, tc := range traceContextSamples {
		f.Add(tc.TraceID, tc.SpanID, tc.TraceFlags, tc.IsSampled, tc.JSON())
	}
	for _, rec := range traceRecordSamples {
		f.Add("", "", 0, false, rec)
	}
	f.Fuzz(func(t *testing.T, traceID, spanID string, flags int, sampled bool, record string) {
		tc := TraceContext{TraceID: traceID, SpanID: spanID, TraceFlags: flags, IsSampled: sampled}
		want, _ := json.Marshal(tc)
		if got := tc.JSON(); got != string(want) {
			t.Fatalf("JSON() of %+v = %s, encoding/json writes %s", tc, got, want)
		}
		checkRecordParse(t, string(want))
		checkRecordParse(t, record)
		checkContextWithRecord(t, string(want))
		checkContextWithRecord(t, record)
	})
}

// checkContextWithRecord: ContextWithRecord gives the span context that
// ParseTraceContext then ContextWithRemote give, or none where they
// refuse the record.
func checkContextWithRecord(t *testing.T, rec string) {
	t.Helper()
	want := context.Background()
	if tc, err := ParseTraceContext(rec); err == nil {
		want = tc.ContextWithRemote(want)
	}
	if got := trace.SpanContextFromContext(ContextWithRecord(context.Background(), rec)); !got.Equal(trace.SpanContextFromContext(want)) {
		t.Fatalf("ContextWithRecord(%s) = %v, want %v", rec, got, trace.SpanContextFromContext(want))
	}
}

// checkRecordParse: where the fast parse accepts a record, encoding/json
// reads the same values from it.
func checkRecordParse(t *testing.T, rec string) {
	t.Helper()
	got, ok := parseRecord(rec)
	if !ok {
		return
	}
	var want TraceContext
	if err := json.Unmarshal([]byte(rec), &want); err != nil {
		t.Fatalf("parseRecord accepted %q, which encoding/json refuses: %v", rec, err)
	}
	if got != want {
		t.Fatalf("parseRecord(%q) = %+v, encoding/json reads %+v", rec, got, want)
	}
}

var traceContextSamples = []TraceContext{
	{TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7", TraceFlags: 1, IsSampled: true},
	{TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7"},
	{TraceID: "a<b>&c", SpanID: "q\"uote\\", TraceFlags: -3},
	{TraceID: "é\u2028", SpanID: "\x00\x7f", TraceFlags: 1 << 40},
	{},
}

var traceRecordSamples = []string{
	`{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","trace_flags":1,"is_sampled":true}`,
	`{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","trace_flags":0,"is_sampled":false}`,
	`{"trace_id":"x","span_id":"y","trace_flags":01,"is_sampled":true}`,
	`{"trace_id":"x","span_id":"y","trace_flags":-1,"is_sampled":true}`,
	`{"trace_id":"x","span_id":"y","trace_flags":1,"is_sampled":true} `,
	`{"trace_id":"x","span_id":"y","trace_flags":9999999999,"is_sampled":true}`,
	`{"span_id":"y","trace_id":"x","trace_flags":1,"is_sampled":true}`,
	`{"trace_id":"x\u0041","span_id":"y","trace_flags":1,"is_sampled":true}`,
	`{"trace_id":"","span_id":"","trace_flags":,"is_sampled":true}`,
	// The worker's own form, at its edges: ids refused (upper case, all
	// zeros, a non-hex digit), flags the int-to-byte truncation wraps or
	// of more digits than the fast read takes.
	`{"trace_id":"4BF92F3577B34DA6A3CE929D0E0E4736","span_id":"00f067aa0ba902b7","trace_flags":1,"is_sampled":true}`,
	`{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00F067AA0BA902B7","trace_flags":1,"is_sampled":true}`,
	`{"trace_id":"00000000000000000000000000000000","span_id":"00f067aa0ba902b7","trace_flags":1,"is_sampled":true}`,
	`{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"0000000000000000","trace_flags":1,"is_sampled":true}`,
	`{"trace_id":"4bf92f3577b34da6a3ce929d0e0e473g","span_id":"00f067aa0ba902b7","trace_flags":1,"is_sampled":true}`,
	`{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","trace_flags":257,"is_sampled":false}`,
	`{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","trace_flags":999,"is_sampled":true}`,
	`{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","trace_flags":1000,"is_sampled":true}`,
	`{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","trace_flags":00,"is_sampled":true}`,
	`{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","trace_flags":2,"is_sampled":true }`,
	`{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","trace_flags":2,"is_sampled":false`,
	`{"trace_id":"4bf92f3577b34da6a3ce929d0e0e47361","span_id":"00f067aa0ba902b7","trace_flags":1,"is_sampled":true}`,
	`{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","trace_flags":`,
}

// RecordFrom and ContextWithRecord are the traced worker's path for every
// vCon: they must read and write what TraceContextFrom, JSON,
// ParseTraceContext and ContextWithRemote do, and stay within one
// allocation for the record's text and the context's own (a value and
// its span context).
func TestTraceRecordPath(t *testing.T) {
	ids := trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:  trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
	}
	for _, flags := range []trace.TraceFlags{0, trace.FlagsSampled, 0xfe, 0xff} {
		cfg := ids
		cfg.TraceFlags = flags
		ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(cfg))
		tc, _ := TraceContextFrom(ctx)
		got, ok := RecordFrom(ctx)
		if !ok || got != tc.JSON() {
			t.Errorf("flags %#x: RecordFrom = %s (%v), want %s", flags, got, ok, tc.JSON())
		}
		if n := testing.AllocsPerRun(100, func() { _, _ = RecordFrom(ctx) }); n > 1 {
			t.Errorf("RecordFrom allocates %v times, want 1", n)
		}
		back := ContextWithRecord(context.Background(), got)
		parsed, err := ParseTraceContext(got)
		if err != nil {
			t.Fatal(err)
		}
		want := trace.SpanContextFromContext(parsed.ContextWithRemote(context.Background()))
		if sc := trace.SpanContextFromContext(back); !sc.Equal(want) || !sc.IsRemote() {
			t.Errorf("flags %#x: ContextWithRecord gives %v, ParseTraceContext and ContextWithRemote %v", flags, sc, want)
		}
		if n := testing.AllocsPerRun(100, func() { _ = ContextWithRecord(context.Background(), got) }); n > 2 {
			t.Errorf("ContextWithRecord allocates %v times, want at most 2", n)
		}
	}
	if _, ok := RecordFrom(context.Background()); ok {
		t.Error("RecordFrom without a span must report false")
	}
	for _, rec := range append(slices.Clone(traceRecordSamples), `{"span_id":"00f067aa0ba902b7","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","is_sampled":true}`, "not json") {
		t.Run(rec, func(t *testing.T) { checkContextWithRecord(t, rec) })
	}
}

// BenchmarkContextWithRecord is the traced worker's read of a producer's
// record, once per vCon.
func BenchmarkContextWithRecord(b *testing.B) {
	ctx := context.Background()
	b.ReportAllocs()
	for range b.N {
		_ = ContextWithRecord(ctx, traceRecordSamples[0])
	}
}
