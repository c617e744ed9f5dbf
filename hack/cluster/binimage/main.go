// Command binimage builds one Go main package as a static binary and wraps
// it as a one-layer image in a docker archive, the form
// `ctr -n k8s.io images import` loads. The real single-node cluster uses
// it for its pause image (hack/cluster/pause) and test/cluster for a tiny
// HTTP server; nothing on that cluster is ever pulled.
//
//	go run ./hack/cluster/binimage -pkg ./hack/cluster/pause -tag localhost/vcon-operator/pause:1 -out pause.tar
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/vcon-operator/vcon-operator/internal/image"
)

func main() {
	pkg := flag.String("pkg", "", "Go main package to build (for example ./hack/cluster/pause)")
	tag := flag.String("tag", "", "image reference the archive is tagged with")
	out := flag.String("out", "", "docker archive to write")
	user := flag.String("user", "65532:65532", "the image config's user")
	flag.Parse()
	if *pkg == "" || *tag == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "binimage: -pkg, -tag and -out are required")
		os.Exit(2)
	}
	if err := run(*pkg, *tag, *out, *user); err != nil {
		fmt.Fprintln(os.Stderr, "binimage:", err)
		os.Exit(1)
	}
}

func run(pkg, tag, out, user string) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("parse -tag: %w", err)
	}
	tmp, err := os.MkdirTemp("", "binimage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "bin")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, pkg)
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build %s: %w", pkg, err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	entry := "/" + path.Base(filepath.ToSlash(pkg))
	img, err := oneFileImage(entry, data, user)
	if err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := image.WriteDockerArchive(f, img, ref); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", out, err)
	}
	return f.Close()
}

// oneFileImage is an image of one executable at entry, run as user.
func oneFileImage(entry string, data []byte, user string) (v1.Image, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{
		Name: entry[1:], Mode: 0o755, Size: int64(len(data)),
		Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0), Format: tar.FormatPAX,
	}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(data); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(
		func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil },
		tarball.WithMediaType(types.DockerLayer))
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Entrypoint = []string{entry}
	cf.Config.User = user
	return mutate.ConfigFile(img, cf)
}
