// Command image builds the project's image without a Docker engine: it
// cross-compiles the binaries for each platform, assembles them with
// internal/image and writes, under -out,
//
//	vcon-operator-<version>.tar                 OCI image layout, every platform
//	vcon-operator-<version>-<os>-<arch>.docker.tar  docker-archive for this machine
//
// The second is what `ctr -n k8s.io images import` takes on a node that
// runs this machine's architecture. `make image` runs this with the
// Makefile's ldflags; see docs/image.md.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/vcon-operator/vcon-operator/internal/image"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run() error {
	out := flag.String("out", "bin/image", "directory the tarballs are written to")
	version := flag.String("version", "", "image version: the tag and the version label (required)")
	revision := flag.String("revision", "", "full commit hash for the revision label (default: git rev-parse HEAD)")
	ldflags := flag.String("ldflags", "", "go build -ldflags, the Makefile's LDFLAGS")
	platforms := flag.String("platforms", "linux/amd64,linux/arm64", "comma-separated os/arch list")
	repository := flag.String("repository", "ghcr.io/vcon-operator/vcon-operator", "image name without the tag")
	licenses := flag.String("licenses", "", "SPDX license expression for the licenses label (left out when empty)")
	caCerts := flag.String("ca-certs", image.CACertsPath, "CA bundle to install, from Debian's ca-certificates package")
	flag.Parse()
	if *version == "" {
		return errors.New("-version is required")
	}
	ref, err := name.NewTag(*repository+":"+*version, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("image name %s:%s: %w", *repository, *version, err)
	}
	created, err := creationTime()
	if err != nil {
		return err
	}
	if *revision == "" {
		if *revision, err = git("rev-parse", "HEAD"); err != nil {
			return fmt.Errorf("revision: %w (or pass -revision)", err)
		}
	}
	certs, err := readCACerts(*caCerts)
	if err != nil {
		return err
	}

	work, err := os.MkdirTemp("", "vcon-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	in := image.Inputs{
		CACerts:  certs,
		Created:  created,
		Version:  *version,
		Revision: *revision,
		Licenses: *licenses,
	}
	for _, pl := range strings.Split(*platforms, ",") {
		goos, goarch, ok := strings.Cut(strings.TrimSpace(pl), "/")
		if !ok {
			return fmt.Errorf("-platforms: %q is not os/arch", pl)
		}
		p, err := compile(filepath.Join(work, goos+"-"+goarch), goos, goarch, *ldflags)
		if err != nil {
			return err
		}
		in.Platforms = append(in.Platforms, p)
	}

	idx, err := image.Build(in)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	layoutPath := filepath.Join(*out, image.Title+"-"+*version+".tar")
	if err := writeFile(layoutPath, func(w io.Writer) error { return image.WriteLayout(w, idx, ref, created) }); err != nil {
		return err
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s\n  OCI layout, index %s (%s)\n", layoutPath, digest, *platforms)

	host, err := image.ForPlatform(idx, runtime.GOOS, runtime.GOARCH)
	if err != nil {
		fmt.Printf("no docker archive: %v\n", err)
		return nil
	}
	dockerPath := filepath.Join(*out, fmt.Sprintf("%s-%s-%s-%s.docker.tar", image.Title, *version, runtime.GOOS, runtime.GOARCH))
	if err := writeFile(dockerPath, func(w io.Writer) error { return image.WriteDockerArchive(w, host, ref) }); err != nil {
		return err
	}
	hostDigest, err := host.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s\n  docker archive %s, manifest %s\n  load: ctr -n k8s.io images import %s\n", dockerPath, ref, hostDigest, dockerPath)
	return nil
}

// creationTime is SOURCE_DATE_EPOCH, else the commit time: never the wall
// clock, so a rebuild of the same commit gives the same digest.
func creationTime() (time.Time, error) {
	epoch := os.Getenv("SOURCE_DATE_EPOCH")
	if epoch == "" {
		var err error
		if epoch, err = git("log", "-1", "--format=%ct"); err != nil {
			return time.Time{}, fmt.Errorf("creation time: set SOURCE_DATE_EPOCH or build from a git checkout: %w", err)
		}
	}
	s, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: not a number of seconds", epoch)
	}
	return time.Unix(s, 0).UTC(), nil
}

// readCACerts reads the bundle Debian's ca-certificates package generates.
// There is no base image to take one from, so a missing bundle stops the
// build rather than giving an image whose TLS clients trust nothing.
func readCACerts(path string) ([]byte, error) {
	certs, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("CA certificates %s missing: the image takes them from Debian's ca-certificates package; install it with `apt-get install -y ca-certificates` (or pass -ca-certs FILE)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("CA certificates: %w", err)
	}
	if !bytes.Contains(certs, []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, fmt.Errorf("CA certificates %s holds no PEM certificate: reinstall them with `apt-get install --reinstall -y ca-certificates`", path)
	}
	return certs, nil
}

// compile builds every binary for one platform in one go build, static and
// with paths trimmed so the bytes depend only on the source and toolchain.
// No VCS stamp: the commit is in the ldflags and the labels already, and
// with it an untracked file in the checkout would change every binary.
func compile(dir, goos, goarch, ldflags string) (image.Platform, error) {
	args := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", dir + string(filepath.Separator)}
	for _, b := range image.Binaries {
		args = append(args, "./cmd/"+b)
	}
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	start := time.Now()
	fmt.Fprintf(os.Stderr, "building %s for %s/%s\n", strings.Join(image.Binaries, ", "), goos, goarch)
	if err := cmd.Run(); err != nil {
		return image.Platform{}, fmt.Errorf("go build for %s/%s: %w", goos, goarch, err)
	}
	fmt.Fprintf(os.Stderr, "built %s/%s in %s\n", goos, goarch, time.Since(start).Round(time.Second))
	p := image.Platform{OS: goos, Architecture: goarch, Binaries: map[string][]byte{}}
	for _, b := range image.Binaries {
		data, err := os.ReadFile(filepath.Join(dir, b))
		if err != nil {
			return image.Platform{}, err
		}
		p.Binaries[b] = data
	}
	return p, nil
}

// writeFile writes through a temporary file so a failed build leaves no
// half-written tarball behind.
func writeFile(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func git(args ...string) (string, error) {
	var stderr bytes.Buffer
	cmd := exec.Command("git", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}
