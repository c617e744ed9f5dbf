package storage

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/options"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

func init() { Register("storage.file", newFileStorage) }

const (
	fileExt   = ".json"
	gzipExt   = ".json.gz"
	tempInfix = ".tmp-"

	// indexDir holds one pointer file per uuid, naming the vCon's file
	// relative to the root: the date directory comes from created_at, which
	// a lookup by uuid does not know. The leading dot keeps it out of
	// conserver's recursive globs, and the pointers do not end in .json, so
	// conserver neither lists nor finds them.
	indexDir = ".by-uuid"
	// maxPointerSize is far above "YYYY/MM/DD/" plus a 255-byte name.
	maxPointerSize = 1024
	// defaultSearchBudget bounds the search for a file that has no index
	// entry (written by conserver, or by us before the index existed). The
	// search costs about 1,100 entries per year of date directories,
	// however many files they hold, so this covers decades.
	defaultSearchBudget = 100_000
	// searchFirstYear is where the search starts probing year directories;
	// the root is not listed, because with organize_by_date off it holds
	// every file.
	searchFirstYear = 1970
)

// fileStorage writes one file per vCon, in conserver's layout, so that a
// volume written by conserver can be read by us and the other way round.
type fileStorage struct {
	root           string
	organizeByDate bool
	compress       bool
	maxSize        int64
	fileMode       os.FileMode
	dirMode        os.FileMode

	// What lookups read goes through fsys, and a search stops after
	// searchBudget entries; tests count and lower them.
	fsys         lookupFS
	searchBudget int
	now          func() time.Time
}

func newFileStorage(_ context.Context, _ string, raw map[string]any, _ Deps) (Storage, error) {
	o := options.New(raw)
	s := &fileStorage{
		root:           o.String("path", "/data/vcons"),
		organizeByDate: o.Bool("organize_by_date", true),
		compress:       o.Bool("compression", false),
		maxSize:        o.Int("max_file_size", 10<<20),
		fileMode:       o.FileMode("file_permissions", 0o644),
		dirMode:        o.FileMode("dir_permissions", 0o755),
		fsys:           osFS{},
		searchBudget:   defaultSearchBudget,
		now:            time.Now,
	}
	if s.root == "" {
		o.Failf("path", "must not be empty")
	}
	if s.maxSize <= 0 {
		o.Failf("max_file_size", "must be positive, got %d", s.maxSize)
	}
	if err := o.Err(); err != nil {
		return nil, err
	}
	return s, nil
}

// maxUUIDLen leaves room in a 255-byte file name for the extension and
// the temporary name's infix.
const maxUUIDLen = 200

// checkFileName refuses uuids that would escape the storage directory or
// name something other than one file in it.
func checkFileName(uuid string) error {
	if uuid == "" || uuid == "." || uuid == ".." || strings.ContainsAny(uuid, `/\`+"\x00") {
		return fmt.Errorf("vcon uuid %q cannot be a file name (empty, \".\", \"..\" or a path separator)", uuid)
	}
	if len(uuid) > maxUUIDLen {
		return fmt.Errorf("vcon uuid %.40q... is %d bytes, too long for a file name (at most %d)", uuid, len(uuid), maxUUIDLen)
	}
	return nil
}

func (s *fileStorage) ext() string {
	if s.compress {
		return gzipExt
	}
	return fileExt
}

// rel is where a vCon goes, relative to the root and slash-separated: under
// its created_at date in created_at's own offset (a call at 01:00+05:00
// belongs to that local day, as conserver files it), or flat when dating is
// off or the date does not parse.
func (s *fileStorage) rel(v *vcon.VCon) string {
	name := v.UUID() + s.ext()
	if s.organizeByDate {
		if t, ok := vcon.CreatedAt(v); ok {
			return t.Format("2006/01/02") + "/" + name
		}
	}
	return name
}

func (s *fileStorage) indexPath(uuid string) string { return filepath.Join(s.root, indexDir, uuid) }

// Save writes the vCon's file, then its index entry, then removes the copy
// the old entry named if that was elsewhere (created_at or compression
// changed), so a vCon has one file and one entry however often it is saved.
// A crash between the steps leaves the previous state readable, and the
// retried Save completes it. An entry that already names the file is not
// written again: a redelivery costs one fsync, as before the index.
func (s *fileStorage) Save(ctx context.Context, v *vcon.VCon) error {
	uuid := v.UUID()
	if err := checkFileName(uuid); err != nil {
		return Permanent(err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	body, err := v.Marshal()
	if err != nil {
		return Permanent(fmt.Errorf("encode vcon %s: %w", uuid, err))
	}
	if int64(len(body)) > s.maxSize {
		return Permanent(fmt.Errorf("vcon %s is %d bytes, over max_file_size %d", uuid, len(body), s.maxSize))
	}
	if s.compress {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		if _, err := zw.Write(body); err != nil {
			return fmt.Errorf("compress vcon %s: %w", uuid, err)
		}
		if err := zw.Close(); err != nil {
			return fmt.Errorf("compress vcon %s: %w", uuid, err)
		}
		body = buf.Bytes()
	}
	prev, err := s.readIndex(uuid)
	if err != nil {
		return err
	}
	rel := s.rel(v)
	p := filepath.Join(s.root, filepath.FromSlash(rel))
	if err := s.mkdirs(filepath.Dir(p)); err != nil {
		return err
	}
	if err := s.writeAtomic(p, body); err != nil {
		return err
	}
	if prev == p {
		return nil // a redelivery: the entry already names this file
	}
	if err := s.mkdirs(filepath.Join(s.root, indexDir)); err != nil {
		return err
	}
	if err := s.writeAtomic(s.indexPath(uuid), []byte(rel)); err != nil {
		return err
	}
	if prev != "" {
		if err := os.Remove(prev); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove the previous copy %s: %w", prev, err)
		}
	}
	return nil
}

// mkdirs creates the missing directories down to dir with dir_permissions
// applied exactly; MkdirAll alone would leave them to the process umask.
func (s *fileStorage) mkdirs(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := s.mkdirs(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, s.dirMode); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // another worker made it
		}
		return fmt.Errorf("create directory %s: %w", dir, err)
	}
	if err := os.Chmod(dir, s.dirMode); err != nil {
		return fmt.Errorf("set permissions of %s: %w", dir, err)
	}
	return nil
}

// writeAtomic makes a crash leave either the old file or the new one, never
// a torn one that a later Get would hand out as a vCon: the data reaches the
// disk under a temporary name in the same directory, then a rename publishes
// it.
func (s *fileStorage) writeAtomic(path string, body []byte) (err error) {
	dir, base := filepath.Split(path)
	f, err := os.CreateTemp(dir, "."+base+tempInfix+"*")
	if err != nil {
		return fmt.Errorf("create temporary file in %s: %w", dir, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(body); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Chmod(s.fileMode); err != nil {
		return fmt.Errorf("set permissions of %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("rename into %s: %w", path, err)
	}
	// The rename itself is durable only once the directory is synced.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// lookupFS is what lookups read of the file system, so that a test can
// count what a lookup touches.
type lookupFS interface {
	Stat(name string) (fs.FileInfo, error)
	// ReadDir returns at most n entries, in directory order.
	ReadDir(name string, n int) ([]fs.DirEntry, error)
	// ReadFile returns at most limit+1 bytes.
	ReadFile(name string, limit int64) ([]byte, error)
}

type osFS struct{}

func (osFS) Stat(name string) (fs.FileInfo, error) { return os.Stat(name) }

func (osFS) ReadDir(name string, n int) ([]fs.DirEntry, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	entries, err := f.ReadDir(n)
	if errors.Is(err, io.EOF) {
		err = nil // empty directory
	}
	return entries, err
}

func (osFS) ReadFile(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit+1))
}

// readIndex returns the file uuid's index entry names, or "" when there is
// no entry or it does not name one of uuid's files below the root (a torn or
// foreign entry is ignored rather than followed).
func (s *fileStorage) readIndex(uuid string) (string, error) {
	data, err := s.fsys.ReadFile(s.indexPath(uuid), maxPointerSize)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.ENOTDIR) {
		return "", nil // no entry, or something else holds its name
	}
	if err != nil {
		return "", fmt.Errorf("read index entry of %s: %w", uuid, err)
	}
	rel := strings.TrimSpace(string(data))
	if len(data) > maxPointerSize || !fs.ValidPath(rel) || rel == "." || !s.isFileOf(uuid, path.Base(rel)) {
		return "", nil
	}
	return filepath.Join(s.root, filepath.FromSlash(rel)), nil
}

func (s *fileStorage) isFileOf(uuid, name string) bool {
	return name == uuid+fileExt || name == uuid+gzipExt
}

// exists reports whether p is there; a missing file or directory is not an
// error.
func (s *fileStorage) exists(p string) (bool, error) {
	_, err := s.fsys.Stat(p)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return false, nil
	}
	return false, fmt.Errorf("look for %s: %w", p, err)
}

// find returns the path of a stored vCon: the index entry (one read), then
// flat (where undated vCons go), then the bounded search of the date
// directories, for files saved without an index entry. Both extensions are
// accepted so that a change of the compression option keeps old files
// readable.
func (s *fileStorage) find(ctx context.Context, uuid string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	p, err := s.readIndex(uuid)
	if err != nil {
		return "", err
	}
	if p != "" {
		ok, err := s.exists(p)
		if err != nil {
			return "", err
		}
		if ok {
			return p, nil
		}
		// Removed by hand or by conserver: look for another copy.
	}
	for _, ext := range []string{fileExt, gzipExt} {
		p := filepath.Join(s.root, uuid+ext)
		ok, err := s.exists(p)
		if err != nil {
			return "", err
		}
		if ok {
			return p, nil
		}
	}
	found, err := s.search(ctx, uuid, false)
	if err != nil {
		return "", err
	}
	if len(found) == 0 {
		return "", ErrNotFound
	}
	return found[0], nil
}

// search looks for uuid's files in conserver's date directories
// (root/YYYY/MM/DD), newest first, stopping at the first unless all is set;
// a first match is looked for in the days the uuid's timestamp names
// before anywhere else.
// It probes the year directories, lists the months and days, and probes two
// names per day, so a miss costs about 1,100 entries per year stored
// however many files there are. It stops with an error after searchBudget
// entries and with ctx's error as soon as ctx ends.
func (s *fileStorage) search(ctx context.Context, uuid string, all bool) ([]string, error) {
	b := &budget{ctx: ctx, left: s.searchBudget}
	var found []string
	if !all {
		for _, day := range s.uuidDays(uuid) {
			for _, ext := range []string{fileExt, gzipExt} {
				if err := b.spend(1); err != nil {
					return nil, s.searchErr(uuid, err)
				}
				p := filepath.Join(s.root, filepath.FromSlash(day), uuid+ext)
				ok, err := s.exists(p)
				if err != nil {
					return nil, err
				}
				if ok {
					return []string{p}, nil
				}
			}
		}
	}
	for year := s.now().Year() + 1; year >= searchFirstYear; year-- {
		if err := b.spend(1); err != nil {
			return nil, s.searchErr(uuid, err)
		}
		yearDir := filepath.Join(s.root, fmt.Sprintf("%04d", year))
		ok, err := s.exists(yearDir)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		months, err := s.dateDirs(b, yearDir, 12)
		if err != nil {
			return nil, s.searchErr(uuid, err)
		}
		for _, month := range months {
			days, err := s.dateDirs(b, filepath.Join(yearDir, month), 31)
			if err != nil {
				return nil, s.searchErr(uuid, err)
			}
			for _, day := range days {
				for _, ext := range []string{fileExt, gzipExt} {
					if err := b.spend(1); err != nil {
						return nil, s.searchErr(uuid, err)
					}
					p := filepath.Join(yearDir, month, day, uuid+ext)
					ok, err := s.exists(p)
					if err != nil {
						return nil, err
					}
					if ok {
						found = append(found, p)
						if !all {
							return found, nil
						}
					}
				}
			}
		}
	}
	return found, nil
}

// uuidDays are the date directories a vCon is most likely in, from the
// creation time that a UUIDv7, and conserver's UUIDv8, carry in their
// first 48 bits (milliseconds since 1970): that day in UTC and the days
// either side, because created_at's own offset can move the local date.
// None for other uuids, or a time outside the years searched.
func (s *fileStorage) uuidDays(uuid string) []string {
	hex := strings.ReplaceAll(uuid, "-", "")
	if len(hex) != 32 || (hex[12] != '7' && hex[12] != '8') {
		return nil
	}
	ms, err := strconv.ParseInt(hex[:12], 16, 64)
	if err != nil {
		return nil
	}
	t := time.UnixMilli(ms).UTC()
	if t.Year() < searchFirstYear || t.Year() > s.now().Year()+1 {
		return nil
	}
	const layout = "2006/01/02"
	return []string{t.Format(layout), t.AddDate(0, 0, 1).Format(layout), t.AddDate(0, 0, -1).Format(layout)}
}

// errBudget ends a search that has touched its budget of entries.
var errBudget = errors.New("budget spent")

// budget is what a search may still touch; it is spent before each read so
// that a search stops as soon as its context ends.
type budget struct {
	ctx  context.Context
	left int
}

func (b *budget) spend(n int) error {
	if err := b.ctx.Err(); err != nil {
		return err
	}
	if b.left -= n; b.left < 0 {
		return errBudget
	}
	return nil
}

// searchErr passes a context's error through unchanged, so that callers
// can tell a cancelled request, and explains a spent budget.
func (s *fileStorage) searchErr(uuid string, err error) error {
	if errors.Is(err, errBudget) {
		return fmt.Errorf("search for vcon %s below %s: stopped after %d entries of date directories; "+
			"files saved without an index entry are searched for, and this tree has too many days to search: "+
			"save the vCon again to index it", uuid, s.root, s.searchBudget)
	}
	return err
}

// dateDirs lists the two-digit subdirectories 01..max of dir, newest first,
// charging b for every entry read.
func (s *fileStorage) dateDirs(b *budget, dir string, max int) ([]string, error) {
	if err := b.spend(0); err != nil {
		return nil, err
	}
	entries, err := s.fsys.ReadDir(dir, b.left+1)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, nil // removed meanwhile, or not a directory
		}
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	if err := b.spend(len(entries)); err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if len(e.Name()) == 2 && err == nil && n >= 1 && n <= max && e.IsDir() {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	slices.Reverse(names)
	return names, nil
}

func (s *fileStorage) Get(ctx context.Context, uuid string) ([]byte, error) {
	if err := checkFileName(uuid); err != nil {
		return nil, err
	}
	p, err := s.find(ctx, uuid)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		// Gone since find: deleted, or moved by a Save under a new date,
		// whose index entry names the new file by now.
		if p, err = s.find(ctx, uuid); err != nil {
			return nil, err
		}
		f, err = os.Open(p)
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(p, gzipExt) {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		defer zr.Close()
		r = zr
	}
	// A bomb-sized file must not exhaust memory: nothing larger than
	// max_file_size was ever written by Save.
	body, err := io.ReadAll(io.LimitReader(r, s.maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if int64(len(body)) > s.maxSize {
		return nil, fmt.Errorf("read %s: over max_file_size %d", p, s.maxSize)
	}
	return body, nil
}

// Delete removes every copy (the indexed one, flat and dated, either
// extension), so a vCon saved again under a different created_at or
// compression setting before the index existed is gone too, and then the
// index entry. Deleting a missing vCon is not an error.
func (s *fileStorage) Delete(ctx context.Context, uuid string) error {
	if err := checkFileName(uuid); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	indexed, err := s.readIndex(uuid)
	if err != nil {
		return err
	}
	copies, err := s.search(ctx, uuid, true)
	if err != nil {
		return err
	}
	copies = append(copies, filepath.Join(s.root, uuid+fileExt), filepath.Join(s.root, uuid+gzipExt))
	if indexed != "" {
		copies = append(copies, indexed)
	}
	for _, p := range copies {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete %s: %w", p, err)
		}
	}
	if err := os.Remove(s.indexPath(uuid)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete index entry of %s: %w", uuid, err)
	}
	return nil
}
