package image

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Annotations naming the index in an OCI layout: the tag alone is the OCI
// spec's ref.name; containerd's importer prefers the full name.
const (
	annotationRefName       = "org.opencontainers.image.ref.name"
	annotationContainerName = "io.containerd.image.name"
)

// WriteLayout writes idx as a tarred OCI image layout (oci-layout,
// index.json naming ref, blobs/sha256/...), the form `ctr images import`,
// skopeo (oci-archive:) and crane accept. Entries are sorted and stamped
// with mtime so the tarball, not only the index, is reproducible.
func WriteLayout(w io.Writer, idx v1.ImageIndex, ref name.Tag, mtime time.Time) error {
	dir, err := os.MkdirTemp("", "vcon-image-layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("write OCI layout: %w", err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		annotationRefName:       ref.TagStr(),
		annotationContainerName: ref.Name(),
	})); err != nil {
		return fmt.Errorf("write OCI layout: %w", err)
	}
	return tarDir(w, dir, mtime)
}

// WriteDockerArchive writes img as a `docker save` tarball tagged ref, which
// `ctr -n k8s.io images import` loads as ref.
func WriteDockerArchive(w io.Writer, img v1.Image, ref name.Tag) error {
	return tarball.Write(ref, img, w)
}

// tarDir tars the regular files and directories under dir, in lexical
// order (filepath.WalkDir's), owned by root with fixed modes.
func tarDir(w io.Writer, dir string, mtime time.Time) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel := filepath.ToSlash(strings.TrimPrefix(path, dir+string(filepath.Separator)))
		h := &tar.Header{ModTime: mtime.UTC().Truncate(time.Second), Format: tar.FormatPAX}
		switch {
		case d.IsDir():
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, rel+"/", 0o755
			return tw.WriteHeader(h)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			h.Typeflag, h.Name, h.Mode, h.Size = tar.TypeReg, rel, 0o644, info.Size()
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		default:
			return fmt.Errorf("%s: not a regular file or directory", rel)
		}
	})
	if err != nil {
		return fmt.Errorf("tar OCI layout: %w", err)
	}
	return tw.Close()
}
