package api

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/telemetry"
)

// useTracerProvider installs tp (and the W3C propagator) globally for one
// test.
func useTracerProvider(t *testing.T, tp *sdktrace.TracerProvider) {
	oldTP, oldProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		otel.SetTracerProvider(oldTP)
		otel.SetTextMapPropagator(oldProp)
	})
}

func TestTraceContinuesFromAPIToWorker(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	useTracerProvider(t, sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	h := newHarness(t, nil)
	ctx := context.Background()
	const producerTrace = "4bf92f3577b34da6a1bb7abcdeadbeef"

	cases := []struct {
		name        string
		uuid        string
		traceparent string
		wantTrace   string // "" = the API's own span's trace
	}{
		{name: "API starts the trace", uuid: u1},
		{name: "API continues the producer's trace", uuid: u2, traceparent: "00-" + producerTrace + "-00f067aa0ba902b7-01", wantTrace: producerTrace},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var opts []reqOpt
			if tc.traceparent != "" {
				opts = append(opts, withHeader("traceparent", tc.traceparent))
			}
			mustStatus(t, h.doJSON("POST", "/api/vcon?ingress_lists=work", testVcon(tc.uuid), opts...), http.StatusCreated)
			var span sdktrace.ReadOnlySpan
			for _, s := range rec.Ended() {
				if s.Name() == "POST /api/vcon" {
					span = s
				}
			}
			if span == nil {
				t.Fatal("no span for POST /api/vcon")
			}
			want := span.SpanContext().TraceID().String()
			if tc.wantTrace != "" && want != tc.wantTrace {
				t.Fatalf("span trace %s, want the producer's %s", want, tc.wantTrace)
			}
			records := h.rdb.LRange(ctx, queue.ContextKey("work", tc.uuid), 0, -1).Val()
			if len(records) != 1 {
				t.Fatalf("context:work:%s = %v, want one record", tc.uuid, records)
			}
			tcx, err := queue.ParseTraceContext(records[0])
			if err != nil {
				t.Fatal(err)
			}
			if tcx.TraceID != want || tcx.SpanID != span.SpanContext().SpanID().String() || !tcx.IsSampled {
				t.Errorf("record %s, want trace %s span %s sampled", records[0], want, span.SpanContext().SpanID())
			}
			if ttl := h.rdb.TTL(ctx, queue.ContextKey("work", tc.uuid)).Val(); ttl <= 0 {
				t.Errorf("context record has no TTL")
			}
			// The worker's side: LPOP the record and start a span under it.
			popped := h.rdb.LPop(ctx, queue.ContextKey("work", tc.uuid)).Val()
			parsed, _ := queue.ParseTraceContext(popped)
			_, child := otel.Tracer("worker").Start(parsed.ContextWithRemote(ctx), "chain")
			child.End()
			if got := child.SpanContext().TraceID().String(); got != want {
				t.Errorf("worker span trace %s, want %s", got, want)
			}
		})
	}
}

// TestLangfuseByConfigurationOnly sends traces the way the README tells
// Langfuse users to: OTLP http/protobuf with a basic-auth header, through
// the standard variables only.
func TestLangfuseByConfigurationOnly(t *testing.T) {
	var (
		mu    sync.Mutex
		auths []string
		spans []string
		svc   []string
		paths []string
	)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		paths = append(paths, r.URL.Path)
		auths = append(auths, r.Header.Get("Authorization"))
		if r.URL.Path != "/api/public/otel/v1/traces" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/x-protobuf" {
			t.Errorf("content type %q, want application/x-protobuf", ct)
		}
		var req collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			t.Errorf("decode OTLP request: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		for _, rs := range req.ResourceSpans {
			for _, a := range rs.GetResource().GetAttributes() {
				if a.Key == "service.name" {
					svc = append(svc, a.GetValue().GetStringValue())
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					spans = append(spans, sp.Name)
				}
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer collector.Close()

	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("pk-lf-public:sk-lf-secret"))
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL+"/api/public/otel")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "Authorization="+auth)
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_METRICS_EXPORTER", "none")
	t.Setenv("OTEL_SERVICE_NAME", "")
	t.Setenv("OTEL_SDK_DISABLED", "")

	oldTP, oldProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	t.Cleanup(func() { otel.SetTracerProvider(oldTP); otel.SetTextMapPropagator(oldProp) })
	shutdown, err := telemetry.Setup(context.Background(), "api")
	if err != nil {
		t.Fatalf("telemetry.Setup: %v", err)
	}
	h := newHarness(t, nil)
	mustStatus(t, h.doJSON("POST", "/api/vcon?ingress_lists=work", testVcon(u1)), http.StatusCreated)
	mustStatus(t, h.doJSON("GET", "/api/vcon/"+u1, ""), http.StatusOK)
	if err := shutdown(context.Background()); err != nil {
		t.Fatalf("flush: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(auths) == 0 {
		t.Fatal("the collector received nothing")
	}
	for i, a := range auths {
		if a != auth {
			t.Errorf("request %d to %s: Authorization %q, want %q", i, paths[i], a, auth)
		}
	}
	got := strings.Join(spans, ",")
	for _, want := range []string{"POST /api/vcon", "GET /api/vcon/{uuid}"} {
		if !strings.Contains(got, want) {
			t.Errorf("spans %q lack %q", got, want)
		}
	}
	if len(svc) == 0 || svc[0] != "api" {
		t.Errorf("service.name %v, want api", svc)
	}
}
