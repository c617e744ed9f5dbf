// Package oneimage wraps one static binary as a one-layer image in a docker
// archive, the form `ctr -n k8s.io images import` loads. The real
// single-node cluster runs only such images (nothing is ever pulled):
// hack/cluster/binimage is its command line, internal/devsys/promop wraps the
// Prometheus Operator's binaries with it.
package oneimage

import (
	"fmt"
	"os"
	"path"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/vcon-operator/vcon-operator/internal/image"
)

// WriteArchive writes to out a docker archive tagged tag of one image: the
// binary at bin installed as /entry (a path: "pause", "bin/prometheus"),
// its entrypoint, run as user ("uid:gid").
func WriteArchive(out, tag, entry, bin, user string) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("parse tag %q: %w", tag, err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	img, err := Image(entry, data, user)
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

// Image is an image of one executable, data, at /entry, run as user.
func Image(entry string, data []byte, user string) (v1.Image, error) {
	var files []image.File
	for _, dir := range parents(entry) {
		files = append(files, image.File{Name: dir + "/", Mode: 0o755})
	}
	files = append(files, image.File{Name: entry, Mode: 0o755, Data: data})
	layer, err := image.Layer(files, time.Unix(0, 0), types.DockerLayer)
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
	cf.Config.Entrypoint = []string{"/" + entry}
	cf.Config.User = user
	return mutate.ConfigFile(img, cf)
}

// parents are the directories above entry, outermost first: bin/a/x has
// bin and bin/a.
func parents(entry string) []string {
	var dirs []string
	for dir := path.Dir(entry); dir != "." && dir != "/"; dir = path.Dir(dir) {
		dirs = append([]string{dir}, dirs...)
	}
	return dirs
}
