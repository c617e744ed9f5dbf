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
	"path/filepath"
	"strings"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

func init() { Register("storage.file", newFileStorage) }

const (
	fileExt   = ".json"
	gzipExt   = ".json.gz"
	tempInfix = ".tmp-"
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
}

func newFileStorage(_ context.Context, _ string, raw map[string]any, _ Deps) (Storage, error) {
	o := newOptions(raw)
	s := &fileStorage{
		root:           o.string("path", "/data/vcons"),
		organizeByDate: o.bool("organize_by_date", true),
		compress:       o.bool("compression", false),
		maxSize:        o.int("max_file_size", 10<<20),
		fileMode:       o.fileMode("file_permissions", 0o644),
		dirMode:        o.fileMode("dir_permissions", 0o755),
	}
	if s.root == "" {
		o.fail("path", "must not be empty")
	}
	if s.maxSize <= 0 {
		o.fail("max_file_size", "must be positive, got %d", s.maxSize)
	}
	if err := o.err(); err != nil {
		return nil, err
	}
	return s, nil
}

// checkFileName refuses uuids that would escape the storage directory or
// name something other than one file in it.
func checkFileName(uuid string) error {
	if uuid == "" || uuid == "." || uuid == ".." || strings.ContainsAny(uuid, `/\`+"\x00") {
		return fmt.Errorf("vcon uuid %q cannot be a file name (empty, \".\", \"..\" or a path separator)", uuid)
	}
	return nil
}

func (s *fileStorage) ext() string {
	if s.compress {
		return gzipExt
	}
	return fileExt
}

// dir is where a vCon goes: under its created_at date in created_at's own
// offset (a call at 01:00+05:00 belongs to that local day, as conserver
// files it), or flat when dating is off or the date does not parse.
func (s *fileStorage) dir(v *vcon.VCon) string {
	if s.organizeByDate {
		if t, ok := vcon.CreatedAt(v); ok {
			return filepath.Join(s.root, t.Format("2006"), t.Format("01"), t.Format("02"))
		}
	}
	return s.root
}

func (s *fileStorage) Save(_ context.Context, v *vcon.VCon) error {
	uuid := v.UUID()
	if err := checkFileName(uuid); err != nil {
		return err
	}
	body, err := v.Marshal()
	if err != nil {
		return fmt.Errorf("encode vcon %s: %w", uuid, err)
	}
	if int64(len(body)) > s.maxSize {
		return fmt.Errorf("vcon %s is %d bytes, over max_file_size %d", uuid, len(body), s.maxSize)
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
	dir := s.dir(v)
	if err := s.mkdirs(dir); err != nil {
		return err
	}
	return s.writeAtomic(filepath.Join(dir, uuid+s.ext()), body)
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

// find returns the path of a stored vCon: flat first (the cheap lookup, and
// where undated vCons go), then anywhere below the root, because the date
// directory cannot be known from the uuid alone. Both extensions are
// accepted so that a change of the compression option keeps old files
// readable.
func (s *fileStorage) find(uuid string) (string, error) {
	for _, ext := range []string{fileExt, gzipExt} {
		p := filepath.Join(s.root, uuid+ext)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	var found string
	err := filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fs.SkipDir
			}
			return err
		}
		if !d.IsDir() && (d.Name() == uuid+fileExt || d.Name() == uuid+gzipExt) {
			found = p
			return fs.SkipAll
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("search %s: %w", s.root, err)
	}
	if found == "" {
		return "", ErrNotFound
	}
	return found, nil
}

func (s *fileStorage) Get(_ context.Context, uuid string) ([]byte, error) {
	if err := checkFileName(uuid); err != nil {
		return nil, err
	}
	p, err := s.find(uuid)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, ErrNotFound // deleted since find
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

// Delete removes every copy (flat and dated, either extension), so a vCon
// saved again under a different created_at or compression setting is gone
// too. Deleting a missing vCon is not an error.
func (s *fileStorage) Delete(_ context.Context, uuid string) error {
	if err := checkFileName(uuid); err != nil {
		return err
	}
	for {
		p, err := s.find(uuid)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete %s: %w", p, err)
		}
	}
}
