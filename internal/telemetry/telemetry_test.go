package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/vcon-operator/vcon-operator/internal/queue"
)

// setup runs Setup with only the given OTEL_* variables and restores the
// global providers afterwards.
func setup(t *testing.T, env map[string]string) func(context.Context) error {
	t.Helper()
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER",
		"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
		"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_SERVICE_NAME"} {
		t.Setenv(k, env[k])
	}
	prevTP, prevMP := otel.GetTracerProvider(), otel.GetMeterProvider()
	t.Cleanup(func() { otel.SetTracerProvider(prevTP); otel.SetMeterProvider(prevMP) })
	shutdown, err := Setup(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	return shutdown
}

var producer = queue.TraceContext{TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7", TraceFlags: 1, IsSampled: true}

// Without an exporter nothing is recorded, and a producer's trace context
// passes through unchanged: what the worker writes for egress is the
// producer's, so a downstream chain that exports continues that trace.
func TestSetupWithoutExporterRecordsNothingAndPassesContextThrough(t *testing.T) {
	shutdown := setup(t, nil)
	defer func() { _ = shutdown(context.Background()) }()

	ctx, span := otel.Tracer("t").Start(producer.ContextWithRemote(context.Background()), "vcon.process")
	if span.IsRecording() {
		t.Error("span is recorded though no exporter is configured")
	}
	got, ok := queue.TraceContextFrom(ctx)
	if !ok || got != producer {
		t.Errorf("context after the span = %+v (%v), want the producer's %+v", got, ok, producer)
	}
	span.End()

	ctx, span = otel.Tracer("t").Start(context.Background(), "vcon.process")
	defer span.End()
	if _, ok := queue.TraceContextFrom(ctx); ok {
		t.Error("a vCon without a producer context got one: there is no trace to continue")
	}
}

// With an OTLP endpoint, spans are recorded as children of the producer's
// and exported there (http/protobuf to a local receiver).
func TestSetupWithEndpointExportsSpans(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/traces" {
			_, _ = io.Copy(io.Discard, r.Body)
			requests.Add(1)
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	shutdown := setup(t, map[string]string{
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": srv.URL + "/v1/traces",
		"OTEL_EXPORTER_OTLP_PROTOCOL":        "http/protobuf",
	})

	ctx, span := otel.Tracer("t").Start(producer.ContextWithRemote(context.Background()), "vcon.process")
	if !span.IsRecording() {
		t.Fatal("span not recorded with an exporter configured")
	}
	sc := trace.SpanContextFromContext(ctx)
	if sc.TraceID().String() != producer.TraceID || sc.SpanID().String() == producer.SpanID {
		t.Errorf("span %s/%s is not a child in the producer's trace %s", sc.TraceID(), sc.SpanID(), producer.TraceID)
	}
	span.End()
	Flush(shutdown) // as the binaries end
	if requests.Load() == 0 {
		t.Error("no span reached the OTLP endpoint")
	}
}

func TestSetupDisabled(t *testing.T) {
	shutdown := setup(t, map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"})
	defer func() { _ = shutdown(context.Background()) }()
	if _, span := otel.Tracer("t").Start(context.Background(), "x"); span.IsRecording() {
		t.Error("span recorded with OTEL_SDK_DISABLED=true")
	}
}
