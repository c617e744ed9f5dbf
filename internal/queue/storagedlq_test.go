package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestReplayStorageDLQ fills DLQ:storage:archive as the worker's outcome
// does and replays it with writes that succeed or fail as each case says:
// only written uuids leave, in queue order, with their reasons; the first
// failure stops the replay and keeps its entry with the new reason; a
// write that can never happen is skipped; count bounds the work.
func TestReplayStorageDLQ(t *testing.T) {
	rdb := newClient(t)
	ctx := context.Background()
	errDown := errors.New("HTTP 503 from archive")
	for _, tc := range []struct {
		name        string
		queued      []string
		count       int
		fail        map[string]error // uuid -> its write's error
		wantTried   []string
		wantLeft    []string
		wantSkipped []string
		wantStopped string
		// wantReasons: uuid -> substring of its recorded reason; "" means
		// none recorded.
		wantReasons map[string]string
	}{
		{
			name: "every write succeeds", queued: []string{"u1", "u2", "u3"}, count: 10,
			wantTried: []string{"u1", "u2", "u3"}, wantLeft: []string{},
			wantReasons: map[string]string{"u1": "", "u2": "", "u3": ""},
		},
		{
			name: "a storage still down stops the replay", queued: []string{"u1", "u2", "u3"}, count: 10,
			fail:      map[string]error{"u2": errDown},
			wantTried: []string{"u1", "u2"}, wantLeft: []string{"u2", "u3"}, wantStopped: "u2",
			wantReasons: map[string]string{"u1": "", "u2": "storage_error: replay: HTTP 503 from archive", "u3": "storage_error: storage archive: first failure of u3"},
		},
		{
			name: "a body gone is skipped, the rest written", queued: []string{"u1", "u2", "u3"}, count: 10,
			fail:      map[string]error{"u1": fmt.Errorf("no body in Redis: %w", ErrNothingToWrite)},
			wantTried: []string{"u1", "u2", "u3"}, wantLeft: []string{"u1"}, wantSkipped: []string{"u1"},
			wantReasons: map[string]string{"u1": "replay: no body in Redis: nothing to write", "u2": ""},
		},
		{
			name: "count bounds the work", queued: []string{"u1", "u2", "u3"}, count: 2,
			wantTried: []string{"u1", "u2"}, wantLeft: []string{"u3"},
			wantReasons: map[string]string{"u3": "first failure of u3"},
		},
		{
			// The same vCon failed twice: the replay removes the oldest
			// entry, and the later one keeps its reason for its own replay.
			name: "a uuid queued twice leaves once", queued: []string{"u1", "u2", "u1"}, count: 1,
			wantTried: []string{"u1"}, wantLeft: []string{"u2", "u1"},
			wantReasons: map[string]string{"u1": "first failure of u1"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb.FlushAll(ctx)
			pipe := rdb.Pipeline()
			for _, u := range tc.queued {
				QueueStorageDeadLetter(pipe, "archive", u, DLQReason{Reason: "storage_error: storage archive: first failure of " + u, Chain: "main", Step: "storage archive", At: time.Now().UTC()})
			}
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
			var tried []string
			res, err := ReplayStorageDLQ(ctx, rdb, "archive", tc.count, func(_ context.Context, uuid string) error {
				tried = append(tried, uuid)
				return tc.fail[uuid]
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(tried, tc.wantTried) {
				t.Errorf("writes tried %v, want %v", tried, tc.wantTried)
			}
			if left := rdb.LRange(ctx, StorageDLQKey("archive"), 0, -1).Val(); !slices.Equal(left, tc.wantLeft) {
				t.Errorf("%s holds %v, want %v", StorageDLQKey("archive"), left, tc.wantLeft)
			}
			if want := len(tc.wantTried) - len(tc.wantSkipped) - min(len(tc.wantStopped), 1); res.Written != want {
				t.Errorf("written %d, want %d", res.Written, want)
			}
			if !slices.Equal(res.Skipped, tc.wantSkipped) || res.Stopped != tc.wantStopped || (tc.wantStopped != "") != (res.StopErr != nil) {
				t.Errorf("skipped %v, stopped at %q (%v); want %v, %q", res.Skipped, res.Stopped, res.StopErr, tc.wantSkipped, tc.wantStopped)
			}
			reasons, err := Reasons(ctx, rdb, StorageDLQList("archive"), slices.Collect(func(yield func(string) bool) {
				for u := range tc.wantReasons {
					if !yield(u) {
						return
					}
				}
			}))
			if err != nil {
				t.Fatal(err)
			}
			for u, want := range tc.wantReasons {
				r, ok := reasons[u]
				switch {
				case want == "" && ok:
					t.Errorf("%s keeps its reason %q after its write", u, r.Reason)
				case want != "" && (!ok || !strings.Contains(r.Reason, want) || r.Chain != "main" || r.Step != "storage archive"):
					t.Errorf("%s reason %+v, want one containing %q of chain main, step storage archive", u, r, want)
				}
			}
			if rdb.Exists(ctx, StorageReplayLockKey("archive")).Val() != 0 {
				t.Error("the replay lock outlived the replay")
			}
		})
	}
}

// TestReplayStorageDLQLock: a second replay of the same storage while one
// runs is refused and writes nothing; another storage's replay runs.
func TestReplayStorageDLQLock(t *testing.T) {
	rdb := newClient(t)
	ctx := context.Background()
	pipe := rdb.Pipeline()
	QueueStorageDeadLetter(pipe, "archive", "u1", DLQReason{Reason: "storage_error"})
	QueueStorageDeadLetter(pipe, "index", "u1", DLQReason{Reason: "storage_error"})
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	nested := func(storage string) (StorageReplay, error) {
		return ReplayStorageDLQ(ctx, rdb, storage, 10, func(context.Context, string) error {
			t.Errorf("a write of %s ran", storage)
			return nil
		})
	}
	var inner, other error
	_, err := ReplayStorageDLQ(ctx, rdb, "archive", 10, func(context.Context, string) error {
		_, inner = nested("archive")
		_, other = ReplayStorageDLQ(ctx, rdb, "index", 10, func(context.Context, string) error { return nil })
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(inner, ErrStorageReplayBusy) || !strings.Contains(inner.Error(), "DEL "+StorageReplayLockKey("archive")) {
		t.Errorf("second replay: %v, want ErrStorageReplayBusy saying which key to remove", inner)
	}
	if other != nil {
		t.Errorf("another storage's replay: %v", other)
	}
	// A lock held by a replay that crashed: refused until removed.
	rdb.Set(ctx, StorageReplayLockKey("archive"), "crashed", 0)
	QueueStorageDeadLetter(pipe, "archive", "u2", DLQReason{Reason: "storage_error"})
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := nested("archive"); !errors.Is(err, ErrStorageReplayBusy) {
		t.Errorf("replay under a stale lock: %v, want ErrStorageReplayBusy", err)
	}
	if v := rdb.Get(ctx, StorageReplayLockKey("archive")).Val(); v != "crashed" {
		t.Errorf("a refused replay changed the lock to %q", v)
	}
}
