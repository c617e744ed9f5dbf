package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// countingFS counts what lookups touch: one per Stat or ReadFile, one per
// entry a ReadDir returns. It calls onOp, if set, after each call.
type countingFS struct {
	osFS
	mu      sync.Mutex
	entries int
	calls   int
	onOp    func(calls int)
}

func (c *countingFS) count(entries int) {
	c.mu.Lock()
	c.entries += entries
	c.calls++
	calls, onOp := c.calls, c.onOp
	c.mu.Unlock()
	if onOp != nil {
		onOp(calls)
	}
}

func (c *countingFS) Stat(name string) (fs.FileInfo, error) {
	defer c.count(1)
	return c.osFS.Stat(name)
}

func (c *countingFS) ReadDir(name string, n int) ([]fs.DirEntry, error) {
	e, err := c.osFS.ReadDir(name, n)
	c.count(len(e))
	return e, err
}

func (c *countingFS) ReadFile(name string, limit int64) ([]byte, error) {
	defer c.count(1)
	return c.osFS.ReadFile(name, limit)
}

func (c *countingFS) reset() (entries, calls int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	entries, calls = c.entries, c.calls
	c.entries, c.calls = 0, 0
	return entries, calls
}

// legacyTree fills root as conserver (or we, before the index) would have:
// perDay files in every day directory of the given years and flat files in
// the root, none of them indexed. It returns the number of day directories.
func legacyTree(t *testing.T, root string, years []int, perDay, flat int, tag string) int {
	t.Helper()
	// Hard links to one file: a third of the system calls of writing each.
	seed := filepath.Join(t.TempDir(), "seed.json")
	if err := os.WriteFile(seed, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	days := 0
	for _, year := range years {
		for d := time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC); d.Year() == year; d = d.AddDate(0, 0, 1) {
			dir := filepath.Join(root, d.Format("2006/01/02"))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for i := range perDay {
				if err := os.Link(seed, filepath.Join(dir, fmt.Sprintf("%s-%d-%d.json", tag, days, i))); err != nil {
					t.Fatal(err)
				}
			}
			days++
		}
	}
	for i := range flat {
		if err := os.Link(seed, filepath.Join(root, fmt.Sprintf("%s-flat-%d.json", tag, i))); err != nil {
			t.Fatal(err)
		}
	}
	return days
}

// countedFile is a storage.file on root whose lookups are counted, with the
// clock fixed so that the years the search probes are known.
func countedFile(t *testing.T, root string) (*fileStorage, *countingFS) {
	t.Helper()
	s := newFile(t, map[string]any{"path": root})
	c := &countingFS{}
	s.fsys = c
	s.now = func() time.Time { return time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC) }
	return s, c
}

// TestFileLookupCostIsBounded: on a volume of 20,468 unindexed files in 731
// day directories plus 2,000 flat ones, a miss touches a number of entries
// set by the days stored, not by the files, and an indexed vCon is found in
// two.
func TestFileLookupCostIsBounded(t *testing.T) {
	root := t.TempDir()
	years := []int{2024, 2025}
	days := legacyTree(t, root, years, 28, 2000, "a")
	s, c := countedFile(t, root)
	ctx := context.Background()

	// index entry + 2 flat names, 58 year probes (2027 down to 1970), the
	// month lists, the day lists and 2 names per day.
	const yearsProbed = 2027 - searchFirstYear + 1
	wantMax := 3 + yearsProbed + 12*len(years) + days + 2*days

	if _, err := s.Get(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a missing vCon: err = %v, want ErrNotFound", err)
	}
	miss, _ := c.reset()
	t.Logf("a miss among %d files in %d day directories touched %d entries", 28*days+2000, days, miss)
	if miss > wantMax {
		t.Errorf("a miss touched %d entries, want at most %d", miss, wantMax)
	}

	// Ten thousand more files in the same directories cost a miss nothing.
	legacyTree(t, root, years, 4, 7000, "b")
	if _, err := s.Get(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a missing vCon: err = %v, want ErrNotFound", err)
	}
	if again, _ := c.reset(); again != miss {
		t.Errorf("with 10,000 more files a miss touched %d entries, want the same %d", again, miss)
	}
	// A time-ordered uuid costs a miss the 6 names of its days more.
	if _, err := s.Get(ctx, timeUUID(time.Date(2025, 2, 10, 12, 0, 0, 0, time.UTC))); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a missing vCon: err = %v, want ErrNotFound", err)
	}
	if timed, _ := c.reset(); timed != miss+6 {
		t.Errorf("a miss of a UUIDv7 touched %d entries, want %d", timed, miss+6)
	}
	if err := s.Delete(ctx, "missing"); err != nil {
		t.Fatalf("Delete of a missing vCon: %v", err)
	}
	if del, _ := c.reset(); del > wantMax {
		t.Errorf("Delete of a missing vCon touched %d entries, want at most %d", del, wantMax)
	}

	// An unindexed file is found by the same search.
	legacy := filepath.Join(root, "2024", "06", "15", fileUUID+".json.gz")
	if err := os.Rename(filepath.Join(root, "2024", "06", "15", "a-166-0.json"), legacy); err != nil {
		t.Fatal(err)
	}
	if _, err := s.find(ctx, fileUUID); err != nil {
		t.Fatalf("find of an unindexed file: %v", err)
	}
	if hit, _ := c.reset(); hit > wantMax {
		t.Errorf("finding an unindexed file touched %d entries, want at most %d", hit, wantMax)
	}

	// An unindexed file of a time-ordered uuid (UUIDv7, conserver's
	// UUIDv8) is looked for first in the days around the uuid's time.
	for _, tc := range []struct {
		name    string
		uuidAt  time.Time
		dir     string
		wantMax int
	}{
		{"v7, created the same day", time.Date(2025, 2, 10, 12, 0, 0, 0, time.UTC), "2025/02/10", 3 + 1},
		{"v7, created_at a day later in its own offset", time.Date(2025, 2, 10, 23, 0, 0, 0, time.UTC), "2025/02/11", 3 + 3},
		{"v7, created_at a day earlier", time.Date(2025, 2, 10, 1, 0, 0, 0, time.UTC), "2025/02/09", 3 + 5},
		{"conserver's v8", time.Date(2024, 8, 1, 9, 0, 0, 0, time.UTC), "2024/08/01", 3 + 1},
	} {
		uuid := timeUUID(tc.uuidAt)
		if strings.HasPrefix(tc.name, "conserver's v8") {
			uuid = uuid[:14] + "8" + uuid[15:] // as vcon.Vcon.uuid8_time makes it
		}
		p := filepath.Join(root, filepath.FromSlash(tc.dir), uuid+".json")
		if err := os.WriteFile(p, []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
		if got, err := s.find(ctx, uuid); err != nil || got != p {
			t.Fatalf("%s: find = %s, %v; want %s", tc.name, got, err, p)
		}
		if hit, _ := c.reset(); hit > tc.wantMax {
			t.Errorf("%s: finding it touched %d entries, want at most %d", tc.name, hit, tc.wantMax)
		}
	}

	// Saved through us, the vCon is indexed: one read and one stat.
	v := testVCon(t, fileUUID, "2025-11-30T23:00:00Z", "")
	if err := s.Save(ctx, v); err != nil {
		t.Fatal(err)
	}
	c.reset()
	if _, err := s.Get(ctx, fileUUID); err != nil {
		t.Fatalf("Get of a saved vCon: %v", err)
	}
	if hit, _ := c.reset(); hit != 2 {
		t.Errorf("Get of an indexed vCon touched %d entries, want 2", hit)
	}
	// Delete finds both copies, the indexed and the older unindexed one.
	if err := s.Delete(ctx, fileUUID); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{legacy, filepath.Join(root, "2025", "11", "30", fileUUID+".json"), filepath.Join(root, indexDir, fileUUID)} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s after Delete: err = %v, want it gone", p, err)
		}
	}
}

// TestFileSearchStopsWhenContextEnds: the client of a lookup goes away in
// the middle of the search; the search touches nothing more and returns
// the context's error.
func TestFileSearchStopsWhenContextEnds(t *testing.T) {
	root := t.TempDir()
	legacyTree(t, root, []int{2025}, 2, 0, "a")
	legacy := filepath.Join(root, "2025", "01", "01", fileUUID+".json")
	if err := os.WriteFile(legacy, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	const cancelAt = 100 // well into the search, far from its end
	for _, op := range []struct {
		name string
		call func(s *fileStorage, ctx context.Context) error
	}{
		{"Get", func(s *fileStorage, ctx context.Context) error { _, err := s.Get(ctx, "missing"); return err }},
		{"Delete", func(s *fileStorage, ctx context.Context) error { return s.Delete(ctx, fileUUID) }},
	} {
		t.Run(op.name, func(t *testing.T) {
			s, c := countedFile(t, root)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c.onOp = func(calls int) {
				if calls == cancelAt {
					cancel()
				}
			}
			if err := op.call(s, ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if _, calls := c.reset(); calls != cancelAt {
				t.Errorf("the lookup made %d file system calls, want none after the %dth, when the context ended", calls, cancelAt)
			}
			if _, err := os.Stat(legacy); err != nil {
				t.Errorf("the vCon after a cancelled Delete: %v, want it kept", err)
			}
		})
	}
}

// TestFileSearchBudget: a tree too large to search says so rather than
// answering "not found" for a vCon it did not look at.
func TestFileSearchBudget(t *testing.T) {
	root := t.TempDir()
	legacyTree(t, root, []int{2025}, 1, 0, "a")
	s, c := countedFile(t, root)
	s.searchBudget = 500
	_, err := s.Get(context.Background(), "missing")
	if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "stopped after 500 entries") {
		t.Fatalf("err = %v, want the search to say it stopped after 500 entries", err)
	}
	// The budget is charged before each read; a list may overrun it by one.
	if entries, _ := c.reset(); entries > 3+500+1 {
		t.Errorf("the search touched %d entries, want at most %d", entries, 3+500+1)
	}
}

// TestFileGetFollowsAMove: a Save under a new created_at moves the file
// between Get's lookup and its open; Get returns the moved vCon rather
// than "not found".
func TestFileGetFollowsAMove(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	s, c := countedFile(t, root)
	if err := s.Save(ctx, testVCon(t, fileUUID, "2024-03-05T10:00:00Z", "first")); err != nil {
		t.Fatal(err)
	}
	c.reset()
	moved := false
	c.onOp = func(calls int) {
		if calls == 2 && !moved { // the index entry was read, its file found
			moved = true
			other := newFile(t, map[string]any{"path": root})
			if err := other.Save(ctx, testVCon(t, fileUUID, "2025-01-02T10:00:00Z", "moved")); err != nil {
				t.Error(err)
			}
		}
	}
	got, err := s.Get(ctx, fileUUID)
	if _, calls := c.reset(); !moved || calls != 4 {
		t.Fatalf("moved = %v after %d file system calls, want the move after 2 and 2 more to find the new file", moved, calls)
	}
	if err != nil || !strings.Contains(string(got), `"moved"`) {
		t.Errorf("Get = %s, %v; want the moved vCon", got, err)
	}
}

// timeUUID is a UUIDv7 of time t.
func timeUUID(t time.Time) string {
	h := fmt.Sprintf("%012x", t.UnixMilli())
	return h[:8] + "-" + h[8:] + "-7abc-8def-0123456789ab"
}
