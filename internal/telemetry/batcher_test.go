package telemetry

import (
	"context"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// recordingExporter keeps the size of every batch it is given.
type recordingExporter struct {
	mu       sync.Mutex
	batches  []int
	names    []string
	shutdown bool
	block    chan struct{} // when set, ExportSpans waits for it
}

func (e *recordingExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	if e.block != nil {
		<-e.block
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.batches = append(e.batches, len(spans))
	for _, s := range spans {
		e.names = append(e.names, s.Name())
	}
	return nil
}

func (e *recordingExporter) Shutdown(context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.shutdown = true
	return nil
}

func (e *recordingExporter) exported() (batches []int, total int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, n := range e.batches {
		total += n
	}
	return append([]int(nil), e.batches...), total
}

// The batcher exports what sdktrace's batch span processor would: every
// sampled span once, in batches of at most the batch size, a full batch
// without waiting for the schedule delay, the rest on ForceFlush and
// Shutdown; nothing unsampled, nothing after Shutdown, and no more than
// the queue holds while an export is slow.
func TestBatcher(t *testing.T) {
	ctx := context.Background()
	opts := batchOptions{delay: time.Hour, timeout: time.Second, maxQueue: 8, maxBatch: 4}

	t.Run("full batches export at once", func(t *testing.T) {
		exp := &recordingExporter{}
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(newBatcher(exp, opts)))
		defer func() { _ = tp.Shutdown(ctx) }()
		for range 8 {
			_, s := tp.Tracer("t").Start(ctx, "s")
			s.End()
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			if _, n := exp.exported(); n == 8 {
				break
			}
			if time.Now().After(deadline) {
				b, n := exp.exported()
				t.Fatalf("exported %d spans in %v before the schedule delay, want 8 in full batches", n, b)
			}
			time.Sleep(time.Millisecond)
		}
		if b, _ := exp.exported(); len(b) != 2 || b[0] != 4 || b[1] != 4 {
			t.Errorf("batches %v, want [4 4]", b)
		}
	})

	t.Run("flush, shutdown and unsampled spans", func(t *testing.T) {
		exp := &recordingExporter{}
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(newBatcher(exp, opts)), sdktrace.WithSampler(recordOnly{}))
		_, s := tp.Tracer("t").Start(ctx, "flushed")
		s.End()
		if err := tp.ForceFlush(ctx); err != nil {
			t.Fatal(err)
		}
		if _, n := exp.exported(); n != 1 {
			t.Fatalf("ForceFlush exported %d spans, want 1", n)
		}
		_, s = tp.Tracer("t").Start(ctx, "at shutdown")
		s.End()
		_, s = tp.Tracer("t").Start(ctx, "unsampled")
		s.End()
		if err := tp.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		_, s = tp.Tracer("t").Start(ctx, "after shutdown")
		s.End()
		exp.mu.Lock()
		defer exp.mu.Unlock()
		if len(exp.names) != 2 || exp.names[0] != "flushed" || exp.names[1] != "at shutdown" || !exp.shutdown {
			t.Errorf("exported %v, exporter shut down %v; want [flushed at shutdown], true", exp.names, exp.shutdown)
		}
	})

	t.Run("a full queue drops", func(t *testing.T) {
		exp := &recordingExporter{block: make(chan struct{})}
		b := newBatcher(exp, opts)
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(b))
		for range 4 { // a full batch: its export blocks
			_, s := tp.Tracer("t").Start(ctx, "s")
			s.End()
		}
		// Wait until the export has taken its batch, then fill the queue
		// (8) and overflow it.
		deadline := time.Now().Add(5 * time.Second)
		for {
			b.mu.Lock()
			queued := len(b.queue)
			b.mu.Unlock()
			if queued == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the full batch was not taken for export")
			}
			time.Sleep(time.Millisecond)
		}
		for range 12 {
			_, s := tp.Tracer("t").Start(ctx, "s")
			s.End()
		}
		close(exp.block)
		if err := tp.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if _, n := exp.exported(); n != 4+8 {
			t.Errorf("exported %d spans, want 12: the batch in export and a full queue, the 4 over it dropped", n)
		}
	})
}

// recordOnly records the span named "unsampled" without sampling it, and
// samples the others.
type recordOnly struct{}

func (recordOnly) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	if p.Name == "unsampled" {
		return sdktrace.SamplingResult{Decision: sdktrace.RecordOnly}
	}
	return sdktrace.SamplingResult{Decision: sdktrace.RecordAndSample}
}

func (recordOnly) Description() string { return "recordOnly" }

// The OTEL_BSP_* variables are read as sdktrace reads them.
func TestBatchOptionsFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want batchOptions
	}{
		{"defaults", nil, batchOptions{delay: 5 * time.Second, timeout: 30 * time.Second, maxQueue: 2048, maxBatch: 512}},
		{"set", map[string]string{"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_BSP_EXPORT_TIMEOUT": "2000", "OTEL_BSP_MAX_QUEUE_SIZE": "4096", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "1024"},
			batchOptions{delay: 100 * time.Millisecond, timeout: 2 * time.Second, maxQueue: 4096, maxBatch: 1024}},
		{"batch over the queue", map[string]string{"OTEL_BSP_MAX_QUEUE_SIZE": "100", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "1000"},
			batchOptions{delay: 5 * time.Second, timeout: 30 * time.Second, maxQueue: 100, maxBatch: 100}},
		{"not numbers", map[string]string{"OTEL_BSP_SCHEDULE_DELAY": "1s", "OTEL_BSP_MAX_QUEUE_SIZE": "many"},
			batchOptions{delay: 5 * time.Second, timeout: 30 * time.Second, maxQueue: 2048, maxBatch: 512}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_EXPORT_TIMEOUT", "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"} {
				t.Setenv(k, tc.env[k])
			}
			if got := batchOptionsFromEnv(); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
