package image

import (
	"archive/tar"
	"bytes"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

var testCreated = time.Date(2026, 1, 15, 10, 30, 0, 0, time.UTC)

// fakeInputs stands in for the real build: tiny binaries whose contents
// name their platform, so a mix-up between platforms shows.
func fakeInputs() Inputs {
	in := Inputs{
		CACerts:  []byte("-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n"),
		Created:  testCreated,
		Version:  "v1.2.3",
		Revision: "0123456789abcdef0123456789abcdef01234567",
	}
	for _, arch := range []string{"arm64", "amd64"} { // out of order: Build sorts
		p := Platform{OS: "linux", Architecture: arch, Binaries: map[string][]byte{}}
		for _, b := range Binaries {
			p.Binaries[b] = []byte("#fake " + b + " for linux/" + arch + "\n")
		}
		in.Platforms = append(in.Platforms, p)
	}
	return in
}

func indexDigest(t *testing.T, in Inputs) v1.Hash {
	t.Helper()
	idx, err := Build(in)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatalf("index digest: %v", err)
	}
	return d
}

func TestBuildReproducible(t *testing.T) {
	want := indexDigest(t, fakeInputs())
	if got := indexDigest(t, fakeInputs()); got != want {
		t.Fatalf("two builds from the same inputs: %s then %s", want, got)
	}
	t.Logf("index digest %s", want)

	// Each input must reach the digest, or "same digest" proves nothing.
	changes := map[string]func(*Inputs){
		"binary":   func(in *Inputs) { in.Platforms[1].Binaries["api"] = []byte("other") },
		"created":  func(in *Inputs) { in.Created = in.Created.Add(time.Second) },
		"ca certs": func(in *Inputs) { in.CACerts = append(in.CACerts, '\n') },
		"version":  func(in *Inputs) { in.Version = "v1.2.4" },
		"revision": func(in *Inputs) { in.Revision = "fedcba" },
		"licenses": func(in *Inputs) { in.Licenses = "Apache-2.0" },
	}
	for what, change := range changes {
		t.Run(what, func(t *testing.T) {
			in := fakeInputs()
			change(&in)
			if got := indexDigest(t, in); got == want {
				t.Errorf("changing the %s left the digest at %s", what, got)
			}
		})
	}
}

func TestBuildRejectsIncompleteInputs(t *testing.T) {
	cases := map[string]struct {
		change func(*Inputs)
		want   string
	}{
		"missing binary":  {func(in *Inputs) { delete(in.Platforms[0].Binaries, "conserver") }, "binary conserver missing"},
		"unknown binary":  {func(in *Inputs) { in.Platforms[0].Binaries["sh"] = []byte("x") }, "unknown binary sh"},
		"no ca certs":     {func(in *Inputs) { in.CACerts = nil }, "no CA certificates"},
		"no created time": {func(in *Inputs) { in.Created = time.Time{} }, "no creation time"},
		"no platforms":    {func(in *Inputs) { in.Platforms = nil }, "no platforms"},
		"platform twice":  {func(in *Inputs) { in.Platforms[1] = in.Platforms[0] }, "given twice"},
		"no version":      {func(in *Inputs) { in.Version = "" }, "no version"},
	}
	for what, c := range cases {
		t.Run(what, func(t *testing.T) {
			in := fakeInputs()
			c.change(&in)
			_, err := Build(in)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Build: %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestBuildIndex(t *testing.T) {
	in := fakeInputs()
	idx, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != types.OCIImageIndex {
		t.Errorf("index media type %s, want %s", im.MediaType, types.OCIImageIndex)
	}
	var platforms []string
	for _, d := range im.Manifests {
		platforms = append(platforms, d.Platform.String())
		if d.MediaType != types.OCIManifestSchema1 {
			t.Errorf("%s: manifest media type %s", d.Platform, d.MediaType)
		}
	}
	if want := []string{"linux/amd64", "linux/arm64"}; !slices.Equal(platforms, want) {
		t.Errorf("platforms %v, want %v", platforms, want)
	}
	if !maps.Equal(im.Annotations, in.Labels()) {
		t.Errorf("index annotations %v, want the labels %v", im.Annotations, in.Labels())
	}

	// The base layer is the same blob on every platform.
	var bases []v1.Hash
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := ForPlatform(idx, "linux", arch)
		if err != nil {
			t.Fatal(err)
		}
		layers, err := img.Layers()
		if err != nil || len(layers) == 0 {
			t.Fatalf("%s layers: %v, %v", arch, len(layers), err)
		}
		d, _ := layers[0].Digest()
		bases = append(bases, d)
	}
	if bases[0] != bases[1] {
		t.Errorf("base layers differ between platforms: %v", bases)
	}
}

func TestImageContents(t *testing.T) {
	in := fakeInputs()
	idx, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range in.Platforms {
		t.Run(p.String(), func(t *testing.T) {
			img, err := ForPlatform(idx, p.OS, p.Architecture)
			if err != nil {
				t.Fatal(err)
			}
			checkImage(t, img, in, p, true)
		})
	}
}

// TestWriteRoundTrip writes both tarballs and checks what a reader of each
// (containerd, crane) would see.
func TestWriteRoundTrip(t *testing.T) {
	in := fakeInputs()
	idx, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	wantDigest, _ := idx.Digest()
	ref, err := name.NewTag("ghcr.io/vcon-operator/vcon-operator:" + in.Version)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()

	t.Run("oci layout", func(t *testing.T) {
		var first, second bytes.Buffer
		if err := WriteLayout(&first, idx, ref, in.Created); err != nil {
			t.Fatal(err)
		}
		if err := WriteLayout(&second, idx, ref, in.Created); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first.Bytes(), second.Bytes()) {
			t.Error("writing the same index twice gave different layout tarballs")
		}
		untarDir := filepath.Join(dir, "layout")
		hdrs := untar(t, first.Bytes(), untarDir)
		for n, h := range hdrs {
			if !h.ModTime.Equal(in.Created) || h.Uid != 0 || h.Gid != 0 {
				t.Errorf("layout entry %s: mtime %v uid %d gid %d", n, h.ModTime, h.Uid, h.Gid)
			}
		}
		p, err := layout.FromPath(untarDir)
		if err != nil {
			t.Fatal(err)
		}
		top, err := p.ImageIndex()
		if err != nil {
			t.Fatal(err)
		}
		tm, err := top.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		if len(tm.Manifests) != 1 {
			t.Fatalf("index.json lists %d manifests, want 1 (the image index)", len(tm.Manifests))
		}
		d := tm.Manifests[0]
		if d.Digest != wantDigest || d.MediaType != types.OCIImageIndex {
			t.Errorf("index.json names %s %s, want %s %s", d.MediaType, d.Digest, types.OCIImageIndex, wantDigest)
		}
		if got := d.Annotations[annotationRefName]; got != in.Version {
			t.Errorf("ref.name %q, want %q", got, in.Version)
		}
		if got := d.Annotations[annotationContainerName]; got != ref.Name() {
			t.Errorf("containerd image name %q, want %q", got, ref.Name())
		}
		read, err := top.ImageIndex(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		for _, pl := range in.Platforms {
			img, err := ForPlatform(read, pl.OS, pl.Architecture)
			if err != nil {
				t.Fatal(err)
			}
			t.Run(pl.String(), func(t *testing.T) { checkImage(t, img, in, pl, true) })
		}
	})

	t.Run("docker archive", func(t *testing.T) {
		host := in.Platforms[1] // amd64
		want, err := ForPlatform(idx, host.OS, host.Architecture)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "docker.tar")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteDockerArchive(f, want, ref); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(path) })
		if err != nil {
			t.Fatal(err)
		}
		if len(m) != 1 || !slices.Equal(m[0].RepoTags, []string{ref.Name()}) {
			t.Errorf("manifest.json %+v, want one image tagged %s", m, ref.Name())
		}
		img, err := tarball.ImageFromPath(path, &ref)
		if err != nil {
			t.Fatal(err)
		}
		// The archive stores the config and layers unchanged, so the
		// config digest (the image ID containerd shows) is the same.
		gotID, _ := img.ConfigName()
		wantID, _ := want.ConfigName()
		if gotID != wantID {
			t.Errorf("image ID %s, want %s", gotID, wantID)
		}
		checkImage(t, img, in, host, false) // a docker archive has Docker media types
	})
}

// checkImage pins down one platform's image: config, layers and every file;
// oci says whether the media types must be OCI's.
func checkImage(t *testing.T, img v1.Image, in Inputs, p Platform, oci bool) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User != "65532:65532" {
		t.Errorf("user %q", c.User)
	}
	if !slices.Equal(c.Entrypoint, []string{"/manager"}) || len(c.Cmd) != 0 {
		t.Errorf("entrypoint %q cmd %q, want [/manager] and no cmd", c.Entrypoint, c.Cmd)
	}
	if !slices.Contains(c.Env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") ||
		!slices.Contains(c.Env, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt") {
		t.Errorf("env %q", c.Env)
	}
	if c.WorkingDir != "/home/nonroot" {
		t.Errorf("working dir %q", c.WorkingDir)
	}
	wantLabels := map[string]string{
		"org.opencontainers.image.source":   "https://github.com/vcon-operator/vcon-operator",
		"org.opencontainers.image.version":  in.Version,
		"org.opencontainers.image.revision": in.Revision,
		"org.opencontainers.image.created":  in.Created.Format(time.RFC3339),
		"org.opencontainers.image.title":    "vcon-operator",
	}
	if in.Licenses != "" {
		wantLabels["org.opencontainers.image.licenses"] = in.Licenses
	}
	if !maps.Equal(c.Labels, wantLabels) {
		t.Errorf("labels %v, want %v", c.Labels, wantLabels)
	}
	if cf.OS != p.OS || cf.Architecture != p.Architecture {
		t.Errorf("config platform %s/%s, want %s", cf.OS, cf.Architecture, p)
	}
	if !cf.Created.Time.Equal(in.Created) {
		t.Errorf("config created %v, want %v", cf.Created, in.Created)
	}
	for i, h := range cf.History {
		if !h.Created.Time.Equal(in.Created) {
			t.Errorf("history %d created %v", i, h.Created)
		}
	}

	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if oci && (m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON) {
		t.Errorf("manifest media type %s, config %s", m.MediaType, m.Config.MediaType)
	}
	if len(m.Layers) != 2 || len(cf.RootFS.DiffIDs) != 2 || len(cf.History) != 2 {
		t.Errorf("%d layers, %d diff ids, %d history entries; want 2 each", len(m.Layers), len(cf.RootFS.DiffIDs), len(cf.History))
	}
	for i, l := range m.Layers {
		if oci && l.MediaType != types.OCILayer {
			t.Errorf("layer %d media type %s", i, l.MediaType)
		}
	}

	type entry struct {
		typ      byte
		mode     int64
		uid, gid int
		data     string
	}
	want := map[string]entry{
		"etc":                               {tar.TypeDir, 0o755, 0, 0, ""},
		"etc/passwd":                        {tar.TypeReg, 0o644, 0, 0, "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"},
		"etc/group":                         {tar.TypeReg, 0o644, 0, 0, "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"},
		"etc/ssl":                           {tar.TypeDir, 0o755, 0, 0, ""},
		"etc/ssl/certs":                     {tar.TypeDir, 0o755, 0, 0, ""},
		"etc/ssl/certs/ca-certificates.crt": {tar.TypeReg, 0o644, 0, 0, string(in.CACerts)},
		"home":                              {tar.TypeDir, 0o755, 0, 0, ""},
		"home/nonroot":                      {tar.TypeDir, 0o700, 65532, 65532, ""},
		"tmp":                               {tar.TypeDir, 0o1777, 0, 0, ""},
	}
	for _, b := range []string{"manager", "conserver", "api", "kubectl-vcon"} {
		want[b] = entry{tar.TypeReg, 0o755, 0, 0, string(p.Binaries[b])}
	}
	got := map[string]entry{}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read image filesystem: %v", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		n := strings.Trim(h.Name, "/")
		got[n] = entry{h.Typeflag, h.Mode, h.Uid, h.Gid, string(data)}
		if !h.ModTime.Equal(in.Created) {
			t.Errorf("%s: mtime %v, want %v", n, h.ModTime, in.Created)
		}
	}
	for n, w := range want {
		if g, ok := got[n]; !ok {
			t.Errorf("%s missing from the image", n)
		} else if g != w {
			t.Errorf("%s: type %c mode %o owner %d:%d %d bytes, want type %c mode %o owner %d:%d %d bytes",
				n, g.typ, g.mode, g.uid, g.gid, len(g.data), w.typ, w.mode, w.uid, w.gid, len(w.data))
		}
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			t.Errorf("unexpected %s in the image", n) // e.g. a shell
		}
	}
}

// untar unpacks a tarball of regular files and directories into dir and
// returns the headers by name.
func untar(t *testing.T, data []byte, dir string) map[string]*tar.Header {
	t.Helper()
	hdrs := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(data))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		hdrs[h.Name] = h
		names = append(names, h.Name)
		target := filepath.Join(dir, filepath.FromSlash(h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(target, b, 0o644); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("%s: unexpected type %c", h.Name, h.Typeflag)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("layout tarball entries not sorted: %v", names)
	}
	return hdrs
}
