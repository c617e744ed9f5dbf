package promop

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vcon-operator/vcon-operator/hack/cluster/oneimage"
)

// Images are the references of the three images Install runs.
type Images struct {
	Prometheus     string // localhost/vcon-operator/prometheus:v3.16.0
	Operator       string // localhost/vcon-operator/prometheus-operator:v0.85.0
	ConfigReloader string // localhost/vcon-operator/prometheus-config-reloader:v0.85.0
	// PrometheusVersion is the Prometheus resource's spec.version (v3.16.0).
	PrometheusVersion string
}

const imageRepo = "localhost/vcon-operator/"

// ImagesIn names the images of the binaries in binDir (this repository's
// bin/): each tag is the version hack/tools.sh built, read from the cache
// directory the binary links to (~/.cache/vcon-operator/<tool>-<version>/).
func ImagesIn(binDir string) (Images, error) {
	promModule, err := toolVersion(binDir, "prometheus", "prometheus")
	if err != nil {
		return Images{}, err
	}
	promVersion, err := prometheusVersion(promModule)
	if err != nil {
		return Images{}, err
	}
	opVersion, err := toolVersion(binDir, "prometheus-operator", "prometheus-operator")
	if err != nil {
		return Images{}, err
	}
	return Images{
		Prometheus:        imageRepo + "prometheus:" + promVersion,
		Operator:          imageRepo + "prometheus-operator:" + opVersion,
		ConfigReloader:    imageRepo + "prometheus-config-reloader:" + opVersion,
		PrometheusVersion: promVersion,
	}, nil
}

// ImportImages wraps bin/prometheus, bin/prometheus-operator and
// bin/prometheus-config-reloader as one-binary images (run as 65534) and
// imports them into the containerd at socket (namespace k8s.io), so
// Install's pods never pull. It needs ctr on PATH and access to the
// socket (root).
func ImportImages(ctx context.Context, binDir, socket string) (Images, error) {
	img, err := ImagesIn(binDir)
	if err != nil {
		return Images{}, err
	}
	tmp, err := os.MkdirTemp("", "promop-images-")
	if err != nil {
		return Images{}, err
	}
	defer os.RemoveAll(tmp)
	for bin, ref := range map[string]string{
		"prometheus":                 img.Prometheus,
		"prometheus-operator":        img.Operator,
		"prometheus-config-reloader": img.ConfigReloader,
	} {
		archive := filepath.Join(tmp, bin+".tar")
		user := strconv.Itoa(nonroot) + ":" + strconv.Itoa(nonroot)
		// /bin/<name>, as upstream's images: the operator runs
		// /bin/prometheus-config-reloader by path.
		if err := oneimage.WriteArchive(archive, ref, "bin/"+bin, filepath.Join(binDir, bin), user); err != nil {
			return Images{}, fmt.Errorf("image %s: %w", ref, err)
		}
		out, err := exec.CommandContext(ctx, "ctr", "-n", "k8s.io", "-a", socket, "images", "import", archive).CombinedOutput()
		if err != nil {
			return Images{}, fmt.Errorf("ctr images import %s: %w\n%s", ref, err, out)
		}
	}
	return img, nil
}

// toolVersion is the version of the cache directory bin/name links into,
// <tool>-<version>.
func toolVersion(binDir, name, tool string) (string, error) {
	target, err := filepath.EvalSymlinks(filepath.Join(binDir, name))
	if err != nil {
		return "", fmt.Errorf("%w: run hack/tools.sh prometheus prometheus-operator", err)
	}
	v, ok := strings.CutPrefix(filepath.Base(filepath.Dir(target)), tool+"-")
	if !ok || !strings.HasPrefix(v, "v") {
		return "", fmt.Errorf("%s links to %s, not into a %s-<version> cache directory: run hack/tools.sh prometheus prometheus-operator", filepath.Join(binDir, name), target, tool)
	}
	return v, nil
}

// prometheusVersion is the Prometheus release of a
// github.com/prometheus/prometheus module version: v0.316.0 is v3.16.0
// (Prometheus 3 publishes v0.3XY.Z for vX.Y.Z).
func prometheusVersion(module string) (string, error) {
	parts := strings.Split(strings.TrimPrefix(module, "v"), ".")
	if len(parts) != 3 || parts[0] != "0" {
		return "", fmt.Errorf("prometheus module version %q: want v0.MNN.P", module)
	}
	minor, err := strconv.Atoi(parts[1])
	if err != nil || minor < 300 {
		return "", fmt.Errorf("prometheus module version %q: want Prometheus 3 or later (v0.300.0+)", module)
	}
	return fmt.Sprintf("v%d.%d.%s", minor/100, minor%100, parts[2]), nil
}
