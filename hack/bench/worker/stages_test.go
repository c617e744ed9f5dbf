package main

import (
	"testing"

	"github.com/google/pprof/profile"
)

// TestStageOf: a sample goes to the first stage of stageOrder found on
// its stack, whatever the order of the stack.
func TestStageOf(t *testing.T) {
	for _, tc := range []struct {
		stack []string // leaf first, as in a profile
		want  string
	}{
		{[]string{"runtime.mallocgc", "runtime.gcAssistAlloc", "github.com/vcon-operator/vcon-operator/internal/vcon.(*fastDecoder).value", "github.com/vcon-operator/vcon-operator/internal/pipeline.parseBody"}, "garbage collection"},
		{[]string{"github.com/vcon-operator/vcon-operator/internal/vcon.scanString", "github.com/vcon-operator/vcon-operator/internal/vcon.ParseReadOnly", "github.com/vcon-operator/vcon-operator/internal/pipeline.parseBody"}, "decode and validate"},
		{[]string{"internal/runtime/syscall/linux.Syscall6", "github.com/redis/go-redis/v9.(*Pipeline).Exec", "github.com/vcon-operator/vcon-operator/internal/pipeline.(*Processor).ProcessThenTake"}, "Redis client (go-redis, its socket calls)"},
		{[]string{"github.com/redis/go-redis/v9.(*Pipeline).Exec", "github.com/vcon-operator/vcon-operator/internal/telemetry.(*otlpExporter).ExportSpans"}, "tracing (spans, trace-context records, batching and OTLP export)"},
		{[]string{"github.com/vcon-operator/vcon-operator/internal/vcon.AddTag", "github.com/vcon-operator/vcon-operator/internal/links.(*tagLink).Run"}, "links (links.tag)"},
		{[]string{"github.com/vcon-operator/vcon-operator/internal/vcon.appendJSON", "github.com/vcon-operator/vcon-operator/internal/vcon.(*VCon).AppendMarshal"}, "normalise and encode"},
		{[]string{"github.com/redis/go-redis/v9.(*baseClient).Process", "main.pushAndWait"}, "the benchmark's own pushes and polls (floor only)"},
		{[]string{"runtime.futex", "runtime.schedule"}, restStage},
	} {
		s := &profile.Sample{}
		for _, name := range tc.stack {
			s.Location = append(s.Location, &profile.Location{Line: []profile.Line{{Function: &profile.Function{Name: name}}}})
		}
		if got := stageOf(s); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.stack, got, tc.want)
		}
	}
}
