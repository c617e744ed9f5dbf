package main

import (
	"io"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// TestTuneRuntime: GOGC 400 and a soft memory limit at 90% of the
// container's, each unless the environment sets its own.
func TestTuneRuntime(t *testing.T) {
	prevGC := debug.SetGCPercent(100)
	prevLimit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetGCPercent(prevGC); debug.SetMemoryLimit(prevLimit) })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	const mib = 1 << 20
	limit200 := func() (uint64, error) { return 200 * mib, nil }
	noLimit := func() (uint64, error) { return 0, memlimit.ErrNoLimit }

	tests := []struct {
		name      string
		env       map[string]string
		provider  memlimit.Provider
		wantGC    int
		wantLimit int64
	}{
		{name: "defaults in a container with a limit", provider: limit200, wantGC: 400, wantLimit: 180 * mib},
		{name: "no container limit", provider: noLimit, wantGC: 400, wantLimit: math.MaxInt64},
		{name: "GOGC set", env: map[string]string{"GOGC": "150"}, provider: limit200, wantGC: 100, wantLimit: 180 * mib},
		{name: "GOMEMLIMIT set", env: map[string]string{"GOMEMLIMIT": "64MiB"}, provider: limit200, wantGC: 400, wantLimit: math.MaxInt64},
		{name: "AUTOMEMLIMIT off", env: map[string]string{"AUTOMEMLIMIT": "off"}, provider: limit200, wantGC: 400, wantLimit: math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"GOGC", "GOMEMLIMIT", "AUTOMEMLIMIT"} {
				t.Setenv(k, "")
				if v, ok := tt.env[k]; ok {
					t.Setenv(k, v)
				} else {
					os.Unsetenv(k) // memlimit looks for presence; t.Setenv restores
				}
			}
			// The runtime read GOGC and GOMEMLIMIT at start; here the
			// test plays what they would have set.
			debug.SetGCPercent(100)
			debug.SetMemoryLimit(math.MaxInt64)
			tuneRuntime(log, tt.provider)
			if gc := debug.SetGCPercent(100); gc != tt.wantGC {
				t.Errorf("GOGC = %d, want %d", gc, tt.wantGC)
			}
			if got := debug.SetMemoryLimit(-1); got != tt.wantLimit {
				t.Errorf("memory limit = %d, want %d", got, tt.wantLimit)
			}
		})
	}
}
