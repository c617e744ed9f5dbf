package storage

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
)

const fileUUID = "0190d6f0-1c2d-7a00-8000-00000000f11e"

func newFile(t *testing.T, opts map[string]any) *fileStorage {
	t.Helper()
	s, err := New(context.Background(), "files", "storage.file", opts, Deps{})
	if err != nil {
		t.Fatalf("build storage.file: %v", err)
	}
	return s.(*fileStorage)
}

// listFiles returns every file below root, relative, sorted.
func listFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	sort.Strings(out)
	return out
}

// readIndexEntry returns the index entry of uuid below root, "" when none.
func readIndexEntry(t *testing.T, root, uuid string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, indexDir, uuid))
	if errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFileSaveLayoutAndRoundTrip(t *testing.T) {
	// The process umask must not decide the permissions: they are set exactly.
	old := syscall.Umask(0o077)
	t.Cleanup(func() { syscall.Umask(old) })

	tests := []struct {
		name      string
		opts      map[string]any
		createdAt string
		wantFile  string
		wantMode  os.FileMode
		wantDir   os.FileMode
	}{
		{"dated by default", nil, "2024-03-05T10:00:00Z", "2024/03/05/" + fileUUID + ".json", 0o644, 0o755},
		// 01:30 at +05:00 is 20:30 on the 5th in UTC; the file goes under
		// the producer's own date, the 6th, as conserver files it.
		{"date in created_at's own offset", nil, "2024-03-06T01:30:00+05:00", "2024/03/06/" + fileUUID + ".json", 0o644, 0o755},
		{"flat when dating is off", map[string]any{"organize_by_date": false}, "2024-03-05T10:00:00Z", fileUUID + ".json", 0o644, 0o755},
		{"flat when created_at does not parse", nil, "last tuesday", fileUUID + ".json", 0o644, 0o755},
		{"flat when created_at is missing", nil, "", fileUUID + ".json", 0o644, 0o755},
		{"gzip", map[string]any{"compression": true}, "2024-12-31T23:59:59.123456-08:00", "2024/12/31/" + fileUUID + ".json.gz", 0o644, 0o755},
		{"permissions", map[string]any{"file_permissions": "0600", "dir_permissions": 0o750}, "2024-03-05T10:00:00Z", "2024/03/05/" + fileUUID + ".json", 0o600, 0o750},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "vcons") // created by Save
			opts := map[string]any{"path": root}
			for k, v := range tc.opts {
				opts[k] = v
			}
			s := newFile(t, opts)
			v := testVCon(t, fileUUID, tc.createdAt, "")
			want, err := v.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			// Twice: a redelivered vCon overwrites its one file.
			for range 2 {
				if err := s.Save(ctx, v); err != nil {
					t.Fatalf("Save: %v", err)
				}
			}
			// The vCon's file and its index entry, which names it.
			files := listFiles(t, root)
			wantFiles := []string{filepath.Join(indexDir, fileUUID), filepath.FromSlash(tc.wantFile)}
			if !slices.Equal(files, wantFiles) {
				t.Fatalf("files = %v, want exactly %v", files, wantFiles)
			}
			if entry := readIndexEntry(t, root, fileUUID); entry != tc.wantFile {
				t.Errorf("index entry = %q, want %q", entry, tc.wantFile)
			}
			p := filepath.Join(root, tc.wantFile)
			raw, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(p, ".gz") {
				zr, err := gzip.NewReader(bytes.NewReader(raw))
				if err != nil {
					t.Fatalf("file is not gzip: %v", err)
				}
				if raw, err = io.ReadAll(zr); err != nil {
					t.Fatalf("gunzip: %v", err)
				}
			}
			if !bytes.Equal(raw, want) {
				t.Errorf("file content = %s, want %s", raw, want)
			}
			fi, _ := os.Stat(p)
			if fi.Mode().Perm() != tc.wantMode {
				t.Errorf("file mode = %v, want %v", fi.Mode().Perm(), tc.wantMode)
			}
			di, _ := os.Stat(filepath.Dir(p))
			if di.Mode().Perm() != tc.wantDir {
				t.Errorf("dir mode = %v, want %v", di.Mode().Perm(), tc.wantDir)
			}
			fi, _ = os.Stat(filepath.Join(root, indexDir, fileUUID))
			di, _ = os.Stat(filepath.Join(root, indexDir))
			if fi.Mode().Perm() != tc.wantMode || di.Mode().Perm() != tc.wantDir {
				t.Errorf("index entry mode = %v in a directory of mode %v, want %v and %v", fi.Mode().Perm(), di.Mode().Perm(), tc.wantMode, tc.wantDir)
			}
			got, err := s.Get(ctx, fileUUID)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Get = %s, want %s", got, want)
			}
			if err := s.Delete(ctx, fileUUID); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if files := listFiles(t, root); len(files) != 0 {
				t.Errorf("files after Delete = %v, want none (the index entry too)", files)
			}
			if _, err := s.Get(ctx, fileUUID); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get after Delete: err = %v, want ErrNotFound", err)
			}
			if err := s.Delete(ctx, fileUUID); err != nil {
				t.Errorf("Delete of a missing vCon: %v", err)
			}
		})
	}
}

func TestFileGetFindsEitherLayout(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	dated := newFile(t, map[string]any{"path": root, "compression": true})
	flat := newFile(t, map[string]any{"path": root, "organize_by_date": false})
	if err := dated.Save(ctx, testVCon(t, "a1", "2023-01-02T03:04:05Z", "")); err != nil {
		t.Fatal(err)
	}
	if err := flat.Save(ctx, testVCon(t, "b2", "2023-01-02T03:04:05Z", "")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		s       *fileStorage
		uuid    string
		wantErr error
	}{
		{"flat storage finds a dated gzip file", flat, "a1", nil},
		{"dated storage finds a flat file", dated, "b2", nil},
		{"missing", dated, "c3", ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body, err := tc.s.Get(ctx, tc.uuid)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Get: err = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && !bytes.Contains(body, []byte(`"uuid":"`+tc.uuid+`"`)) {
				t.Errorf("Get = %s, want the vCon %s", body, tc.uuid)
			}
		})
	}
}

func TestFileRefusals(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		opts    map[string]any
		prepare func(t *testing.T, root string)
		uuid    string
		wantErr string
	}{
		{"path separator", nil, nil, "../escape", "cannot be a file name"},
		{"dot dot", nil, nil, "..", "cannot be a file name"},
		{"backslash", nil, nil, `a\b`, "cannot be a file name"},
		{"empty uuid", nil, nil, "", "cannot be a file name"},
		{"over max_file_size", map[string]any{"max_file_size": 100}, nil, fileUUID, "over max_file_size 100"},
		{
			// The rename fails because a directory holds the name: the
			// temporary file must not be left behind.
			"failed rename leaves no temporary file", map[string]any{"organize_by_date": false},
			func(t *testing.T, root string) {
				if err := os.Mkdir(filepath.Join(root, fileUUID+".json"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(root, fileUUID+".json", "x"), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			},
			fileUUID, "rename into",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if tc.prepare != nil {
				tc.prepare(t, root)
			}
			before := listFiles(t, root)
			opts := map[string]any{"path": root}
			for k, v := range tc.opts {
				opts[k] = v
			}
			s := newFile(t, opts)
			err := s.Save(ctx, testVCon(t, tc.uuid, "2024-03-05T10:00:00Z", strings.Repeat("s", 200)))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Save: err = %v, want one containing %q", err, tc.wantErr)
			}
			if after := listFiles(t, root); strings.Join(after, ",") != strings.Join(before, ",") {
				t.Errorf("files after a refused Save = %v, want %v", after, before)
			}
			if tc.uuid != fileUUID {
				if _, err := s.Get(ctx, tc.uuid); err == nil || errors.Is(err, ErrNotFound) {
					t.Errorf("Get(%q): err = %v, want a refusal", tc.uuid, err)
				}
			}
		})
	}
}

func TestFileBadOptions(t *testing.T) {
	tests := []struct {
		opts    map[string]any
		wantKey string
	}{
		{map[string]any{"path": 5}, "path"},
		{map[string]any{"path": ""}, "path"},
		{map[string]any{"organize_by_date": "sometimes"}, "organize_by_date"},
		{map[string]any{"compression": 2}, "compression"},
		{map[string]any{"max_file_size": "big"}, "max_file_size"},
		{map[string]any{"max_file_size": 0}, "max_file_size"},
		{map[string]any{"file_permissions": "rw-r--r--"}, "file_permissions"},
		{map[string]any{"dir_permissions": 4095}, "dir_permissions"},
	}
	for _, tc := range tests {
		t.Run(tc.wantKey, func(t *testing.T) {
			_, err := New(context.Background(), "files", "storage.file", tc.opts, Deps{})
			if err == nil || !strings.Contains(err.Error(), `"`+tc.wantKey+`"`) {
				t.Fatalf("err = %v, want one naming %q", err, tc.wantKey)
			}
		})
	}
}

// TestFileIndex saves one uuid twice with the second save differing as a
// redelivery or a re-run chain can make it differ: there must be one file,
// the one the index names, and Get must return the second save.
func TestFileIndex(t *testing.T) {
	tests := []struct {
		name                string
		firstOpts, lastOpts map[string]any
		firstAt, lastAt     string
		wantFile            string
	}{
		{"same vCon again", nil, nil, "2024-03-05T10:00:00Z", "2024-03-05T10:00:00Z", "2024/03/05/" + fileUUID + ".json"},
		{"created_at moved to another day", nil, nil, "2024-03-05T10:00:00Z", "2025-01-02T10:00:00Z", "2025/01/02/" + fileUUID + ".json"},
		{"created_at removed", nil, nil, "2024-03-05T10:00:00Z", "", fileUUID + ".json"},
		{"compression turned on", nil, map[string]any{"compression": true}, "2024-03-05T10:00:00Z", "2024-03-05T10:00:00Z", "2024/03/05/" + fileUUID + ".json.gz"},
		{"dating turned off", nil, map[string]any{"organize_by_date": false}, "2024-03-05T10:00:00Z", "2024-03-05T10:00:00Z", fileUUID + ".json"},
		{"dating turned on", map[string]any{"organize_by_date": false}, nil, "2024-03-05T10:00:00Z", "2024-03-05T10:00:00Z", "2024/03/05/" + fileUUID + ".json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			ctx := context.Background()
			build := func(extra map[string]any) *fileStorage {
				opts := map[string]any{"path": root}
				for k, v := range extra {
					opts[k] = v
				}
				return newFile(t, opts)
			}
			if err := build(tc.firstOpts).Save(ctx, testVCon(t, fileUUID, tc.firstAt, "first")); err != nil {
				t.Fatalf("first Save: %v", err)
			}
			last := build(tc.lastOpts)
			v := testVCon(t, fileUUID, tc.lastAt, "last")
			if err := last.Save(ctx, v); err != nil {
				t.Fatalf("second Save: %v", err)
			}
			wantFiles := []string{filepath.Join(indexDir, fileUUID), filepath.FromSlash(tc.wantFile)}
			if files := listFiles(t, root); !slices.Equal(files, wantFiles) {
				t.Errorf("files = %v, want exactly %v", files, wantFiles)
			}
			if entry := readIndexEntry(t, root, fileUUID); entry != tc.wantFile {
				t.Errorf("index entry = %q, want %q", entry, tc.wantFile)
			}
			want, _ := v.Marshal()
			for name, s := range map[string]*fileStorage{"the last storage": last, "the first storage": build(tc.firstOpts)} {
				if got, err := s.Get(ctx, fileUUID); err != nil || !bytes.Equal(got, want) {
					t.Errorf("Get through %s = %s, %v; want the second save", name, got, err)
				}
			}
		})
	}
}

// TestFileIndexEntryIsNotTrusted: an entry that is torn (a crash of a file
// system that does not order the rename after the data) or names something
// other than the uuid's file below the root is ignored, and the file is
// found by its layout instead.
func TestFileIndexEntryIsNotTrusted(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, fileUUID+".json"), []byte(`{"secret":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(t.TempDir(), outside) // the same depth as root
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, entry string }{
		{"empty", ""},
		{"torn", "2024/03/0"},
		{"relative path out of the root", filepath.ToSlash(rel) + "/" + fileUUID + ".json"},
		{"absolute path", outside + "/" + fileUUID + ".json"},
		{"another vCon's file", "2024/03/05/other.json"},
		{"too long", strings.Repeat("a/", 600) + fileUUID + ".json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			ctx := context.Background()
			s := newFile(t, map[string]any{"path": root})
			v := testVCon(t, fileUUID, "2024-03-05T10:00:00Z", "")
			if err := s.Save(ctx, v); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, indexDir, fileUUID), []byte(tc.entry), 0o644); err != nil {
				t.Fatal(err)
			}
			want, _ := v.Marshal()
			if got, err := s.Get(ctx, fileUUID); err != nil || !bytes.Equal(got, want) {
				t.Errorf("Get = %s, %v; want the vCon from its date directory", got, err)
			}
			// Saving again repairs the entry and removes nothing outside.
			if err := s.Save(ctx, v); err != nil {
				t.Fatal(err)
			}
			if got := readIndexEntry(t, root, fileUUID); got != "2024/03/05/"+fileUUID+".json" {
				t.Errorf("index entry after a new Save = %q", got)
			}
			if _, err := os.Stat(filepath.Join(outside, fileUUID+".json")); err != nil {
				t.Errorf("the file outside the root: %v", err)
			}
		})
	}
}

// TestFileIndexWriteFailure: when the index entry cannot be written the
// Save fails (and is retried), leaving no temporary file and the vCon's
// file readable.
func TestFileIndexWriteFailure(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, root string)
		wantErr string
	}{
		{
			// A non-empty directory holds the entry's name, so the rename fails.
			"directory where the entry goes",
			func(t *testing.T, root string) {
				if err := os.MkdirAll(filepath.Join(root, indexDir, fileUUID, "x"), 0o755); err != nil {
					t.Fatal(err)
				}
			},
			"rename into",
		},
		{
			"file where the index directory goes",
			func(t *testing.T, root string) {
				if err := os.WriteFile(filepath.Join(root, indexDir), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			},
			"create temporary file",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			ctx := context.Background()
			tc.prepare(t, root)
			before := listFiles(t, root)
			s := newFile(t, map[string]any{"path": root})
			err := s.Save(ctx, testVCon(t, fileUUID, "2024-03-05T10:00:00Z", ""))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || IsPermanent(err) {
				t.Fatalf("Save: err = %v, want one containing %q that is not permanent", err, tc.wantErr)
			}
			want := append(before, filepath.FromSlash("2024/03/05/"+fileUUID+".json"))
			slices.Sort(want)
			if files := listFiles(t, root); !slices.Equal(files, want) {
				t.Errorf("files = %v, want %v: the vCon's file and no temporary file", files, want)
			}
			if _, err := s.Get(ctx, fileUUID); err != nil {
				t.Errorf("Get: %v, want the vCon found by its layout", err)
			}
		})
	}
}

// TestFileLookupCancelled: a lookup for a request that has ended does not
// start.
func TestFileLookupCancelled(t *testing.T) {
	root := t.TempDir()
	s := newFile(t, map[string]any{"path": root})
	if err := s.Save(context.Background(), testVCon(t, fileUUID, "2024-03-05T10:00:00Z", "")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, uuid := range []string{fileUUID, "missing"} {
		if _, err := s.Get(ctx, uuid); !errors.Is(err, context.Canceled) {
			t.Errorf("Get(%s) with a cancelled context: err = %v, want context.Canceled", uuid, err)
		}
		if err := s.Delete(ctx, uuid); !errors.Is(err, context.Canceled) {
			t.Errorf("Delete(%s) with a cancelled context: err = %v, want context.Canceled", uuid, err)
		}
	}
	if err := s.Save(ctx, testVCon(t, "other", "2024-03-05T10:00:00Z", "")); !errors.Is(err, context.Canceled) {
		t.Errorf("Save with a cancelled context: err = %v, want context.Canceled", err)
	}
	if _, err := s.Get(context.Background(), fileUUID); err != nil {
		t.Errorf("Get after the cancelled Delete: %v, want the vCon still there", err)
	}
}

// TestFileRedeliveryKeepsIndexEntry: saving a vCon again to the same file
// does not rewrite its index entry, so a redelivery costs one fsync.
func TestFileRedeliveryKeepsIndexEntry(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	s := newFile(t, map[string]any{"path": root})
	entry := filepath.Join(root, indexDir, fileUUID)
	if err := s.Save(ctx, testVCon(t, fileUUID, "2024-03-05T10:00:00Z", "first")); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(entry)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, testVCon(t, fileUUID, "2024-03-05T11:00:00Z", "second")); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(entry)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Error("the index entry was replaced, want it kept: it already named the file")
	}
	if got, err := s.Get(ctx, fileUUID); err != nil || !bytes.Contains(got, []byte(`"second"`)) {
		t.Errorf("Get = %s, %v; want the second save", got, err)
	}
}
