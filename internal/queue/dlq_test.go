package queue

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

// deadLetter fills DLQ:{ingress} with n uuids d0..d{n-1}; every one whose
// index is not a multiple of unrecordedEvery gets a reason (0: all do).
func deadLetter(t *testing.T, rdb redis.UniversalClient, ingress string, n, unrecordedEvery int, at time.Time) []string {
	t.Helper()
	ctx := context.Background()
	pipe := rdb.Pipeline()
	var uuids []string
	for i := range n {
		u := fmt.Sprintf("d%d", i)
		uuids = append(uuids, u)
		if unrecordedEvery > 0 && i%unrecordedEvery == 0 {
			pipe.RPush(ctx, DLQKey(ingress), u)
			continue
		}
		QueueDeadLetter(pipe, Item{List: ingress, UUID: u}, DLQReason{Reason: "failed " + u, Chain: "main", Step: "s", At: at})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	return uuids
}

func TestListDLQ(t *testing.T) {
	rdb := newClient(t)
	ctx := context.Background()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name            string
		n               int
		unrecordedEvery int
	}{
		{"empty", 0, 0},
		{"all recorded", 3, 0},
		{"some unrecorded", 5, 2},
		{"more than one batch", 2*dlqBatch + 7, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ingress := "list-" + tc.name
			uuids := deadLetter(t, rdb, ingress, tc.n, tc.unrecordedEvery, at)
			got, err := ListDLQ(ctx, rdb, ingress)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.n {
				t.Fatalf("got %d entries, want %d", len(got), tc.n)
			}
			for i, d := range got {
				recorded := tc.unrecordedEvery == 0 || i%tc.unrecordedEvery != 0
				if d.UUID != uuids[i] || d.Recorded != recorded {
					t.Fatalf("entry %d = %+v, want uuid %s recorded %v", i, d, uuids[i], recorded)
				}
				if recorded && (d.Reason.Reason != "failed "+d.UUID || !d.Reason.At.Equal(at) || d.Reason.RecordedAt() == nil) {
					t.Fatalf("entry %d reason = %+v", i, d.Reason)
				}
				if !recorded && (d.Reason.Reason != "" || d.Reason.RecordedAt() != nil) {
					t.Fatalf("entry %d has a reason though none was recorded: %+v", i, d.Reason)
				}
			}
			plain, err := DeadLettered(ctx, rdb, ingress)
			if err != nil || len(plain) != tc.n || (tc.n > 0 && !slices.Equal(plain, uuids)) {
				t.Fatalf("DeadLettered = %d uuids, %v", len(plain), err)
			}
		})
	}
}

func TestReplay(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clients := map[string]func(*testing.T) redis.UniversalClient{
		"single":  func(t *testing.T) redis.UniversalClient { return newClient(t) },
		"cluster": func(t *testing.T) redis.UniversalClient { return testenv.StartRedisCluster(t, 3).Client() },
	}
	for _, server := range []string{"single", "cluster"} {
		t.Run(server, func(t *testing.T) {
			rdb := clients[server](t)
			ctx := context.Background()
			for _, tc := range []struct {
				name    string
				ingress string // a tagged name keeps all keys in one slot on a cluster
				n       int
				count   int
				want    int
			}{
				{"empty", "in-empty", 0, 10, 0},
				{"some", "in-some", 5, 2, 2},
				{"all", "in-all", 5, 5, 5},
				{"fewer than asked", "in-fewer", 3, 10, 3},
				{"more than one batch", "in-batches", dlqBatch + 10, dlqBatch + 5, dlqBatch + 5},
				{"tagged", "{tag}in", 4, 3, 3},
			} {
				t.Run(tc.name, func(t *testing.T) {
					uuids := deadLetter(t, rdb, tc.ingress, tc.n, 0, at)
					if err := rdb.RPush(ctx, tc.ingress, "fresh").Err(); err != nil {
						t.Fatal(err)
					}
					n, err := Replay(ctx, rdb, tc.ingress, tc.count, false)
					if err != nil || n != tc.want {
						t.Fatalf("Replay = %d, %v; want %d", n, err, tc.want)
					}
					if got, want := lrange(t, rdb, tc.ingress), append([]string{"fresh"}, uuids[:tc.want]...); !slices.Equal(got, want) {
						t.Fatalf("ingress = %v, want the replayed uuids at the tail in DLQ order", got)
					}
					if got := lrange(t, rdb, DLQKey(tc.ingress)); !slices.Equal(got, uuids[tc.want:]) && len(got)+len(uuids[tc.want:]) > 0 {
						t.Fatalf("DLQ = %v, want %v", got, uuids[tc.want:])
					}
					left := rdb.HKeys(ctx, DLQReasonsKey(tc.ingress)).Val()
					slices.Sort(left)
					want := slices.Clone(uuids[tc.want:])
					slices.Sort(want)
					if !slices.Equal(left, want) && len(left)+len(want) > 0 {
						t.Fatalf("reasons left for %v, want only the uuids still dead-lettered", left)
					}
				})
			}
		})
	}
}

// TestReplayWrongType: an ingress key of another type refuses the replay
// before anything leaves the DLQ.
func TestReplayWrongType(t *testing.T) {
	rdb := newClient(t)
	ctx := context.Background()
	uuids := deadLetter(t, rdb, "in", 3, 0, time.Now())
	rdb.Set(ctx, "in", "x", 0)
	if n, err := Replay(ctx, rdb, "in", 10, false); err == nil || n != 0 {
		t.Fatalf("Replay = %d, %v; want 0 and WRONGTYPE", n, err)
	}
	if got := lrange(t, rdb, DLQKey("in")); !slices.Equal(got, uuids) {
		t.Fatalf("DLQ = %v after a refused replay, want %v", got, uuids)
	}
}
