package main

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// GOGC 400 suits the worker's usual heap: a few MiB live, so the
// collector lets it grow by four times that, tens of MiB, and runs
// rarely. The same factor on one large vCon is what made a 44 MB
// document peak at 739 MiB: decoded, it holds several times its size
// live, and GOGC 400 lets the heap reach five times the live heap before
// collecting. The headroom tuner keeps GOGC 400 while the live heap is
// small and lowers it as the live heap grows, so that the growth allowed
// above the live heap stays near maxHeadroom: the collector then runs
// more often only while a large document is in flight. The soft memory
// limit (tuneRuntime) still applies on top; it bounds the total, this
// bounds the waste.

// maxHeadroom is the heap growth above the live heap the worker allows
// between collections once GOGC 400 would allow more. At concurrency 32 on
// 5 KB vCons the live heap stays near 10 MiB (docs/benchmarks.md), below
// the point where the tuner acts: the throughput case keeps GOGC 400.
const maxHeadroom = 64 << 20

// minGCPercent bounds how often the collector may be asked to run: below
// it, a huge live heap would be collected almost continuously.
const minGCPercent = 25

// gcPercentFor is the GOGC that lets the heap grow by at most headroom
// over live, between minPercent and maxPercent.
func gcPercentFor(live, headroom uint64, minPercent, maxPercent int) int {
	if live == 0 || headroom >= live*uint64(maxPercent)/100 {
		return maxPercent
	}
	return max(minPercent, int(headroom*100/live))
}

// headroomTuner sets GOGC after every collection from the live heap that
// collection found.
type headroomTuner struct {
	headroom               uint64
	minPercent, maxPercent int
	live                   func() uint64 // the live heap at the last collection
	set                    func(int)     // sets GOGC
	current                int
}

// startHeadroomTuner tunes the process's GOGC from now on, with
// maxPercent as the GOGC for a small heap.
func startHeadroomTuner(maxPercent int) {
	t := &headroomTuner{
		headroom: maxHeadroom, minPercent: minGCPercent, maxPercent: maxPercent,
		live: liveHeap, set: func(p int) { debug.SetGCPercent(p) }, current: maxPercent,
	}
	t.arm()
}

// gcSentinel is an object whose finalizer runs once per collection: it
// becomes unreachable as soon as it is made, and each run makes the next.
// Its pointer keeps it out of the tiny allocator, whose objects may never
// be finalised.
type gcSentinel struct{ _ *int }

func (t *headroomTuner) arm() {
	runtime.SetFinalizer(&gcSentinel{}, func(*gcSentinel) {
		t.tune()
		t.arm()
	})
}

func (t *headroomTuner) tune() {
	if p := gcPercentFor(t.live(), t.headroom, t.minPercent, t.maxPercent); p != t.current {
		t.current = p
		t.set(p)
	}
}

var liveHeapSample = []metrics.Sample{{Name: "/gc/heap/live:bytes"}}

// liveHeap is the heap the last collection marked live. Only the tuner's
// finalizer calls it, one at a time, so the shared sample is safe.
func liveHeap() uint64 {
	metrics.Read(liveHeapSample)
	if liveHeapSample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return liveHeapSample[0].Value.Uint64()
}
