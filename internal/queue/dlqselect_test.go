package queue

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

// TestReplayMatchingAndPurge replays and purges selected dead letters on a
// single server and on a cluster (where DLQ:x and x live in other slots).
func TestReplayMatchingAndPurge(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	servers := map[string]func(t *testing.T) redis.UniversalClient{
		"single":  func(t *testing.T) redis.UniversalClient { return newClient(t) },
		"cluster": func(t *testing.T) redis.UniversalClient { return testenv.StartRedisCluster(t, 3).Client() },
	}
	for server, open := range servers {
		t.Run(server, func(t *testing.T) {
			rdb := open(t)
			tests := []struct {
				name       string
				match      ReasonMatch
				count      int
				wantMoved  []string // replayed, in ingress order
				wantLeft   []string // still dead-lettered
				purge      bool
				wantPurged int
			}{
				// d0 and d3 have no recorded reason (unrecordedEvery 3).
				{name: "substring", match: ReasonMatch{Substring: "d4"}, wantMoved: []string{"d4"}, wantLeft: []string{"d0", "d1", "d2", "d3", "d5"}},
				{name: "prefix of every recorded reason", match: ReasonMatch{Substring: "failed"}, wantMoved: []string{"d1", "d2", "d4", "d5"}, wantLeft: []string{"d0", "d3"}},
				{name: "count", match: ReasonMatch{Substring: "failed"}, count: 2, wantMoved: []string{"d1", "d2"}, wantLeft: []string{"d0", "d3", "d4", "d5"}},
				{name: "no match", match: ReasonMatch{Substring: "timeout"}, wantLeft: []string{"d0", "d1", "d2", "d3", "d4", "d5"}},
				{name: "empty selects all", match: ReasonMatch{}, wantMoved: []string{"d0", "d1", "d2", "d3", "d4", "d5"}},
				{name: "purge matching", match: ReasonMatch{Substring: "failed d"}, purge: true, wantPurged: 4, wantLeft: []string{"d0", "d3"}},
				{name: "purge all", match: ReasonMatch{}, purge: true, wantPurged: 6},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					ingress := "sel-" + server + "-" + tc.name
					deadLetter(t, rdb, ingress, 6, 3, at)
					// State a replay or purge must drop.
					if err := rdb.HSet(ctx, StateKey(ingress), "a:d4", "[]", "r:d4", `["x"]`).Err(); err != nil {
						t.Fatal(err)
					}
					if tc.purge {
						chosen, err := Select(ctx, rdb, ingress, tc.match, 0)
						if err != nil {
							t.Fatal(err)
						}
						uuids := make([]string, len(chosen))
						for i, d := range chosen {
							uuids[i] = d.UUID
						}
						n, err := Purge(ctx, rdb, ingress, uuids)
						if err != nil || n != tc.wantPurged {
							t.Fatalf("Purge = %d, %v; want %d", n, err, tc.wantPurged)
						}
						if got := rdb.LRange(ctx, ingress, 0, -1).Val(); len(got) != 0 {
							t.Errorf("purge queued %v", got)
						}
					} else {
						n, err := ReplayMatching(ctx, rdb, ingress, tc.match, tc.count, false)
						if err != nil || n != len(tc.wantMoved) {
							t.Fatalf("ReplayMatching = %d, %v; want %d", n, err, len(tc.wantMoved))
						}
						if got := rdb.LRange(ctx, ingress, 0, -1).Val(); !slices.Equal(got, tc.wantMoved) && len(got)+len(tc.wantMoved) > 0 {
							t.Errorf("ingress = %v, want %v", got, tc.wantMoved)
						}
					}
					if got := rdb.LRange(ctx, DLQKey(ingress), 0, -1).Val(); !slices.Equal(got, tc.wantLeft) && len(got)+len(tc.wantLeft) > 0 {
						t.Errorf("DLQ = %v, want %v", got, tc.wantLeft)
					}
					reasons := rdb.HKeys(ctx, DLQReasonsKey(ingress)).Val()
					for _, u := range reasons {
						if !slices.Contains(tc.wantLeft, u) {
							t.Errorf("reason of %s is still recorded", u)
						}
					}
					// A replay starts a new retry budget and resumes after the
					// completed links; a purge forgets both.
					if !slices.Contains(tc.wantLeft, "d4") {
						if rdb.HExists(ctx, StateKey(ingress), "a:d4").Val() {
							t.Error("the attempts of d4 are kept after it left the DLQ")
						}
						if kept := rdb.HExists(ctx, StateKey(ingress), "r:d4").Val(); kept == tc.purge {
							t.Errorf("completed links of d4 kept = %v after a purge = %v", kept, tc.purge)
						}
					}
				})
			}
		})
	}
}

// TestReplayMatchingSkipsWhatLeft: a uuid replayed by someone else between
// the selection and the move is not queued twice.
func TestReplayMatchingSkipsWhatLeft(t *testing.T) {
	ctx := context.Background()
	rdb := newClient(t)
	deadLetter(t, rdb, "raced", 2, 0, time.Now())
	if err := rdb.LRem(ctx, DLQKey("raced"), 1, "d0").Err(); err != nil {
		t.Fatal(err)
	}
	n, err := replayChosenScript.Run(ctx, rdb, []string{DLQKey("raced"), "raced", DLQReasonsKey("raced"), StateKey("raced")}, "0", "d0", "d1").Int()
	if err != nil || n != 1 {
		t.Fatalf("moved %d, %v; want 1", n, err)
	}
	if got := rdb.LRange(ctx, "raced", 0, -1).Val(); !slices.Equal(got, []string{"d1"}) {
		t.Errorf("ingress = %v, want [d1]", got)
	}
}

// TestLocate finds a uuid in every kind of key of a Target.
func TestLocate(t *testing.T) {
	ctx := context.Background()
	rdb := newClient(t)
	const u = "018f3c1e-0000-7000-8000-00000000000a"
	due := time.UnixMilli(1_800_000_000_000).UTC()
	pipe := rdb.Pipeline()
	pipe.RPush(ctx, "in", "other", u)
	pipe.ZAdd(ctx, WorkersKey("in"), redis.Z{Score: 1, Member: "w1"}, redis.Z{Score: 1, Member: "w2"})
	pipe.RPush(ctx, InFlightKey("in", "w2"), u)
	pipe.ZAdd(ctx, RetryKey("in"), redis.Z{Score: float64(due.UnixMilli()), Member: u})
	QueueDeadLetter(pipe, Item{List: "in2", UUID: u}, DLQReason{Reason: "boom", Step: "jq", At: due})
	pipe.RPush(ctx, "out", u)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		uuid   string
		target Target
		want   []string // kind:key
	}{
		{"everywhere", u, Target{Ingress: []string{"in", "in2"}, Egress: []string{"out"}}, []string{
			"ingress:in", "retry:" + RetryKey("in"), "dlq:DLQ:in2", "inflight:" + InFlightKey("in", "w2"), "egress:out"}},
		{"nowhere", "018f3c1e-0000-7000-8000-0000000000ff", Target{Ingress: []string{"in", "in2"}, Egress: []string{"out"}}, nil},
		{"no lists", u, Target{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := Locate(ctx, rdb, tc.uuid, tc.target)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range w.Places {
				got = append(got, p.Kind+":"+p.Key)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("places = %v, want %v", got, tc.want)
			}
			if tc.name == "everywhere" {
				if p := w.Places[0].Position; p == nil || *p != 1 {
					t.Errorf("ingress position = %v, want 1", p)
				}
				if d := w.Places[1].Due; d == nil || !d.Equal(due) {
					t.Errorf("retry due = %v, want %v", d, due)
				}
				if r, ok := w.DeadLetters["in2"]; !ok || r.Reason != "boom" || r.Step != "jq" {
					t.Errorf("dead letter record = %+v", w.DeadLetters)
				}
			}
		})
	}
}
