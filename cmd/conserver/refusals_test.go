package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
	"github.com/vcon-operator/vcon-operator/internal/vcon/sample"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// TestBinaryRefusedOutcomesAndOversizedBodies runs the real worker on two
// chains: one whose egress list another client made a hash, one whose
// list holds a body over --max-body-bytes among normal ones. Every vCon
// ends in exactly one place: the refused outcomes and the oversized body
// in the DLQ with their reasons, the rest on egress; nothing in flight,
// nothing lost.
func TestBinaryRefusedOutcomesAndOversizedBodies(t *testing.T) {
	srv := testenv.StartRedis(t)
	rdb := srv.Client()
	ctx := context.Background()
	cfg := writeConfig(t, `
links:
  tagger: {module: links.tag, options: {tags: [reviewed]}}
chains:
  broken: {links: [tagger], ingress_lists: [in-broken], egress_lists: [out-broken]}
  sized:  {links: [tagger], ingress_lists: [in-sized], egress_lists: [out-sized]}
`)
	rdb.HSet(ctx, "out-broken", "not", "a list")
	broken := enqueue(t, rdb, "in-broken", 20, 2000)
	var sized []string
	for i := range 10 {
		u := testUUID(1000 + i)
		size := 2000
		if i == 4 {
			size = 200_000
		}
		rdb.Set(ctx, vconstore.Key(u), sample.Document(u, size), 0)
		sized = append(sized, u)
	}
	rdb.RPush(ctx, "in-sized", sized)

	w := startWorker(t, cfg, srv.URL(), "--max-body-bytes", "50000")
	w.waitReady(60 * time.Second)
	deadline := time.Now().Add(60 * time.Second)
	for rdb.LLen(ctx, queue.DLQKey("in-broken")).Val() < 20 || rdb.LLen(ctx, "out-sized").Val()+rdb.LLen(ctx, queue.DLQKey("in-sized")).Val() < 10 {
		if time.Now().After(deadline) {
			t.Fatalf("not every vCon has an outcome within 60s\n%s", w.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}

	dlq := rdb.LRange(ctx, queue.DLQKey("in-broken"), 0, -1).Val()
	slices.Sort(dlq)
	if !slices.Equal(dlq, broken) {
		t.Fatalf("DLQ of the broken chain holds %d uuids, want each of %d once", len(dlq), len(broken))
	}
	reasons, err := queue.Reasons(ctx, rdb, "in-broken", broken)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range broken {
		if r := reasons[u].Reason; !strings.HasPrefix(r, "outcome_failed: RPUSH out-broken: the key holds a hash, not a list") {
			t.Fatalf("reason of %s: %q", u, r)
		}
	}
	if n := rdb.HLen(ctx, "out-broken").Val(); n != 1 {
		t.Fatalf("the hash at the egress name was changed (%d fields)", n)
	}

	want := slices.Delete(slices.Clone(sized), 4, 5)
	got := rdb.LRange(ctx, "out-sized", 0, -1).Val()
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("egress %v, want every vCon but the oversized one, each once", got)
	}
	if got := rdb.LRange(ctx, queue.DLQKey("in-sized"), 0, -1).Val(); !slices.Equal(got, []string{sized[4]}) {
		t.Fatalf("DLQ %v, want only the oversized vCon", got)
	}
	r, _ := queue.Reasons(ctx, rdb, "in-sized", []string{sized[4]})
	if !strings.HasPrefix(r[sized[4]].Reason, "too_large: body is over the size limit of 50000 bytes") {
		t.Fatalf("reason of the oversized vCon: %q", r[sized[4]].Reason)
	}
	if keys := rdb.Keys(ctx, "vcon-operator:inflight:*").Val(); len(keys) != 0 {
		t.Fatalf("in-flight lists left: %v", keys)
	}
	m := w.metrics()
	for _, line := range []string{
		`vcon_dead_letters_total{chain="broken",reason="outcome_failed"} 20`,
		`vcon_dead_letters_total{chain="sized",reason="too_large"} 1`,
		`vcon_worker_outcome_refusals_total{chain="broken"} 20`,
	} {
		if !strings.Contains(m, line) {
			t.Errorf("metrics lack %s", line)
		}
	}
}
