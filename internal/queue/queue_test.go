package queue

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

// clusterSlot is Redis Cluster's key slot: CRC16 (XMODEM) of the hash tag
// (the content of the first non-empty {...}) or of the whole key, mod 16384.
// It is written out here, independently of slotTag, so that the test checks
// the layout against Redis's rule rather than against itself.
func clusterSlot(key string) int {
	if i := indexByte(key, '{'); i >= 0 {
		if j := indexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for k := 0; k < len(key); k++ {
		crc ^= uint16(key[k]) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func TestClusterSlotMatchesRedis(t *testing.T) {
	// Reference values from the Redis Cluster specification and the
	// CLUSTER KEYSLOT documentation.
	for key, want := range map[string]int{"123456789": 12739, "somekey": 11058, "foo{hash_tag}": 2515, "hash_tag": 2515} {
		if got := clusterSlot(key); got != want {
			t.Errorf("clusterSlot(%q) = %d, want %d", key, got, want)
		}
	}
}

func TestKeysShareIngressSlot(t *testing.T) {
	tests := []struct {
		ingress   string
		wantValid bool
	}{
		{"default", true},
		{"ingress:calls", true},
		{"{tenant-a}:calls", true},
		{"calls{tenant-b}", true},
		{"DLQ-like:x", true},
		{"a{b", true},      // no closing brace: Redis hashes the whole name
		{"x{}y{z}", false}, // empty first tag: Redis hashes the whole name, '}' included
		{"a}b", false},     // a '}' before any tag cannot be carried in a tag
		{"x{}y", false},    // same: the whole name is hashed and holds a '}'
		{"uuids-ünï", true},
	}
	for _, tc := range tests {
		t.Run(tc.ingress, func(t *testing.T) {
			if got := ValidSlotLayout(tc.ingress); got != tc.wantValid {
				t.Fatalf("ValidSlotLayout(%q) = %v, want %v", tc.ingress, got, tc.wantValid)
			}
			if refused := ListNameConflict(tc.ingress) != ""; refused == tc.wantValid {
				t.Errorf("ListNameConflict(%q) refuses = %v, want %v", tc.ingress, refused, !tc.wantValid)
			}
			want := clusterSlot(tc.ingress)
			keys := map[string]string{
				"workers":     WorkersKey(tc.ingress),
				"in-flight":   InFlightKey(tc.ingress, "worker-1"),
				"in-flight 2": InFlightKey(tc.ingress, "pod-7f9c-{x}"),
				"prefix":      InFlightPrefix(tc.ingress) + "anything",
				"dlq reasons": DLQReasonsKey(tc.ingress),
			}
			for kind, key := range keys {
				same := clusterSlot(key) == want
				if same != tc.wantValid {
					t.Errorf("%s key %q: slot %d, ingress slot %d; shared = %v, want %v", kind, key, clusterSlot(key), want, same, tc.wantValid)
				}
			}
		})
	}
}

func TestKeyNames(t *testing.T) {
	// The layout is shared with the operator and documented in keys.go; a
	// change here is a migration.
	if got, want := InFlightKey("default", "w1"), "vcon-operator:inflight:{default}:default:w1"; got != want {
		t.Errorf("InFlightKey = %q, want %q", got, want)
	}
	if got, want := WorkersKey("{t}:in"), "vcon-operator:workers:{t}:{t}:in"; got != want {
		t.Errorf("WorkersKey = %q, want %q", got, want)
	}
	if got, want := DLQKey("default"), "DLQ:default"; got != want {
		t.Errorf("DLQKey = %q, want %q", got, want)
	}
	if got, want := ContextKey("egress", "u1"), "context:egress:u1"; got != want {
		t.Errorf("ContextKey = %q, want %q", got, want)
	}
}

func newClient(t *testing.T) *redis.Client {
	t.Helper()
	return testenv.StartRedis(t).Client()
}

func lrange(t *testing.T, rdb redis.UniversalClient, key string) []string {
	t.Helper()
	v, err := rdb.LRange(context.Background(), key, 0, -1).Result()
	if err != nil {
		t.Fatalf("LRANGE %s: %v", key, err)
	}
	return v
}

func TestTakeDone(t *testing.T) {
	rdb := newClient(t)
	ctx := context.Background()
	w := NewWorker(rdb, "w1", time.Minute)
	if err := w.Heartbeat(ctx, []string{"in"}); err != nil {
		t.Fatal(err)
	}
	rdb.RPush(ctx, "in", "u1", "u2")

	it, ok, err := w.Take(ctx, "in", time.Second)
	if err != nil || !ok || it.UUID != "u1" || it.List != "in" {
		t.Fatalf("Take = %+v, %v, %v; want u1 from in", it, ok, err)
	}
	if got := lrange(t, rdb, InFlightKey("in", "w1")); !slices.Equal(got, []string{"u1"}) {
		t.Fatalf("in-flight = %v, want [u1]", got)
	}
	if got := lrange(t, rdb, "in"); !slices.Equal(got, []string{"u2"}) {
		t.Fatalf("ingress = %v, want [u2]", got)
	}

	// Done queued last in a pipeline, as the processor does.
	pipe := rdb.Pipeline()
	pipe.RPush(ctx, "out", it.UUID)
	w.QueueDone(pipe, it)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if n := rdb.LLen(ctx, InFlightKey("in", "w1")).Val(); n != 0 {
		t.Fatalf("in-flight length after done = %d, want 0", n)
	}

	it2, ok, err := w.Take(ctx, "in", time.Second)
	if err != nil || !ok || it2.UUID != "u2" {
		t.Fatalf("second Take = %+v, %v, %v", it2, ok, err)
	}
	if err := w.Done(ctx, it2); err != nil {
		t.Fatal(err)
	}
	if n := rdb.LLen(ctx, InFlightKey("in", "w1")).Val(); n != 0 {
		t.Fatalf("in-flight length after Done = %d, want 0", n)
	}

	rdb.RPush(ctx, "in", "b1", "b2", "b3")
	items, err := w.TakeUpTo(ctx, "in", 5)
	if err != nil || len(items) != 3 || items[0].UUID != "b1" || items[2].UUID != "b3" {
		t.Fatalf("TakeUpTo(5) on 3 queued = %+v, %v; want b1..b3 in order", items, err)
	}
	if got := lrange(t, rdb, InFlightKey("in", "w1")); !slices.Equal(got, []string{"b1", "b2", "b3"}) {
		t.Fatalf("in-flight after TakeUpTo = %v", got)
	}
	for _, it := range items {
		if err := w.Done(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
	if items, err := w.TakeUpTo(ctx, "in", 2); err != nil || len(items) != 0 {
		t.Fatalf("TakeUpTo on an empty list = %+v, %v", items, err)
	}

	start := time.Now()
	_, ok, err = w.Take(ctx, "in", time.Second)
	if err != nil || ok {
		t.Fatalf("Take on empty list = %v, %v; want nothing", ok, err)
	}
	if el := time.Since(start); el < 900*time.Millisecond {
		t.Fatalf("Take on an empty list returned after %s, want it to block ~1s", el)
	}
}

// TestQueueTake: a take queued in an outcome's MULTI/EXEC moves the next
// uuid into flight with the outcome, and an empty list is no failure of
// the transaction.
func TestQueueTake(t *testing.T) {
	rdb := newClient(t)
	ctx := context.Background()
	w := NewWorker(rdb, "w1", time.Minute)
	rdb.RPush(ctx, "in", "u1", "u2")
	first, _, err := w.Take(ctx, "in", time.Second)
	if err != nil {
		t.Fatal(err)
	}

	tx := rdb.TxPipeline()
	tx.RPush(ctx, "out", first.UUID)
	w.QueueDone(tx, first)
	take := w.QueueTake(tx, "in")
	if err := take.Exec(ctx, tx); err != nil {
		t.Fatal(err)
	}
	next, ok := take.Item()
	if !ok || next.UUID != "u2" || next.List != "in" {
		t.Fatalf("taken with the outcome: %+v, %v; want u2 from in", next, ok)
	}
	if got := lrange(t, rdb, InFlightKey("in", "w1")); !slices.Equal(got, []string{"u2"}) {
		t.Fatalf("in-flight = %v, want only [u2]", got)
	}

	tx = rdb.TxPipeline()
	w.QueueDone(tx, next)
	take = w.QueueTake(tx, "in")
	if err := take.Exec(ctx, tx); err != nil {
		t.Fatalf("outcome with a take from an empty list: %v, want no error", err)
	}
	if it, ok := take.Item(); ok {
		t.Fatalf("took %+v from an empty list", it)
	}
	if n := rdb.LLen(ctx, InFlightKey("in", "w1")).Val(); n != 0 {
		t.Fatalf("in-flight length = %d, want 0", n)
	}

	// Another command's failure is still reported.
	rdb.Set(ctx, "not-a-list", "x", 0)
	tx = rdb.TxPipeline()
	tx.RPush(ctx, "not-a-list", "u")
	take = w.QueueTake(tx, "in")
	if err := take.Exec(ctx, tx); err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Fatalf("Exec with a failing command = %v, want its WRONGTYPE error", err)
	}
	var none *PendingTake
	pipe := rdb.Pipeline()
	pipe.RPush(ctx, "out", "z")
	if err := none.Exec(ctx, pipe); err != nil {
		t.Fatalf("nil take: %v", err)
	}
}

// TestReapExactlyOnce races reapers over the in-flight lists of dead
// workers: every item returns to the head of the ingress list exactly once,
// oldest first, and live workers' items stay where they are.
func TestReapExactlyOnce(t *testing.T) {
	rdb := newClient(t)
	ctx := context.Background()
	const list = "{t}:in"
	dead := NewWorker(rdb, "dead", time.Second)
	alive := NewWorker(rdb, "alive", time.Minute)
	for _, w := range []*Worker{dead, alive} {
		if err := w.Heartbeat(ctx, []string{list}); err != nil {
			t.Fatal(err)
		}
	}
	var taken []string
	for i := range 20 {
		rdb.RPush(ctx, list, fmt.Sprintf("d%02d", i))
	}
	for range 20 {
		it, ok, err := dead.Take(ctx, list, time.Second)
		if err != nil || !ok {
			t.Fatalf("take: %v %v", ok, err)
		}
		taken = append(taken, it.UUID)
	}
	rdb.RPush(ctx, list, "live", "q1", "q2")
	if _, ok, err := alive.Take(ctx, list, time.Second); err != nil || !ok {
		t.Fatalf("alive take: %v %v", ok, err)
	}

	// Wait for the dead worker's heartbeat to lapse on the Redis clock.
	deadline := time.Now().Add(5 * time.Second)
	for {
		now, err := rdb.Time(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		score := rdb.ZScore(ctx, WorkersKey(list), "dead").Val()
		if float64(now.UnixMilli()) > score {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("heartbeat of the dead worker did not lapse")
		}
		time.Sleep(10 * time.Millisecond)
	}

	const reapers = 8
	var total atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range reapers {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			var n int
			var err error
			if i%2 == 0 {
				n, err = Reap(ctx, rdb, []string{list})
			} else {
				var d []Depths
				d, err = ReapAndMeasure(ctx, rdb, []Target{{Ingress: []string{list}}})
				if err == nil {
					n = int(d[0].Reaped)
				}
			}
			if err != nil {
				t.Errorf("reaper %d: %v", i, err)
			}
			total.Add(int64(n))
		}(i)
	}
	close(start)
	wg.Wait()

	if got := total.Load(); got != 20 {
		t.Fatalf("reapers moved %d items in total, want exactly 20", got)
	}
	want := append(append([]string{}, taken...), "q1", "q2")
	if got := lrange(t, rdb, list); !slices.Equal(got, want) {
		t.Fatalf("ingress after reap = %v\nwant %v (dead worker's items at the head, oldest first)", got, want)
	}
	if n := rdb.Exists(ctx, InFlightKey(list, "dead")).Val(); n != 0 {
		t.Fatalf("dead worker's in-flight list still exists")
	}
	if got := lrange(t, rdb, InFlightKey(list, "alive")); !slices.Equal(got, []string{"live"}) {
		t.Fatalf("live worker's in-flight = %v, want [live]", got)
	}
	if n, err := Reap(ctx, rdb, []string{list}); err != nil || n != 0 {
		t.Fatalf("second reap = %d, %v; want 0", n, err)
	}

	// The reaped worker stays registered for a while: a stalled worker
	// that resumes takes once more before its next heartbeat, and is then
	// killed. The next reap returns that item too.
	members := rdb.ZRange(ctx, WorkersKey(list), 0, -1).Val()
	if !slices.Equal(members, []string{"alive", "dead"}) && !slices.Equal(members, []string{"dead", "alive"}) {
		t.Fatalf("workers after the reap = %v, want the reaped worker kept beside the live one", members)
	}
	late, ok, err := dead.Take(ctx, list, time.Second)
	if err != nil || !ok {
		t.Fatalf("late take: %v %v", ok, err)
	}
	if n, err := Reap(ctx, rdb, []string{list}); err != nil || n != 1 {
		t.Fatalf("reap after the late take = %d, %v; want the 1 item returned", n, err)
	}
	if got := lrange(t, rdb, list); got[0] != late.UUID {
		t.Fatalf("ingress head = %s, want the late take %s", got[0], late.UUID)
	}

	// After the retention the registration goes.
	now, _ := rdb.Time(ctx).Result()
	rdb.ZAdd(ctx, WorkersKey(list), redis.Z{Score: float64(now.Add(-DeadWorkerRetention - time.Second).UnixMilli()), Member: "dead"})
	if _, err := Reap(ctx, rdb, []string{list}); err != nil {
		t.Fatal(err)
	}
	if members := rdb.ZRange(ctx, WorkersKey(list), 0, -1).Val(); !slices.Equal(members, []string{"alive"}) {
		t.Fatalf("workers after the retention = %v, want [alive]", members)
	}
}

func TestRelease(t *testing.T) {
	rdb := newClient(t)
	ctx := context.Background()
	lists := []string{"a", "b"}
	w := NewWorker(rdb, "w", time.Minute)
	if err := w.Heartbeat(ctx, lists); err != nil {
		t.Fatal(err)
	}
	rdb.RPush(ctx, "a", "a1", "a2", "a3")
	rdb.RPush(ctx, "b", "b1")
	for _, l := range []string{"a", "a", "b"} {
		if _, ok, err := w.Take(ctx, l, time.Second); !ok || err != nil {
			t.Fatalf("take %s: %v %v", l, ok, err)
		}
	}
	n, err := w.Release(ctx, lists)
	if err != nil || n != 3 {
		t.Fatalf("Release = %d, %v; want 3", n, err)
	}
	if got := lrange(t, rdb, "a"); !slices.Equal(got, []string{"a1", "a2", "a3"}) {
		t.Fatalf("a = %v, want [a1 a2 a3]", got)
	}
	if got := lrange(t, rdb, "b"); !slices.Equal(got, []string{"b1"}) {
		t.Fatalf("b = %v, want [b1]", got)
	}
	for _, l := range lists {
		if rdb.ZScore(ctx, WorkersKey(l), "w").Err() != redis.Nil {
			t.Fatalf("worker still registered on %s after Release", l)
		}
	}
}

func TestReapAndMeasure(t *testing.T) {
	rdb := newClient(t)
	ctx := context.Background()
	dead := NewWorker(rdb, "dead", 30*time.Millisecond)
	alive := NewWorker(rdb, "alive", time.Minute)
	for _, w := range []*Worker{dead, alive} {
		if err := w.Heartbeat(ctx, []string{"in1", "in2"}); err != nil {
			t.Fatal(err)
		}
	}
	rdb.RPush(ctx, "in1", "a", "b", "c", "d", "e")
	rdb.RPush(ctx, "in2", "x", "y")
	take := func(w *Worker, list string) {
		if _, ok, err := w.Take(ctx, list, time.Second); !ok || err != nil {
			t.Fatalf("take: %v %v", ok, err)
		}
	}
	take(dead, "in1")  // orphaned: reaped by Measure
	take(alive, "in1") // live in-flight
	take(alive, "in2")
	rdb.RPush(ctx, DLQKey("in1"), "z1", "z2")
	rdb.RPush(ctx, DLQKey("in2"), "z3")
	rdb.RPush(ctx, "out", "o1", "o2", "o3", "o4")
	rdb.RPush(ctx, "other-out", "p1")
	rdb.RPush(ctx, StorageDLQKey("archive"), "s1", "s2")
	// One retry of in1 is due (promoted by the measurement), one waits an
	// hour.
	rdb.ZAdd(ctx, RetryKey("in1"), redis.Z{Score: 1, Member: "r-due"}, redis.Z{Score: float64(time.Now().Add(time.Hour).UnixMilli()), Member: "r-later"})

	deadline := time.Now().Add(5 * time.Second)
	for {
		score := rdb.ZScore(ctx, WorkersKey("in1"), "dead").Val()
		now := rdb.Time(ctx).Val()
		if float64(now.UnixMilli()) > score {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("heartbeat did not lapse")
		}
		time.Sleep(10 * time.Millisecond)
	}

	var hook testenv.RoundTrips
	rdb.AddHook(&hook)
	targets := []Target{
		{Ingress: []string{"in1", "in2"}, Egress: []string{"out"}, Storages: []string{"archive", "index"}},
		{Ingress: []string{"empty"}, Egress: []string{"other-out"}},
	}
	got, err := ReapAndMeasure(ctx, rdb, targets)
	if err != nil {
		t.Fatal(err)
	}
	if n := hook.Total(); n != 1 {
		t.Fatalf("Measure used %d round trips, want 1", n)
	}
	want0 := Depths{Ingress: 3 + 1 + 1 + 1, InFlight: 2, DLQ: 3, Egress: 4, StorageDLQ: 2, Reaped: 1, Retry: 1, Promoted: 1}
	d := got[0]
	if d.Ingress != want0.Ingress || d.InFlight != want0.InFlight || d.DLQ != want0.DLQ || d.Egress != want0.Egress || d.Reaped != want0.Reaped ||
		d.Retry != want0.Retry || d.Promoted != want0.Promoted || d.StorageDLQ != want0.StorageDLQ {
		t.Fatalf("chain 0 = %+v, want %+v", d, want0)
	}
	if d.NextRetry < 59*time.Minute || d.NextRetry > time.Hour {
		t.Errorf("next retry due in %s, want about an hour", d.NextRetry)
	}
	if head := rdb.LIndex(ctx, "in1", 0).Val(); head != "r-due" {
		t.Errorf("head of in1 = %q, want the promoted retry r-due", head)
	}
	if n := rdb.HGet(ctx, StateKey("in1"), "d:a").Val(); n != "1" {
		t.Errorf("deliveries of the reaped a = %q, want 1", n)
	}
	// A first measurement knows no older marker than the tail it records
	// now: the age is 0.
	wantLists := []ListDepth{
		{"in1", KindIngress, 5, 0}, {"DLQ:in1", KindDLQ, 2, 0}, {RetryKey("in1"), KindRetry, 1, 0},
		{"in2", KindIngress, 1, 0}, {"DLQ:in2", KindDLQ, 1, 0}, {RetryKey("in2"), KindRetry, 0, 0},
		{"out", KindEgress, 4, 0},
		{"DLQ:storage:archive", KindStorageDLQ, 2, 0}, {"DLQ:storage:index", KindStorageDLQ, 0, 0},
	}
	if !slices.Equal(d.Lists, wantLists) {
		t.Fatalf("lists = %+v\nwant %+v", d.Lists, wantLists)
	}
	if d1 := got[1]; d1.Ingress != 0 || d1.InFlight != 0 || d1.DLQ != 0 || d1.Egress != 1 || d1.Retry != 0 || d1.NextRetry != -1 || d1.StorageDLQ != 0 {
		t.Fatalf("chain 1 = %+v", d1)
	}
	if got, err := ReapAndMeasure(ctx, rdb, nil); err != nil || len(got) != 0 {
		t.Fatalf("ReapAndMeasure(nil) = %v, %v", got, err)
	}
}

func TestReplayAndReasons(t *testing.T) {
	rdb := newClient(t)
	ctx := context.Background()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	pipe := rdb.Pipeline()
	for i, u := range []string{"u1", "u2", "u3"} {
		QueueDeadLetter(pipe, Item{List: "in", UUID: u}, DLQReason{Reason: fmt.Sprintf("link_error: step %d", i), Chain: "main", Step: "link x", At: at})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if got := lrange(t, rdb, "DLQ:in"); !slices.Equal(got, []string{"u1", "u2", "u3"}) {
		t.Fatalf("DLQ = %v: the list must stay bare uuids", got)
	}
	reasons, err := Reasons(ctx, rdb, "in", []string{"u1", "u3", "missing"})
	if err != nil {
		t.Fatal(err)
	}
	if len(reasons) != 2 || reasons["u3"].Reason != "link_error: step 2" || reasons["u1"].Chain != "main" || !reasons["u1"].At.Equal(at) {
		t.Fatalf("Reasons = %+v", reasons)
	}
	if r, err := Reasons(ctx, rdb, "in", nil); err != nil || len(r) != 0 {
		t.Fatalf("Reasons(nil) = %v, %v", r, err)
	}

	rdb.RPush(ctx, "in", "fresh")
	n, err := Replay(ctx, rdb, "in", 2, false)
	if err != nil || n != 2 {
		t.Fatalf("Replay = %d, %v; want 2", n, err)
	}
	if got := lrange(t, rdb, "in"); !slices.Equal(got, []string{"fresh", "u1", "u2"}) {
		t.Fatalf("ingress = %v, want replayed uuids at the tail", got)
	}
	reasons, _ = Reasons(ctx, rdb, "in", []string{"u1", "u2", "u3"})
	if _, ok := reasons["u1"]; ok || len(reasons) != 1 {
		t.Fatalf("reasons after replay = %+v, want only u3's", reasons)
	}
	n, err = Replay(ctx, rdb, "in", 10, false)
	if err != nil || n != 1 {
		t.Fatalf("second Replay = %d, %v; want 1 (what was left)", n, err)
	}
	if rdb.Exists(ctx, "DLQ:in").Val() != 0 {
		t.Fatal("DLQ not empty after replaying everything")
	}
}

// TestSweepOrphans: uuids in a live worker's in-flight list that the worker
// does not hold (a take whose reply was lost) go back to the head of their
// ingress list at the second sweep that finds them; held ones never do.
func TestSweepOrphans(t *testing.T) {
	rdb := newClient(t)
	ctx := context.Background()
	w := NewWorker(rdb, "w1", time.Minute)
	lists := []string{"in", "other"}
	inFlight := InFlightKey("in", "w1")
	rdb.RPush(ctx, "in", "held", "dup", "lost", "dup", "next")
	held, _, _ := w.Take(ctx, "in", time.Second) // held
	dup, _, _ := w.Take(ctx, "in", time.Second)  // dup, held
	// Two moves whose replies were lost: the worker never learns of them.
	rdb.LMove(ctx, "in", inFlight, "LEFT", "RIGHT")
	rdb.LMove(ctx, "in", inFlight, "LEFT", "RIGHT") // the second copy of dup
	if got := lrange(t, rdb, inFlight); !slices.Equal(got, []string{"held", "dup", "lost", "dup"}) {
		t.Fatalf("in-flight = %v", got)
	}

	if n, err := w.SweepOrphans(ctx, lists); err != nil || n != 0 {
		t.Fatalf("first sweep returned %d (%v); want 0: orphans are only suspected at first", n, err)
	}
	// Taken between the sweeps and held: never an orphan.
	late, _, _ := w.Take(ctx, "in", time.Second)
	n, err := w.SweepOrphans(ctx, lists)
	if err != nil || n != 2 {
		t.Fatalf("second sweep returned %d (%v); want 2 (lost and the unheld copy of dup)", n, err)
	}
	if got := lrange(t, rdb, inFlight); !slices.Equal(got, []string{"held", "dup", late.UUID}) {
		t.Fatalf("in-flight after the sweep = %v, want [held dup %s]", got, late.UUID)
	}
	if got := lrange(t, rdb, "in"); len(got) != 2 || !slices.Contains(got, "lost") || !slices.Contains(got, "dup") {
		t.Fatalf("ingress after the sweep = %v, want lost and dup back at the head", got)
	}

	// Finished items are forgotten; what remains held is never swept.
	for _, it := range []Item{held, dup} {
		if err := w.Done(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if n, err := w.SweepOrphans(ctx, lists); err != nil || n != 0 {
			t.Fatalf("sweep with only held items returned %d (%v)", n, err)
		}
	}
	if got := lrange(t, rdb, inFlight); !slices.Equal(got, []string{late.UUID}) {
		t.Fatalf("in-flight = %v, want [%s]", got, late.UUID)
	}
	// An item forgotten without leaving flight (its removal was lost) is an
	// orphan too.
	w.Forget(late)
	_, _ = w.SweepOrphans(ctx, lists)
	if n, _ := w.SweepOrphans(ctx, lists); n != 1 {
		t.Fatalf("forgotten item still in flight: swept %d, want 1", n)
	}
}

// TestOldestAge: the age of the oldest waiting vCon is measured from
// markers of the list's tail, producers unchanged; it follows the head as
// the list drains and is 0 for an empty list.
func TestOldestAge(t *testing.T) {
	rdb := newClient(t)
	ctx := context.Background()
	measure := func() time.Duration {
		t.Helper()
		d, err := ReapAndMeasure(ctx, rdb, []Target{{Ingress: []string{"in"}}})
		if err != nil {
			t.Fatal(err)
		}
		return d[0].OldestAge
	}
	between := func(what string, got, lo, hi time.Duration) {
		t.Helper()
		if got < lo || got > hi {
			t.Errorf("%s: oldest age %s, want %s to %s", what, got, lo, hi)
		}
	}
	between("empty list", measure(), 0, 0)
	rdb.RPush(ctx, "in", "a1", "a2")
	between("first sight", measure(), 0, 50*time.Millisecond)
	time.Sleep(time.Second)
	rdb.RPush(ctx, "in", "b1", "b2")
	// a2 was seen a second ago and is still queued.
	between("backlog growing", measure(), time.Second, 3*time.Second)
	time.Sleep(300 * time.Millisecond)
	between("nothing taken", measure(), 1300*time.Millisecond, 3*time.Second)
	// The a's are taken: the oldest waiting is b2's cohort, seen 300 ms
	// ago (a2's marker would say 1.3 s).
	rdb.LPop(ctx, "in")
	rdb.LPop(ctx, "in")
	between("head taken", measure(), 300*time.Millisecond, 1200*time.Millisecond)
	rdb.Del(ctx, "in")
	between("drained", measure(), 0, 0)
	if n := rdb.Exists(ctx, AgeKey("in")).Val(); n != 0 {
		t.Errorf("markers of an empty list kept: %d", n)
	}
}

// TestItemKeys: however an item is taken, it carries its list's keys as
// the key functions spell them (built once per list and worker), its
// state is read and cleared under StateKey, and Forget releases exactly
// the hold its take added.
func TestItemKeys(t *testing.T) {
	rdb := newClient(t)
	ctx := context.Background()
	take := map[string]func(w *Worker, list string) (Item, bool){
		"Take": func(w *Worker, list string) (Item, bool) {
			it, ok, err := w.Take(ctx, list, time.Second)
			return it, ok && err == nil
		},
		"TakeUpTo": func(w *Worker, list string) (Item, bool) {
			items, err := w.TakeUpTo(ctx, list, 1)
			if err != nil || len(items) != 1 {
				return Item{}, false
			}
			return items[0], true
		},
		"QueueTake": func(w *Worker, list string) (Item, bool) {
			pipe := rdb.Pipeline()
			pt := w.QueueTake(pipe, list)
			if err := pt.Exec(ctx, pipe); err != nil {
				return Item{}, false
			}
			return pt.Item()
		},
	}
	for _, tc := range []struct{ how, list, worker string }{
		{"Take", "in", "w1"},
		{"TakeUpTo", "in", "w1"},
		{"QueueTake", "in", "w1"},
		{"Take", "{q}other", "w1"},
		{"QueueTake", "{q}other", "w2"},
	} {
		t.Run(tc.how+" "+tc.list+" "+tc.worker, func(t *testing.T) {
			w := NewWorker(rdb, tc.worker, time.Minute)
			uuid := "u-" + tc.how
			rdb.RPush(ctx, tc.list, uuid, uuid+"-2")
			it, ok := take[tc.how](w, tc.list)
			if !ok || it.UUID != uuid || it.List != tc.list {
				t.Fatalf("took %+v, %v; want %s from %s", it, ok, uuid, tc.list)
			}
			if got, want := it.inFlightKey(), InFlightKey(tc.list, tc.worker); got != want {
				t.Fatalf("in-flight key %q, want %q", got, want)
			}
			if got, want := it.stateKey(), StateKey(tc.list); got != want {
				t.Fatalf("state key %q, want %q", got, want)
			}
			again, ok := take[tc.how](w, tc.list)
			if !ok || again.keys != it.keys {
				t.Fatalf("second take %+v, %v: want the same list's keys, built once", again, ok)
			}
			if err := w.Done(ctx, again); err != nil {
				t.Fatal(err)
			}
			// The commands built from the kept keys are the ones
			// go-redis's own builders make from the key functions.
			ours, theirs := rdb.Pipeline(), rdb.Pipeline()
			QueueReadItemState(ctx, ours, it)
			QueueReadState(ctx, theirs, tc.list, uuid)
			w.QueueTake(ours, tc.list)
			theirs.LMove(ctx, tc.list, InFlightKey(tc.list, tc.worker), "LEFT", "RIGHT")
			w.QueueDone(ours, it)
			theirs.LRem(ctx, InFlightKey(tc.list, tc.worker), 1, uuid)
			sent := func(c redis.Cmder) string {
				s := fmt.Sprintf("%T", c)
				for _, a := range c.Args() {
					s += fmt.Sprintf(" %T(%v)", a, a)
				}
				return s
			}
			for i, c := range ours.Cmds() {
				if o, th := sent(c), sent(theirs.Cmds()[i]); o != th {
					t.Fatalf("command %d is %s, want %s", i, o, th)
				}
			}
			if n := w.Held(); n != 1 {
				t.Fatalf("held %d after one take, want 1", n)
			}
			if err := w.Done(ctx, it); err != nil {
				t.Fatal(err)
			}
			if n := w.Held(); n != 0 {
				t.Fatalf("held %d after Done, want 0", n)
			}
			if n := rdb.LLen(ctx, InFlightKey(tc.list, tc.worker)).Val(); n != 0 {
				t.Fatalf("%d left in flight", n)
			}
		})
	}
	// An item no worker took (a follower's dead letter) still names its
	// list's state.
	if got := (Item{List: "in", UUID: "u"}).stateKey(); got != StateKey("in") {
		t.Fatalf("state key of a bare item %q", got)
	}
}
