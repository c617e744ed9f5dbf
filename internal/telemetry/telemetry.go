// Package telemetry sets up OpenTelemetry for our binaries from the standard
// OTEL_* environment (through the contrib autoexport package: OTLP over gRPC
// or http/protobuf, OTEL_EXPORTER_OTLP_HEADERS, OTEL_SDK_DISABLED, ...), and
// carries conserver's trace context beside queued uuids, so a trace started
// by a producer or the API continues in the worker.
package telemetry

import (
	"context"
	"errors"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// Setup installs the global tracer and meter providers. serviceName is used
// unless OTEL_SERVICE_NAME is set. With no exporter configured (neither
// OTEL_*_EXPORTER nor an OTLP endpoint) nothing is recorded or exported,
// rather than autoexport's default of retrying an OTLP collector on
// localhost forever; trace context from producers still passes through.
// The returned shutdown flushes what is buffered.
func Setup(ctx context.Context, serviceName string) (shutdown func(context.Context) error, err error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") {
		return func(context.Context) error { return nil }, nil
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(serviceName)))
	if err != nil {
		return nil, err
	}
	// resource.Default reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES;
	// our name only fills in when the user gave none.
	if name := os.Getenv("OTEL_SERVICE_NAME"); name != "" {
		res, _ = resource.Merge(res, resource.NewSchemaless(semconv.ServiceName(name)))
	}

	spanExporter, err := newSpanExporter(ctx)
	if err != nil {
		return nil, err
	}
	// Without an exporter, spans would be recorded only to be dropped: the
	// global provider stays OpenTelemetry's no-op one, which records
	// nothing and still carries a producer's trace context through (its
	// spans take their parent's), so a downstream chain that does export
	// continues the producer's trace.
	shutdownTraces := func(context.Context) error { return nil }
	if spanExporter != nil && !autoexport.IsNoneSpanExporter(spanExporter) {
		shutdownTraces = setTracerProvider(res, spanExporter)
	}

	metricsEndpointSet := os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") != ""
	metricOpts := []autoexport.MetricOption{}
	if !metricsEndpointSet {
		metricOpts = append(metricOpts, autoexport.WithFallbackMetricReader(func(context.Context) (sdkmetric.Reader, error) {
			return nil, nil
		}))
	}
	reader, err := autoexport.NewMetricReader(ctx, metricOpts...)
	if err != nil {
		_ = shutdownTraces(ctx)
		return nil, err
	}
	mpOpts := []sdkmetric.Option{sdkmetric.WithResource(res)}
	if reader != nil && !autoexport.IsNoneMetricReader(reader) {
		mpOpts = append(mpOpts, sdkmetric.WithReader(reader))
	}
	mp := sdkmetric.NewMeterProvider(mpOpts...)
	otel.SetMeterProvider(mp)

	return func(ctx context.Context) error {
		return errors.Join(shutdownTraces(ctx), mp.Shutdown(ctx))
	}, nil
}

// setTracerProvider installs the global tracer provider exporting
// through spanExporter and returns its shutdown: on the fast path
// (fastspan.go) where that records spans exactly as the SDK would.
func setTracerProvider(res *resource.Resource, spanExporter sdktrace.SpanExporter) func(context.Context) error {
	alwaysOn, fast := fastPathConfigured(spanExporter)
	tp, shutdown := newTracerProvider(res, spanExporter, batchOptionsFromEnv(), fast, alwaysOn)
	otel.SetTracerProvider(tp)
	return shutdown
}

// newTracerProvider is the SDK's tracer provider exporting through
// spanExporter, or with fast set the fast path's on the SDK's (alwaysOn
// for OTEL_TRACES_SAMPLER=always_on).
func newTracerProvider(res *resource.Resource, spanExporter sdktrace.SpanExporter, opts batchOptions, fast, alwaysOn bool) (trace.TracerProvider, func(context.Context) error) {
	b := newBatcher(spanExporter, opts)
	if !fast {
		tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSpanProcessor(b))
		return tp, tp.Shutdown
	}
	// The SDK's spans take the ids a fast span that becomes one had.
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSpanProcessor(b), sdktrace.WithIDGenerator(idGenerator{}))
	fp := newFastProvider(tp, b, alwaysOn)
	return fp, fp.Shutdown
}

// newSpanExporter is the exporter OTEL_TRACES_EXPORTER and the OTLP
// variables ask for, as autoexport makes it, nil when none is configured.
// An OTLP one is otlpExporter on the client autoexport would have used
// (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, then OTEL_EXPORTER_OTLP_PROTOCOL,
// http/protobuf by default), each client reading the rest of the OTLP
// variables itself.
func newSpanExporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	endpointSet := os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	kind := os.Getenv("OTEL_TRACES_EXPORTER")
	if kind == "" && !endpointSet {
		return nil, nil
	}
	if kind == "" || kind == "otlp" {
		protocol := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
		if protocol == "" {
			protocol = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
		}
		var client otlptrace.Client
		switch protocol {
		case "", "http/protobuf":
			client = otlptracehttp.NewClient()
		case "grpc":
			client = otlptracegrpc.NewClient()
		}
		if client != nil {
			exp, err := newOTLPExporter(ctx, client)
			if err != nil {
				return nil, err
			}
			return exp, nil
		}
		// An unknown protocol: autoexport's error says which are known.
	}
	return autoexport.NewSpanExporter(ctx)
}

// Flush runs a shutdown returned by Setup with a five-second deadline, the
// last thing a binary does: spans still buffered are sent, a collector
// that does not answer does not hold the exit.
func Flush(shutdown func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = shutdown(ctx)
}
