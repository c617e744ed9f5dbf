package telemetry

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// receiver keeps every export request it is sent, decoded with the
// official OTLP messages, as a collector decodes them.
type receiver struct {
	coltracepb.UnimplementedTraceServiceServer
	mu       sync.Mutex
	requests []*coltracepb.ExportTraceServiceRequest
	headers  []string // the test header of each request
}

func (r *receiver) keep(req *coltracepb.ExportTraceServiceRequest, header string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = append(r.requests, req)
	r.headers = append(r.headers, header)
}

func (r *receiver) take() ([]*coltracepb.ExportTraceServiceRequest, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	reqs, hs := r.requests, r.headers
	r.requests, r.headers = nil, nil
	return reqs, hs
}

func (r *receiver) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	header := ""
	if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get("x-test")) > 0 {
		header = md.Get("x-test")[0]
	}
	r.keep(req, header)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var m coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &m); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.keep(&m, req.Header.Get("X-Test"))
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(nil)
}

// TestWireMatchesOTLPTrace: over each protocol's real client, configured
// by the OTEL_EXPORTER_OTLP_* variables as in production, a collector
// receives from otlpExporter the requests it receives from otlptrace's
// exporter for the same batches (decoded with the official messages and
// compared with proto.Equal), the configured headers included; with
// OTEL_GO_X_OBSERVABILITY the exporter hands the client messages with
// their spans, which the client counts.
func TestWireMatchesOTLPTrace(t *testing.T) {
	batches := workerBatches(t)
	for _, tc := range []struct {
		protocol      string
		observability string
		wantMessages  bool
	}{
		{"http/protobuf", "", false},
		{"grpc", "", false},
		{"http/protobuf", "TRUE", true},
		{"grpc", "true", true},
	} {
		t.Run(tc.protocol+"/observability="+tc.observability, func(t *testing.T) {
			ctx := context.Background()
			rcv := &receiver{}
			t.Setenv("OTEL_GO_X_OBSERVABILITY", tc.observability)
			t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-test=configured")
			var newClient func() otlptrace.Client
			switch tc.protocol {
			case "http/protobuf":
				srv := httptest.NewServer(rcv)
				t.Cleanup(srv.Close)
				t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", srv.URL+"/v1/traces")
				newClient = func() otlptrace.Client { return otlptracehttp.NewClient() }
			case "grpc":
				lis, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				gs := grpc.NewServer()
				coltracepb.RegisterTraceServiceServer(gs, rcv)
				go func() { _ = gs.Serve(lis) }()
				t.Cleanup(gs.Stop)
				t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://"+lis.Addr().String())
				newClient = func() otlptrace.Client { return otlptracegrpc.NewClient() }
			}

			ref, err := otlptrace.New(ctx, newClient())
			if err != nil {
				t.Fatal(err)
			}
			exp, err := newOTLPExporter(ctx, newClient())
			if err != nil {
				t.Fatal(err)
			}
			if exp.messages != tc.wantMessages {
				t.Errorf("exporter sends messages %v, want %v", exp.messages, tc.wantMessages)
			}
			for i, b := range batches {
				if err := ref.ExportSpans(ctx, b); err != nil {
					t.Fatal(err)
				}
				want, wantHeaders := rcv.take()
				if err := exp.ExportSpans(ctx, b); err != nil {
					t.Fatal(err)
				}
				got, gotHeaders := rcv.take()
				if len(got) != 1 || len(want) != 1 {
					t.Fatalf("batch %d: %d requests received from ours, %d from otlptrace, want 1 each", i+1, len(got), len(want))
				}
				if gotHeaders[0] != "configured" || wantHeaders[0] != "configured" {
					t.Errorf("batch %d: x-test header %q from ours, %q from otlptrace, want the configured one", i+1, gotHeaders[0], wantHeaders[0])
				}
				sortByResource(want[0].ResourceSpans)
				sortByResource(got[0].ResourceSpans)
				if !proto.Equal(want[0], got[0]) {
					t.Errorf("batch %d differs:\notlptrace: %s\nours:      %s", i+1, prototext.Format(want[0]), prototext.Format(got[0]))
				}
			}
			_ = ref.Shutdown(ctx)
			_ = exp.Shutdown(ctx)
		})
	}
}

// workerBatches are batches of spans as a worker ends them (a vCon's
// consumer span under a producer's, its links' and storages' spans, one
// failed), and one of other spans from another resource.
func workerBatches(t *testing.T) [][]sdktrace.ReadOnlySpan {
	t.Helper()
	ctx := context.Background()
	rec := tracetest.NewSpanRecorder()
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", "worker")))
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithResource(res))
	other := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "other"))))
	tr := tp.Tracer("github.com/vcon-operator/vcon-operator/internal/pipeline")
	parent := trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 0x2f}, SpanID: trace.SpanID{0x00, 0xf0, 0x67}, TraceFlags: trace.FlagsSampled, Remote: true,
	}))
	var batches [][]sdktrace.ReadOnlySpan
	mark := 0
	for i, n := range []int{1, 3, 2} {
		for v := range n {
			vctx, span := tr.Start(parent, "vcon.process main", trace.WithSpanKind(trace.SpanKindConsumer),
				trace.WithAttributes(attribute.String("vcon.chain", "main"), attribute.String("vcon.ingress_list", "in")))
			span.SetAttributes(attribute.String("vcon.uuid", strings.Repeat("u", v+1)))
			_, link := tr.Start(vctx, "link tag", trace.WithAttributes(attribute.String("vcon.link", "tag")))
			link.SetAttributes(attribute.String("vcon.outcome", "continue"))
			link.End()
			_, st := tr.Start(vctx, "storage copy", trace.WithAttributes(attribute.String("vcon.storage", "copy")))
			if v == 1 {
				st.SetStatus(codes.Error, "storage write failed")
				span.SetStatus(codes.Error, "storage_failed")
				span.SetAttributes(attribute.String("vcon.retry_reason", "storage_failed"), attribute.Int("vcon.attempt", 2))
			}
			st.End()
			span.SetAttributes(attribute.Bool("vcon.filtered", v == 2))
			span.End()
		}
		if i == 2 {
			_, s := other.Tracer("other").Start(ctx, "root")
			s.End()
		}
		ended := rec.Ended()
		batches = append(batches, ended[mark:])
		mark = len(ended)
	}
	return batches
}

func sortByResource(rss []*tracepb.ResourceSpans) {
	slices.SortFunc(rss, func(a, b *tracepb.ResourceSpans) int {
		return strings.Compare(prototext.Format(a.GetResource()), prototext.Format(b.GetResource()))
	})
}
