// Package image builds the project's one container image (/manager,
// /conserver, /api and /kubectl-vcon) from file contents, without a Docker
// engine or a base image: the few files distroless/static:nonroot would give
// us (passwd, group, CA certificates, /tmp, /home/nonroot) are written here.
//
// Build is pure: the same Inputs give the same index digest, because every
// tar entry has a fixed mtime (Inputs.Created), owner and mode, and entries
// are sorted. Compiling the binaries and writing the tarballs is the job of
// hack/image, so the tests here run in a second with fake binaries.
package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// What the Dockerfile's final stage says; TestMatchesDockerfile keeps the two
// in step.
var (
	// Binaries are the commands under cmd/, each installed as /<name>.
	Binaries = []string{"manager", "conserver", "api", "kubectl-vcon"}
	// Entrypoint runs the operator; the worker Deployments override it.
	Entrypoint = []string{"/manager"}
)

const (
	// User is distroless's nonroot user and group.
	User = "65532:65532"
	// Title names the image in its labels.
	Title = "vcon-operator"
	// Source is where the image's source lives (org.opencontainers.image.source).
	Source = "https://github.com/vcon-operator/vcon-operator"
	// CACertsPath is where Go's crypto/x509 looks first on Linux.
	CACertsPath = "/etc/ssl/certs/ca-certificates.crt"
	// WorkingDir is the nonroot user's home, as in distroless nonroot.
	WorkingDir = "/home/nonroot"

	nonrootID = 65532
)

// Env is distroless's environment: a PATH (there is no shell, but exec
// probes and kubectl exec resolve names with it) and the CA bundle.
var Env = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"SSL_CERT_FILE=" + CACertsPath,
}

// OCI label keys (https://github.com/opencontainers/image-spec/blob/main/annotations.md).
const (
	LabelSource   = "org.opencontainers.image.source"
	LabelVersion  = "org.opencontainers.image.version"
	LabelRevision = "org.opencontainers.image.revision"
	LabelCreated  = "org.opencontainers.image.created"
	LabelTitle    = "org.opencontainers.image.title"
	LabelLicenses = "org.opencontainers.image.licenses"
)

// Platform is one architecture's binaries.
type Platform struct {
	OS           string
	Architecture string
	// Binaries maps each name in Binaries to the file's contents.
	Binaries map[string][]byte
}

func (p Platform) String() string { return p.OS + "/" + p.Architecture }

// Inputs is everything an image is made of.
type Inputs struct {
	Platforms []Platform
	// CACerts is the PEM bundle installed at CACertsPath.
	CACerts []byte
	// Created stamps every file, the config and the created label. Take it
	// from SOURCE_DATE_EPOCH or the commit time, never the wall clock.
	Created time.Time
	// Version and Revision (the full commit hash) go into the labels.
	Version  string
	Revision string
	// Licenses is an SPDX expression; the label is left out when empty.
	Licenses string
}

// Labels returns the OCI labels the image config (and the index, as
// annotations) carries.
func (in Inputs) Labels() map[string]string {
	l := map[string]string{
		LabelSource:   Source,
		LabelVersion:  in.Version,
		LabelRevision: in.Revision,
		LabelCreated:  in.Created.UTC().Format(time.RFC3339),
		LabelTitle:    Title,
	}
	if in.Licenses != "" {
		l[LabelLicenses] = in.Licenses
	}
	return l
}

func (in Inputs) validate() error {
	var errs []string
	if len(in.Platforms) == 0 {
		errs = append(errs, "no platforms")
	}
	if len(in.CACerts) == 0 {
		errs = append(errs, "no CA certificates")
	}
	if in.Created.IsZero() {
		errs = append(errs, "no creation time (set SOURCE_DATE_EPOCH or build from a git checkout)")
	}
	if in.Version == "" {
		errs = append(errs, "no version")
	}
	seen := map[string]bool{}
	for _, p := range in.Platforms {
		if p.OS == "" || p.Architecture == "" {
			errs = append(errs, fmt.Sprintf("platform %q: OS and architecture are required", p))
		}
		if seen[p.String()] {
			errs = append(errs, fmt.Sprintf("platform %s given twice", p))
		}
		seen[p.String()] = true
		for _, b := range Binaries {
			if len(p.Binaries[b]) == 0 {
				errs = append(errs, fmt.Sprintf("platform %s: binary %s missing", p, b))
			}
		}
		for b := range p.Binaries {
			if !slices.Contains(Binaries, b) {
				errs = append(errs, fmt.Sprintf("platform %s: unknown binary %s (known: %s)", p, b, strings.Join(Binaries, ", ")))
			}
		}
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return fmt.Errorf("image inputs: %s", strings.Join(errs, "; "))
	}
	return nil
}

// Build returns an OCI image index holding one image per platform, in
// platform order. Each image has two layers: the base files, identical for
// every platform (so the blob is shared), and the binaries.
func Build(in Inputs) (v1.ImageIndex, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	base, err := layer(baseFiles(in.CACerts), in.Created)
	if err != nil {
		return nil, fmt.Errorf("base layer: %w", err)
	}
	platforms := slices.Clone(in.Platforms)
	slices.SortFunc(platforms, func(a, b Platform) int { return strings.Compare(a.String(), b.String()) })

	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var adds []mutate.IndexAddendum
	for _, p := range platforms {
		img, err := platformImage(in, p, base)
		if err != nil {
			return nil, fmt.Errorf("image for %s: %w", p, err)
		}
		adds = append(adds, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: p.OS, Architecture: p.Architecture}},
		})
	}
	idx = mutate.AppendManifests(idx, adds...)
	return mutate.Annotations(idx, in.Labels()).(v1.ImageIndex), nil
}

func platformImage(in Inputs, p Platform, base v1.Layer) (v1.Image, error) {
	var files []File
	for _, b := range Binaries {
		files = append(files, File{Name: b, Mode: 0o755, Data: p.Binaries[b]})
	}
	bins, err := layer(files, in.Created)
	if err != nil {
		return nil, fmt.Errorf("binaries layer: %w", err)
	}
	created := v1.Time{Time: in.Created.UTC()}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, History: v1.History{Created: created, CreatedBy: "internal/image: passwd, group, CA certificates, /tmp, /home/nonroot"}},
		mutate.Addendum{Layer: bins, History: v1.History{Created: created, CreatedBy: "internal/image: /" + strings.Join(Binaries, " /")}},
	)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Created = created
	cf.OS = p.OS
	cf.Architecture = p.Architecture
	cf.Config = v1.Config{
		User:       User,
		Entrypoint: slices.Clone(Entrypoint),
		Env:        slices.Clone(Env),
		WorkingDir: WorkingDir,
		Labels:     in.Labels(),
	}
	return mutate.ConfigFile(img, cf)
}

// ForPlatform returns the image for os/arch from an index made by Build.
func ForPlatform(idx v1.ImageIndex, os, arch string) (v1.Image, error) {
	imgs, err := partial.FindImages(idx, match.Platforms(v1.Platform{OS: os, Architecture: arch}))
	if err != nil {
		return nil, err
	}
	if len(imgs) != 1 {
		return nil, fmt.Errorf("index has %d images for %s/%s, want 1", len(imgs), os, arch)
	}
	return imgs[0], nil
}

// File is one tar entry of a layer. A Name ending in "/" is a directory.
type File struct {
	Name     string
	Mode     int64
	UID, GID int
	Data     []byte
}

// baseFiles are what distroless/static:nonroot provides that our static
// binaries use: user names for 65532, CA certificates, a writable /tmp and
// the nonroot home. No shell, no libc.
func baseFiles(caCerts []byte) []File {
	return []File{
		{Name: "etc/", Mode: 0o755},
		{Name: "etc/passwd", Mode: 0o644, Data: []byte(
			"root:x:0:0:root:/root:/sbin/nologin\n" +
				"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
				"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{Name: "etc/group", Mode: 0o644, Data: []byte(
			"root:x:0:\n" +
				"nobody:x:65534:\n" +
				"nonroot:x:65532:\n")},
		{Name: "etc/ssl/", Mode: 0o755},
		{Name: "etc/ssl/certs/", Mode: 0o755},
		{Name: strings.TrimPrefix(CACertsPath, "/"), Mode: 0o644, Data: caCerts},
		{Name: "home/", Mode: 0o755},
		{Name: "home/nonroot/", Mode: 0o700, UID: nonrootID, GID: nonrootID},
		{Name: "tmp/", Mode: 0o1777},
	}
}

// layer is an OCI layer of files (see Layer).
func layer(files []File, mtime time.Time) (v1.Layer, error) {
	return Layer(files, mtime, types.OCILayer)
}

// Layer writes files as a tar, sorted by name, every entry stamped with
// mtime and nothing taken from the build machine, and wraps it as a gzip
// layer of mediaType (OCI for our image, Docker for an archive ctr
// imports).
func Layer(files []File, mtime time.Time, mediaType types.MediaType) (v1.Layer, error) {
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{
			Name:    f.Name,
			Mode:    f.Mode,
			Uid:     f.UID,
			Gid:     f.GID,
			ModTime: mtime.UTC().Truncate(time.Second),
			Format:  tar.FormatPAX,
		}
		if strings.HasSuffix(f.Name, "/") {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(f.Data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("tar %s: %w", f.Name, err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, fmt.Errorf("tar %s: %w", f.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(
		func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(mediaType),
		tarball.WithCompressedCaching,
	)
}
