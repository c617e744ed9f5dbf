package plugin

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

// krewPlugin is the part of krew-index's Plugin (v1alpha2) krew validates.
type krewPlugin struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version          string `json:"version"`
		Homepage         string `json:"homepage"`
		ShortDescription string `json:"shortDescription"`
		Description      string `json:"description"`
		Caveats          string `json:"caveats"`
		Platforms        []struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			URI    string `json:"uri"`
			Sha256 string `json:"sha256"`
			Files  []struct {
				From string `json:"from"`
				To   string `json:"to"`
			} `json:"files"`
			Bin string `json:"bin"`
		} `json:"platforms"`
	} `json:"spec"`
}

var (
	semver  = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$`)
	sha256h = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// checkKrew applies krew-index's rules to a manifest; sums, when set, are
// the sha256 each archive must have.
func checkKrew(t *testing.T, path, version string, sums map[string]string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var p krewPlugin
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		t.Fatalf("%s does not parse as a krew Plugin: %v", path, err)
	}
	s := p.Spec
	switch {
	case p.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || p.Kind != "Plugin":
		t.Errorf("apiVersion %q kind %q", p.APIVersion, p.Kind)
	case p.Metadata.Name != "vcon":
		t.Errorf("name %q: kubectl runs kubectl-vcon as kubectl vcon", p.Metadata.Name)
	case s.Version != version || !semver.MatchString(s.Version):
		t.Errorf("version %q, want %q (semver with a v)", s.Version, version)
	case !strings.HasPrefix(s.Homepage, "https://"), s.ShortDescription == "", len(s.ShortDescription) > 50, s.Description == "":
		t.Errorf("homepage %q, shortDescription %q (1..50 chars), description %d chars", s.Homepage, s.ShortDescription, len(s.Description))
	}
	want := map[string]bool{"linux/amd64": true, "linux/arm64": true, "darwin/amd64": true, "darwin/arm64": true, "windows/amd64": true}
	for _, pl := range s.Platforms {
		os, arch := pl.Selector.MatchLabels["os"], pl.Selector.MatchLabels["arch"]
		if !want[os+"/"+arch] {
			t.Errorf("platform %s/%s unexpected or repeated", os, arch)
		}
		delete(want, os+"/"+arch)
		archive := "kubectl-vcon_" + os + "_" + arch + ".tar.gz"
		if pl.URI != "https://github.com/vcon-operator/vcon-operator/releases/download/"+version+"/"+archive {
			t.Errorf("%s/%s uri %q", os, arch, pl.URI)
		}
		if !sha256h.MatchString(pl.Sha256) {
			t.Errorf("%s/%s sha256 %q is not 64 lower-case hex digits", os, arch, pl.Sha256)
		}
		if sums != nil && pl.Sha256 != sums[archive] {
			t.Errorf("%s/%s sha256 %s, want the archive's %s", os, arch, pl.Sha256, sums[archive])
		}
		bin := "kubectl-vcon"
		if os == "windows" {
			bin += ".exe"
		}
		if pl.Bin != bin || len(pl.Files) != 1 || pl.Files[0].From != bin || pl.Files[0].To != "." {
			t.Errorf("%s/%s bin %q files %+v, want %s installed from the archive", os, arch, pl.Bin, pl.Files, bin)
		}
	}
	if len(want) > 0 {
		t.Errorf("platforms missing: %v", want)
	}
}

// TestKrewManifest: hack/krew/vcon.yaml is a krew Plugin with placeholders,
// and release.sh render fills them from the archives.
func TestKrewManifest(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(root, "hack", "krew", "vcon.yaml")
	t.Run("placeholders", func(t *testing.T) { checkKrew(t, manifest, "v0.0.0", nil) })
	t.Run("rendered for a release", func(t *testing.T) {
		dir := t.TempDir()
		sums := map[string]string{}
		for _, plat := range []string{"linux_amd64", "linux_arm64", "darwin_amd64", "darwin_arm64", "windows_amd64"} {
			name := "kubectl-vcon_" + plat + ".tar.gz"
			content := []byte("archive of " + plat)
			if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(content)
			sums[name] = hex.EncodeToString(sum[:])
		}
		out, err := exec.Command(filepath.Join(root, "hack", "krew", "release.sh"), "render", "v1.4.2", dir).CombinedOutput()
		if err != nil {
			t.Fatalf("release.sh render: %v\n%s", err, out)
		}
		checkKrew(t, filepath.Join(dir, "vcon.yaml"), "v1.4.2", sums)
	})
	t.Run("render refuses a bad version", func(t *testing.T) {
		out, err := exec.Command(filepath.Join(root, "hack", "krew", "release.sh"), "render", "1.4", t.TempDir()).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "VERSION must be a semantic version") {
			t.Errorf("release.sh render 1.4: %v %s", err, out)
		}
	})
}
