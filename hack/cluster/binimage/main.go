// Command binimage wraps one static binary as a one-layer image in a docker
// archive, the form `ctr -n k8s.io images import` loads (package
// hack/cluster/oneimage). With -pkg it builds a Go main package first; with
// -bin it wraps a binary already built (bin/prometheus, say). The real
// single-node cluster uses it for its pause image (hack/cluster/pause) and
// test/cluster for a tiny HTTP server; nothing on that cluster is ever
// pulled. The entrypoint is /<the package's or file's base name>.
//
//	go run ./hack/cluster/binimage -pkg ./hack/cluster/pause -tag localhost/vcon-operator/pause:1 -out pause.tar
//	go run ./hack/cluster/binimage -bin bin/prometheus -tag localhost/vcon-operator/prometheus:v3.16.0 -out prometheus.tar
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"

	"github.com/vcon-operator/vcon-operator/hack/cluster/oneimage"
)

func main() {
	pkg := flag.String("pkg", "", "Go main package to build (for example ./hack/cluster/pause)")
	bin := flag.String("bin", "", "static binary to wrap instead of building -pkg")
	tag := flag.String("tag", "", "image reference the archive is tagged with")
	out := flag.String("out", "", "docker archive to write")
	user := flag.String("user", "65532:65532", "the image config's user")
	flag.Parse()
	if (*pkg == "") == (*bin == "") || *tag == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "binimage: one of -pkg or -bin, and -tag and -out are required")
		os.Exit(2)
	}
	if err := run(*pkg, *bin, *tag, *out, *user); err != nil {
		fmt.Fprintln(os.Stderr, "binimage:", err)
		os.Exit(1)
	}
}

func run(pkg, bin, tag, out, user string) error {
	if bin != "" {
		return oneimage.WriteArchive(out, tag, filepath.Base(bin), bin, user)
	}
	tmp, err := os.MkdirTemp("", "binimage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	built := filepath.Join(tmp, "bin")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", built, pkg)
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build %s: %w", pkg, err)
	}
	return oneimage.WriteArchive(out, tag, path.Base(filepath.ToSlash(pkg)), built, user)
}
