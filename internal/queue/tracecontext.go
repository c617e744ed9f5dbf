package queue

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

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

// RecordFrom is the record of the current span, TraceContextFrom(ctx).JSON()
// made in one allocation (its text): a traced worker writes one per egress
// list of every vCon. false when there is no valid span.
func RecordFrom(ctx context.Context) (string, bool) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return "", false
	}
	tid, sid := sc.TraceID(), sc.SpanID()
	var buf [len(recordTraceID) + 2*len(tid) + len(recordSpanID) + 2*len(sid) + len(recordFlags) + 3 + len(recordSampled) + len("false}")]byte
	b := append(buf[:0], recordTraceID...)
	b = hex.AppendEncode(b, tid[:])
	b = append(b, recordSpanID...)
	b = hex.AppendEncode(b, sid[:])
	b = append(b, recordFlags...)
	b = strconv.AppendUint(b, uint64(sc.TraceFlags()), 10)
	b = append(b, recordSampled...)
	if sc.IsSampled() {
		b = append(b, "true}"...)
	} else {
		b = append(b, "false}"...)
	}
	return string(b), true
}

// ContextWithRecord returns ctx with the span of record (as a producer
// wrote it) as the remote parent, parsed once; a record that does not
// parse leaves ctx unchanged, as ParseTraceContext then ContextWithRemote.
func ContextWithRecord(ctx context.Context, record string) context.Context {
	if sc, ok := spanContextOfRecord(record); ok {
		return trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	tc, ok := parseRecord(record)
	if !ok {
		if tc, ok = parseRecordJSON(record); !ok {
			return ctx
		}
	}
	sc, err := tc.spanContext()
	if err != nil {
		return ctx
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc)
}

// parseRecordJSON reads a record in any form encoding/json reads. Apart
// from ContextWithRecord so that its record, handed to encoding/json,
// does not move to the heap in the usual case, where parseRecord reads it.
func parseRecordJSON(record string) (tc TraceContext, ok bool) {
	return tc, json.Unmarshal([]byte(record), &tc) == nil
}

// JSON encodes the record as conserver writes it, byte for byte what
// encoding/json makes of it. A traced vCon writes one record per egress
// list and reads one per take: built by hand (one allocation) instead of
// by reflection, they cost a fraction of it.
func (tc TraceContext) JSON() string {
	if !plainJSONString(tc.TraceID) || !plainJSONString(tc.SpanID) {
		// Ids that need escaping are never ours (TraceContextFrom
		// writes hex); encoding/json escapes them as it always did.
		b, _ := json.Marshal(tc)
		return string(b)
	}
	var b strings.Builder
	b.Grow(len(recordTraceID) + len(tc.TraceID) + len(recordSpanID) + len(tc.SpanID) + len(recordFlags) + 20 + len(recordSampled) + len("false}"))
	b.WriteString(recordTraceID)
	b.WriteString(tc.TraceID)
	b.WriteString(recordSpanID)
	b.WriteString(tc.SpanID)
	b.WriteString(recordFlags)
	var num [20]byte
	b.Write(strconv.AppendInt(num[:0], int64(tc.TraceFlags), 10))
	b.WriteString(recordSampled)
	if tc.IsSampled {
		b.WriteString("true}")
	} else {
		b.WriteString("false}")
	}
	return b.String()
}

// The record's fixed parts, in the order encoding/json writes the fields.
const (
	recordTraceID = `{"trace_id":"`
	recordSpanID  = `","span_id":"`
	recordFlags   = `","trace_flags":`
	recordSampled = `,"is_sampled":`
)

// plainJSONString reports whether s encodes as itself between quotes in
// encoding/json's output: printable ASCII without the characters it
// escapes (quote, backslash, and the HTML characters <, > and &).
func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// parseRecord reads a record in exactly the form JSON writes (the form
// conserver and every producer of ours write), without reflection. ok is
// false for anything else (other field order, spaces, escapes, numbers
// with signs or leading zeros), which ParseTraceContext leaves to
// encoding/json, so that the result is always encoding/json's.
func parseRecord(s string) (tc TraceContext, ok bool) {
	var rest string
	if rest, ok = strings.CutPrefix(s, recordTraceID); !ok {
		return TraceContext{}, false
	}
	if tc.TraceID, rest, ok = strings.Cut(rest, recordSpanID); !ok || !plainJSONString(tc.TraceID) {
		return TraceContext{}, false
	}
	if tc.SpanID, rest, ok = strings.Cut(rest, recordFlags); !ok || !plainJSONString(tc.SpanID) {
		return TraceContext{}, false
	}
	if tc.TraceFlags, tc.IsSampled, ok = recordTail(rest); !ok {
		return TraceContext{}, false
	}
	return tc, true
}

// recordTail reads what follows a record's "trace_flags": the flags and
// whether the span is sampled, in exactly the form JSON writes them.
func recordTail(rest string) (flags int, sampled, ok bool) {
	digits, rest, ok := strings.Cut(rest, recordSampled)
	// At most 9 digits always fit an int; a leading zero is not JSON.
	if !ok || len(digits) == 0 || len(digits) > 9 || (digits[0] == '0' && len(digits) > 1) {
		return 0, false, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false, false
		}
	}
	flags, _ = strconv.Atoi(digits)
	switch rest {
	case "true}":
		return flags, true, true
	case "false}":
		return flags, false, true
	}
	return 0, false, false
}

// remoteSpanContext is the remote parent a record names: its flags
// truncated to a byte, the sampled bit set when it says so.
func remoteSpanContext(tid trace.TraceID, sid trace.SpanID, flags int, sampled bool) trace.SpanContext {
	f := trace.TraceFlags(byte(flags)) //nolint:gosec // truncated, as it always was
	if sampled {
		f = f.WithSampled(true)
	}
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: f, Remote: true})
}

// spanContextOfRecord reads the span context of a record as the worker
// and conserver write it (JSON's form, lower-case hex ids, flags of at
// most three digits), straight from the fixed offsets of its parts into
// the ids: a traced worker reads one per vCon, and going through
// parseRecord's cuts and the hex ids' strings cost it several times more.
// ok is false for any other record, and for ids that trace.TraceIDFromHex
// or SpanIDFromHex refuse (all zeros), which ContextWithRecord then reads
// the slow way, to the same result.
func spanContextOfRecord(s string) (sc trace.SpanContext, ok bool) {
	const (
		tidAt   = len(recordTraceID)
		sidAt   = tidAt + 32 + len(recordSpanID)
		flagsAt = sidAt + 16 + len(recordFlags)
	)
	if len(s) < flagsAt+1+len(recordSampled)+len("true}") ||
		s[:tidAt] != recordTraceID || s[tidAt+32:tidAt+32+len(recordSpanID)] != recordSpanID || s[sidAt+16:flagsAt] != recordFlags {
		return trace.SpanContext{}, false
	}
	var tid trace.TraceID
	var sid trace.SpanID
	if !lowerHex(tid[:], s[tidAt:tidAt+32]) || !lowerHex(sid[:], s[sidAt:sidAt+16]) || !tid.IsValid() || !sid.IsValid() {
		return trace.SpanContext{}, false
	}
	flags, sampled, ok := recordTail(s[flagsAt:])
	if !ok {
		return trace.SpanContext{}, false
	}
	return remoteSpanContext(tid, sid, flags, sampled), true
}

// lowerHex decodes src, lower-case hex digits only (as trace.TraceIDFromHex
// accepts them), into dst, len(src)/2 bytes; false for any other byte.
func lowerHex(dst []byte, src string) bool {
	for i := range dst {
		hi, ok1 := lowerHexDigit(src[2*i])
		lo, ok2 := lowerHexDigit(src[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func lowerHexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// ParseTraceContext decodes a record, checking the ids.
func ParseTraceContext(s string) (TraceContext, error) {
	tc, ok := parseRecord(s)
	if !ok {
		if err := json.Unmarshal([]byte(s), &tc); err != nil {
			return TraceContext{}, fmt.Errorf("trace context: %w", err)
		}
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
	return remoteSpanContext(tid, sid, tc.TraceFlags, tc.IsSampled), nil
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
