package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// spanScenario is a sequence of span operations on a tracer provider; it
// notes what it observes of the spans (IsRecording, span contexts), which
// must be the same on both paths too.
type spanScenario struct {
	name string
	run  func(tp trace.TracerProvider, note func(string, ...any))
}

// givenTime is the earliest time a scenario gives a span or an event:
// times from it on are compared as they are, earlier ones (the clock's)
// only checked.
var givenTime = time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)

var (
	remoteSampled = trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 1}, SpanID: trace.SpanID{0x00, 0xf0, 2}, TraceFlags: trace.FlagsSampled, Remote: true,
		TraceState: mustTraceState("vendor=a,other=b"),
	}))
	remoteUnsampled = trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 3}, SpanID: trace.SpanID{0x00, 0xf0, 4}, Remote: true,
	}))
	localSampled = trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 5}, SpanID: trace.SpanID{0x00, 0xf0, 6}, TraceFlags: trace.FlagsSampled | 0x02,
	}))
	localUnsampled = trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 7}, SpanID: trace.SpanID{0x00, 0xf0, 8},
	}))
)

func mustTraceState(s string) trace.TraceState {
	ts, err := trace.ParseTraceState(s)
	if err != nil {
		panic(err)
	}
	return ts
}

const scopeName = "github.com/vcon-operator/vcon-operator/internal/pipeline"

// observe notes what a span shows of itself.
func observe(note func(string, ...any), what string, s trace.Span) {
	sc := s.SpanContext()
	note("%s: recording=%v valid=%v sampled=%v remote=%v flags=%02x state=%q", what, s.IsRecording(), sc.IsValid(), sc.IsSampled(), sc.IsRemote(), byte(sc.TraceFlags()), sc.TraceState().String())
}

func manyAttributes(n, distinct int) []attribute.KeyValue {
	kvs := make([]attribute.KeyValue, n)
	for i := range kvs {
		kvs[i] = attribute.Int(fmt.Sprintf("k%d", i%distinct), i)
	}
	return kvs
}

type scenarioError struct{ msg string }

func (e *scenarioError) Error() string { return e.msg }

var spanScenarios = []spanScenario{
	{"plain root", func(tp trace.TracerProvider, note func(string, ...any)) {
		_, s := tp.Tracer(scopeName).Start(context.Background(), "root")
		observe(note, "started", s)
		s.End()
		observe(note, "ended", s)
	}},
	{"worker's spans under a remote sampled parent", func(tp trace.TracerProvider, note func(string, ...any)) {
		tr := tp.Tracer(scopeName)
		ctx, p := tr.Start(remoteSampled, "vcon.process main", trace.WithSpanKind(trace.SpanKindConsumer))
		p.SetAttributes(attribute.String("vcon.chain", "main"), attribute.String("vcon.ingress_list", "in"))
		p.SetAttributes(attribute.String("vcon.uuid", "u-1"))
		_, l := tr.Start(ctx, "link tag")
		l.SetAttributes(attribute.String("vcon.link", "tag"), attribute.String("vcon.outcome", "continue"))
		l.End()
		_, st := tr.Start(ctx, "storage copy", trace.WithAttributes(attribute.String("vcon.storage", "copy")))
		st.SetStatus(codes.Error, "storage write failed")
		st.End()
		p.SetStatus(codes.Error, "storage_failed")
		p.SetAttributes(attribute.String("vcon.retry_reason", "storage_failed"), attribute.Int("vcon.attempt", 2))
		p.SetAttributes(attribute.Bool("vcon.filtered", false))
		observe(note, "process", p)
		observe(note, "link", l)
		p.End()
	}},
	{"remote parent not sampled", func(tp trace.TracerProvider, note func(string, ...any)) {
		ctx, s := tp.Tracer(scopeName).Start(remoteUnsampled, "unsampled")
		s.SetAttributes(attribute.Int("a", 1))
		s.AddEvent("e")
		observe(note, "unsampled", s)
		_, c := tp.Tracer(scopeName).Start(ctx, "child")
		observe(note, "child", c)
		c.End()
		s.End()
	}},
	{"local parents", func(tp trace.TracerProvider, note func(string, ...any)) {
		_, s := tp.Tracer(scopeName).Start(localSampled, "local sampled", trace.WithSpanKind(trace.SpanKindServer))
		observe(note, "local sampled", s)
		s.End()
		_, u := tp.Tracer(scopeName).Start(localUnsampled, "local unsampled")
		observe(note, "local unsampled", u)
		u.End()
	}},
	{"new root under a parent", func(tp trace.TracerProvider, note func(string, ...any)) {
		_, s := tp.Tracer(scopeName).Start(remoteSampled, "new root", trace.WithNewRoot())
		observe(note, "new root", s)
		s.End()
	}},
	{"kinds", func(tp trace.TracerProvider, note func(string, ...any)) {
		for _, k := range []trace.SpanKind{trace.SpanKindUnspecified, trace.SpanKindInternal, trace.SpanKindServer, trace.SpanKindClient, trace.SpanKindProducer, trace.SpanKindConsumer, trace.SpanKind(42)} {
			_, s := tp.Tracer(scopeName).Start(context.Background(), fmt.Sprint("kind ", int(k)), trace.WithSpanKind(k))
			s.End()
		}
	}},
	{"duplicate attributes", func(tp trace.TracerProvider, note func(string, ...any)) {
		_, s := tp.Tracer(scopeName).Start(context.Background(), "dup", trace.WithAttributes(attribute.String("a", "start"), attribute.String("a", "start2")))
		s.SetAttributes(attribute.Int("b", 1), attribute.String("a", "set"))
		s.SetAttributes(attribute.Bool("b", true), attribute.Float64("c", 1.5))
		s.SetAttributes()
		s.End()
	}},
	{"more attributes than a fast span holds", func(tp trace.TracerProvider, note func(string, ...any)) {
		_, s := tp.Tracer(scopeName).Start(context.Background(), "many", trace.WithAttributes(manyAttributes(4, 3)...))
		s.SetStatus(codes.Error, "before")
		s.SetName("renamed")
		s.SetAttributes(manyAttributes(9, 7)...)
		s.SetAttributes(attribute.String("k1", "last"))
		observe(note, "many", s)
		s.End()
		_, big := tp.Tracer(scopeName).Start(context.Background(), "start over", trace.WithAttributes(manyAttributes(fastAttributeCap+1, 100)...))
		big.End()
	}},
	{"over the SDK's attribute limit", func(tp trace.TracerProvider, note func(string, ...any)) {
		_, s := tp.Tracer(scopeName).Start(context.Background(), "limit")
		s.SetAttributes(manyAttributes(3, 3)...)
		s.SetAttributes(manyAttributes(140, 130)...)
		s.SetAttributes(attribute.Int("k0", -1), attribute.Int("new", 1))
		s.End()
	}},
	{"invalid and composite attributes", func(tp trace.TracerProvider, note func(string, ...any)) {
		_, s := tp.Tracer(scopeName).Start(context.Background(), "composite", trace.WithAttributes(attribute.String("", "no key")))
		s.End()
		_, c := tp.Tracer(scopeName).Start(context.Background(), "slices")
		c.SetAttributes(attribute.String("s", "x"))
		c.SetAttributes(attribute.StringSlice("ss", []string{"a", "b"}), attribute.Int64Slice("is", []int64{1}), attribute.KeyValue{Key: "empty"})
		c.SetAttributes(attribute.String("s", "y"))
		c.End()
	}},
	{"events", func(tp trace.TracerProvider, note func(string, ...any)) {
		_, s := tp.Tracer(scopeName).Start(context.Background(), "events", trace.WithAttributes(attribute.String("a", "1")))
		s.AddEvent("first", trace.WithAttributes(attribute.Int("n", 1), attribute.Int("n", 2)), trace.WithTimestamp(givenTime))
		s.AddEvent("second")
		s.SetAttributes(attribute.String("after", "event"))
		for i := range 130 {
			s.AddEvent(fmt.Sprint("e", i), trace.WithTimestamp(givenTime.Add(time.Duration(i))))
		}
		s.End()
	}},
	{"errors recorded", func(tp trace.TracerProvider, note func(string, ...any)) {
		_, s := tp.Tracer(scopeName).Start(context.Background(), "errors")
		s.RecordError(nil)
		s.End()
		_, e := tp.Tracer(scopeName).Start(context.Background(), "recorded")
		e.RecordError(errors.New("plain"))
		e.RecordError(&scenarioError{"typed"}, trace.WithAttributes(attribute.String("extra", "x")), trace.WithStackTrace(true))
		e.SetStatus(codes.Error, "failed")
		e.End()
	}},
	{"status transitions", func(tp trace.TracerProvider, note func(string, ...any)) {
		for i, seq := range [][]codes.Code{
			{codes.Unset}, {codes.Ok}, {codes.Error}, {codes.Error, codes.Unset}, {codes.Error, codes.Ok, codes.Error},
			{codes.Ok, codes.Error}, {codes.Error, codes.Error}, {codes.Code(7)},
		} {
			_, s := tp.Tracer(scopeName).Start(context.Background(), fmt.Sprint("status ", i))
			for j, c := range seq {
				s.SetStatus(c, fmt.Sprint("description ", j))
			}
			s.End()
		}
		_, m := tp.Tracer(scopeName).Start(context.Background(), "status then event")
		m.SetStatus(codes.Ok, "")
		m.AddEvent("e")
		m.SetStatus(codes.Error, "ignored")
		m.End()
	}},
	{"links", func(tp trace.TracerProvider, note func(string, ...any)) {
		linked := trace.SpanContextFromContext(remoteSampled)
		_, s := tp.Tracer(scopeName).Start(context.Background(), "start links", trace.WithLinks(trace.Link{SpanContext: linked, Attributes: []attribute.KeyValue{attribute.Int("l", 1)}}))
		s.End()
		_, a := tp.Tracer(scopeName).Start(context.Background(), "added links")
		a.AddLink(trace.Link{})
		a.SetAttributes(attribute.Int("before", 1))
		a.AddLink(trace.Link{SpanContext: trace.SpanContextFromContext(remoteUnsampled)})
		a.End()
		_, e := tp.Tracer(scopeName).Start(context.Background(), "empty link only")
		e.AddLink(trace.Link{})
		e.End()
	}},
	{"given times and End twice", func(tp trace.TracerProvider, note func(string, ...any)) {
		_, s := tp.Tracer(scopeName).Start(context.Background(), "timed", trace.WithTimestamp(givenTime))
		s.End(trace.WithTimestamp(givenTime.Add(time.Second)))
		s.End(trace.WithTimestamp(givenTime.Add(2 * time.Second)))
		_, z := tp.Tracer(scopeName).Start(context.Background(), "zero end time given")
		z.End(trace.WithTimestamp(time.Time{}))
	}},
	{"operations after End", func(tp trace.TracerProvider, note func(string, ...any)) {
		_, s := tp.Tracer(scopeName).Start(context.Background(), "ended")
		s.SetAttributes(attribute.Int("before", 1))
		s.End()
		s.SetAttributes(attribute.Int("after", 1))
		s.SetStatus(codes.Error, "after")
		s.SetName("after")
		s.AddEvent("after")
		s.RecordError(errors.New("after"))
		s.AddLink(trace.Link{SpanContext: trace.SpanContextFromContext(remoteSampled)})
		s.End()
		observe(note, "ended", s)
		_, m := tp.Tracer(scopeName).Start(context.Background(), "ended after becoming the SDK's")
		m.AddEvent("e")
		m.End()
		m.SetAttributes(attribute.Int("after", 1))
		m.End()
		observe(note, "ended sdk", m)
	}},
	{"panic while ending", func(tp trace.TracerProvider, note func(string, ...any)) {
		for _, stack := range []bool{false, true} {
			func() {
				defer func() { note("recovered %v", recover()) }()
				_, s := tp.Tracer(scopeName).Start(context.Background(), fmt.Sprint("panicking ", stack))
				defer s.End(trace.WithStackTrace(stack))
				panic(fmt.Sprint("boom ", stack))
			}()
			func() {
				defer func() { note("recovered %v", recover()) }()
				_, s := tp.Tracer(scopeName).Start(context.Background(), fmt.Sprint("panicking after event ", stack))
				s.AddEvent("e")
				defer s.End(trace.WithStackTrace(stack))
				panic(&scenarioError{"typed"})
			}()
		}
	}},
	{"scopes", func(tp trace.TracerProvider, note func(string, ...any)) {
		for _, tr := range []trace.Tracer{
			tp.Tracer(""),
			tp.Tracer("versioned", trace.WithInstrumentationVersion("1.2.3"), trace.WithSchemaURL("https://opentelemetry.io/schemas/1.26.0")),
			tp.Tracer("attributed", trace.WithInstrumentationAttributes(attribute.String("x", "y"))),
			tp.Tracer(scopeName),
		} {
			_, s := tr.Start(context.Background(), "scoped")
			s.End()
			_, m := tr.Start(context.Background(), "scoped sdk")
			m.AddEvent("e")
			m.End()
		}
		note("same tracer twice: %v", tp.Tracer(scopeName) == tp.Tracer(scopeName))
	}},
	{"span's provider", func(tp trace.TracerProvider, note func(string, ...any)) {
		_, s := tp.Tracer(scopeName).Start(context.Background(), "outer")
		_, c := s.TracerProvider().Tracer(scopeName).Start(trace.ContextWithSpan(context.Background(), s), "from the span's provider")
		c.End()
		s.End()
	}},
}

// exportScenario runs a scenario on a provider exporting over OTLP
// http/protobuf to a receiver, on the fast path or the SDK's, and returns
// what the receiver decoded, normalized, and the notes.
func exportScenario(t *testing.T, sc spanScenario, fast, alwaysOn bool) (*coltracepb.ExportTraceServiceRequest, []string) {
	t.Helper()
	ctx := context.Background()
	rcv, exp := exportToReceiver(t)
	res := resource.NewSchemaless(attribute.String("service.name", "differential"))
	tp, shutdown := newTracerProvider(res, exp, batchOptionsFromEnv(), fast, alwaysOn)
	if _, isFast := tp.(*fastProvider); isFast != fast {
		t.Fatalf("fast path %v, want %v", isFast, fast)
	}
	var notes []string
	sc.run(tp, func(f string, args ...any) { notes = append(notes, fmt.Sprintf(f, args...)) })
	if err := shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	reqs, _ := rcv.take()
	all := &coltracepb.ExportTraceServiceRequest{}
	for _, r := range reqs {
		all.ResourceSpans = append(all.ResourceSpans, r.ResourceSpans...)
	}
	normalize(t, all)
	return all, notes
}

// normalize replaces the ids a provider made by their order of first
// appearance (the producers' stay), and the times the clock gave by zero,
// after checking them: ids valid, a span's start before its end, events
// in between; stack traces by a mark.
func normalize(t *testing.T, req *coltracepb.ExportTraceServiceRequest) {
	t.Helper()
	given := uint64(givenTime.UnixNano()) //nolint:gosec // after 1970
	ids := map[string][]byte{}
	for _, p := range []context.Context{remoteSampled, remoteUnsampled, localSampled, localUnsampled} {
		sc := trace.SpanContextFromContext(p)
		tid, sid := sc.TraceID(), sc.SpanID()
		ids[string(tid[:])], ids[string(sid[:])] = tid[:], sid[:]
	}
	id := func(b []byte, size int) []byte {
		if len(b) != size || strings.Count(string(b), "\x00") == size {
			t.Errorf("id %x is not a valid %d-byte id", b, size)
		}
		if n, ok := ids[string(b)]; ok {
			return n
		}
		n := make([]byte, size)
		n[size-1] = byte(len(ids))
		n[0] = 0xee
		ids[string(b)] = n
		return n
	}
	clock := func(v uint64) uint64 {
		if v >= given {
			return v
		}
		if v == 0 {
			t.Error("a time is not set")
		}
		return 0
	}
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				if s.StartTimeUnixNano > s.EndTimeUnixNano {
					t.Errorf("span %q ends before it starts", s.Name)
				}
				s.TraceId, s.SpanId = id(s.TraceId, 16), id(s.SpanId, 8)
				if s.ParentSpanId != nil {
					s.ParentSpanId = id(s.ParentSpanId, 8)
				}
				for _, e := range s.Events {
					if e.TimeUnixNano < given && e.TimeUnixNano < s.StartTimeUnixNano {
						t.Errorf("span %q: event %q before the start", s.Name, e.Name)
					}
					e.TimeUnixNano = clock(e.TimeUnixNano)
					for _, kv := range e.Attributes {
						if kv.Key == "exception.stacktrace" {
							if !strings.Contains(kv.Value.GetStringValue(), "goroutine") {
								t.Errorf("span %q: no stack trace in %q", s.Name, kv.Value.GetStringValue())
							}
							kv.Value = &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "<stack>"}}
						}
					}
				}
				for _, l := range s.Links {
					l.TraceId, l.SpanId = id(l.TraceId, 16), id(l.SpanId, 8)
				}
				s.StartTimeUnixNano, s.EndTimeUnixNano = clock(s.StartTimeUnixNano), clock(s.EndTimeUnixNano)
			}
		}
	}
}

// TestFastPathExportsWhatTheSDKExports: each scenario's spans, through
// the SDK and through the fast path, reach an OTLP receiver as the same
// messages, apart from the ids and times each makes (checked valid and
// ordered), under both samplers the fast path takes.
func TestFastPathExportsWhatTheSDKExports(t *testing.T) {
	for _, sampler := range []string{"parentbased_always_on", "always_on"} {
		for _, sc := range spanScenarios {
			t.Run(sampler+"/"+sc.name, func(t *testing.T) {
				t.Setenv("OTEL_TRACES_SAMPLER", sampler)
				// The configuration the fast path is chosen in.
				for _, k := range []string{"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_GO_X_OBSERVABILITY", "OTEL_GO_X_SELF_OBSERVABILITY"} {
					t.Setenv(k, "")
				}
				want, wantNotes := exportScenario(t, sc, false, false)
				got, gotNotes := exportScenario(t, sc, true, sampler == "always_on")
				if !proto.Equal(want, got) {
					t.Errorf("exports differ:\nSDK:  %s\nfast: %s", prototext.Format(want), prototext.Format(got))
				}
				if strings.Join(wantNotes, "\n") != strings.Join(gotNotes, "\n") {
					t.Errorf("observed differently:\nSDK:\n%s\nfast:\n%s", strings.Join(wantNotes, "\n"), strings.Join(gotNotes, "\n"))
				}
				if len(want.ResourceSpans) == 0 && sc.name != "remote parent not sampled" {
					t.Error("nothing exported")
				}
			})
		}
	}
}

// A fast span that becomes the SDK's keeps its span context.
func TestFastSpanBecomingTheSDKsKeepsItsIDs(t *testing.T) {
	res := resource.NewSchemaless()
	exp, err := newOTLPExporter(context.Background(), &captureClient{})
	if err != nil {
		t.Fatal(err)
	}
	tp, shutdown := newTracerProvider(res, exp, batchOptionsFromEnv(), true, false)
	defer func() { _ = shutdown(context.Background()) }()
	_, s := tp.Tracer(scopeName).Start(remoteSampled, "x")
	before := s.SpanContext()
	s.AddEvent("e")
	fs := s.(*fastSpan)
	if fs.sdk == nil || !fs.sdk.SpanContext().Equal(before) {
		t.Errorf("the SDK's span has %v, the fast span had %v", fs.sdk.SpanContext(), before)
	}
	s.End()
}

// The fast path is chosen only where it exports what the SDK would.
func TestSetupChoosesTheFastPathOnlyWhereExact(t *testing.T) {
	srv := httptest.NewServer(&receiver{})
	defer srv.Close()
	for _, tc := range []struct {
		env  map[string]string
		fast bool
	}{
		{map[string]string{}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, true},
		{map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_always_on"}, true},
		{map[string]string{"OTEL_TRACES_SAMPLER": " Always_On "}, true},
		{map[string]string{"OTEL_TRACES_SAMPLER": "always_off"}, false},
		{map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_always_off"}, false},
		{map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1"}, false},
		{map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio"}, false},
		{map[string]string{"OTEL_TRACES_SAMPLER": "unknown"}, false},
		{map[string]string{"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "200"}, false},
		{map[string]string{"OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "10"}, false},
		{map[string]string{"OTEL_ATTRIBUTE_COUNT_LIMIT": "3"}, false},
		{map[string]string{"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "10"}, false},
		{map[string]string{"OTEL_GO_X_OBSERVABILITY": "true"}, false},
		{map[string]string{"OTEL_GO_X_SELF_OBSERVABILITY": "true"}, false},
		{map[string]string{"OTEL_TRACES_EXPORTER": "console"}, false},
	} {
		t.Run(fmt.Sprint(tc.env), func(t *testing.T) {
			for _, k := range []string{"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_GO_X_OBSERVABILITY", "OTEL_GO_X_SELF_OBSERVABILITY"} {
				t.Setenv(k, tc.env[k])
			}
			env := map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": srv.URL + "/v1/traces", "OTEL_METRICS_EXPORTER": "none"}
			for k, v := range tc.env {
				env[k] = v
			}
			shutdown := setup(t, env)
			defer func() { _ = shutdown(context.Background()) }()
			tp := otel.GetTracerProvider()
			if _, fast := tp.(*fastProvider); fast != tc.fast {
				t.Errorf("fast path %v (%T), want %v", fast, tp, tc.fast)
			}
			if _, sdk := tp.(*sdktrace.TracerProvider); !tc.fast && !sdk {
				t.Errorf("provider %T, want the SDK's", tp)
			}
		})
	}
}

// ForceFlush exports every span ended before it, of both kinds; Shutdown
// exports what is still queued and drops what ends after.
func TestFastPathFlushAndShutdownExportEverything(t *testing.T) {
	ctx := context.Background()
	rcv, exp := exportToReceiver(t)
	// A schedule far off and batches larger than the spans: only a
	// flush or the shutdown exports.
	opts := batchOptions{delay: time.Hour, timeout: 10 * time.Second, maxQueue: 1000, maxBatch: 1000}
	tp, shutdown := newTracerProvider(resource.NewSchemaless(), exp, opts, true, false)
	fp := tp.(*fastProvider)
	tr := tp.Tracer(scopeName)
	spans := func(n int) {
		for i := range n {
			_, s := tr.Start(remoteSampled, "s")
			if i%3 == 0 {
				s.AddEvent("the SDK's span")
			}
			s.End()
		}
	}
	count := func() int {
		reqs, _ := rcv.take()
		n := 0
		for _, r := range reqs {
			for _, rs := range r.ResourceSpans {
				for _, ss := range rs.ScopeSpans {
					n += len(ss.Spans)
				}
			}
		}
		return n
	}
	spans(10)
	if err := fp.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 10 {
		t.Errorf("ForceFlush exported %d spans, want 10", n)
	}
	spans(7)
	_, open := tr.Start(remoteSampled, "ends after the shutdown")
	if err := shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 7 {
		t.Errorf("Shutdown exported %d spans, want 7", n)
	}
	open.End()
	spans(2)
	_ = fp.ForceFlush(ctx)
	if n := count(); n != 0 {
		t.Errorf("%d spans exported after the shutdown", n)
	}
	if _, s := tp.Tracer("after shutdown").Start(ctx, "x"); s.IsRecording() {
		t.Error("a tracer of a provider shut down records")
	}
	if err := shutdown(ctx); err != nil {
		t.Errorf("second shutdown: %v", err)
	}
}

// A span's record is reused once exported: the span ended keeps its
// span context and changes nothing, neither its own export nor the span
// now recording into its record.
func TestFastSpanEndedLetsGoOfItsRecord(t *testing.T) {
	ctx := context.Background()
	rcv, exp := exportToReceiver(t)
	tp, shutdown := newTracerProvider(resource.NewSchemaless(), exp, batchOptionsFromEnv(), true, false)
	fp := tp.(*fastProvider)
	tr := tp.Tracer(scopeName)
	_, old := tr.Start(remoteSampled, "old")
	oldSC := old.SpanContext()
	old.End()
	if err := fp.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	_, cur := tr.Start(remoteSampled, "current")
	old.SetAttributes(attribute.String("stale", "x"))
	old.SetStatus(codes.Error, "stale")
	old.SetName("stale")
	old.End()
	if old.IsRecording() || !old.SpanContext().Equal(oldSC) {
		t.Errorf("ended span: recording %v, span context %v, want false, %v", old.IsRecording(), old.SpanContext(), oldSC)
	}
	if !cur.IsRecording() {
		t.Error("the current span stopped recording")
	}
	cur.End()
	if err := shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	var names []string
	reqs, _ := rcv.take()
	for _, req := range reqs {
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					names = append(names, s.Name)
					if len(s.Attributes) != 0 || s.Status.GetCode() != 0 {
						t.Errorf("span %q exported with %v, status %v", s.Name, s.Attributes, s.Status)
					}
				}
			}
		}
	}
	if strings.Join(names, ",") != "old,current" {
		t.Errorf("exported %v, want old, current", names)
	}
}

// exportToReceiver is our OTLP exporter (http/protobuf) sending to an
// in-process receiver, closed with the test.
func exportToReceiver(t *testing.T) (*receiver, *otlpExporter) {
	t.Helper()
	rcv := &receiver{}
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	exp, err := newOTLPExporter(context.Background(), otlptracehttp.NewClient(otlptracehttp.WithEndpointURL(srv.URL+"/v1/traces")))
	if err != nil {
		t.Fatal(err)
	}
	return rcv, exp
}
