package main

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

func TestGCPercentFor(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name string
		live uint64
		want int
	}{
		{"no live heap yet", 0, 400},
		{"a small heap keeps the maximum", 10 * mib, 400},
		{"the maximum exactly spends the headroom", 16 * mib, 400},
		{"a larger heap gets the headroom", 32 * mib, 200},
		{"a large document in flight", 256 * mib, 25},
		{"never below the minimum", 4096 * mib, 25},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := gcPercentFor(tt.live, 64*mib, 25, 400); got != tt.want {
				t.Errorf("gcPercentFor(%d MiB) = %d, want %d", tt.live/mib, got, tt.want)
			}
		})
	}
}

// TestHeadroomTunerFollowsTheLiveHeap: with a live heap far above the
// headroom GOGC goes down to its minimum after a collection, and back up
// once the heap is released. The tuner's set is the test's, so the process's GOGC is
// not touched.
func TestHeadroomTunerFollowsTheLiveHeap(t *testing.T) {
	var gogc atomic.Int64
	gogc.Store(400)
	tuner := &headroomTuner{headroom: 16 << 20, minPercent: 25, maxPercent: 400, live: liveHeap,
		set: func(p int) { gogc.Store(int64(p)) }, current: 400}
	tuner.arm()
	await := func(what string, cond func(int64) bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(gogc.Load()); {
			if time.Now().After(deadline) {
				t.Fatalf("GOGC %d: never %s", gogc.Load(), what)
			}
			runtime.GC()
			time.Sleep(10 * time.Millisecond)
		}
	}
	live := make([]byte, 128<<20)
	await("at its minimum while 128 MiB were live", func(p int64) bool { return p == 25 })
	runtime.KeepAlive(live)
	live = nil
	// The test binary's own heap is a few MiB, within the headroom of GOGC
	// 200 or more.
	await("back up once they were released", func(p int64) bool { return p >= 200 })
}
