package charttest

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// The chart's README is what helm-docs makes of values.yaml's comments
// (make manifests writes it), and every value in it has a description.
func TestREADMEGeneratedFromValues(t *testing.T) {
	p := paths(t)
	helmDocs, err := p.Tool("helm-docs")
	if err != nil {
		t.Fatal(err)
	}
	out, err := Run(p.Root, helmDocs, "--chart-search-root", filepath.Dir(p.Chart), "--skip-version-footer",
		"--sort-values-order", "file", "--log-level", "warning", "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(p.Chart, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != strings.TrimSpace(string(readme)) {
		t.Errorf("charts/vcon-operator/README.md is not what helm-docs generates from values.yaml: run make manifests")
	}
	_, table, ok := strings.Cut(out, "| Key | Type | Default | Description |")
	if !ok {
		t.Fatalf("the README has no values table:\n%s", out)
	}
	rows := 0
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) != 6 || strings.HasPrefix(strings.TrimSpace(cells[1]), "---") {
			continue
		}
		rows++
		if strings.TrimSpace(cells[4]) == "" {
			t.Errorf("value %s has no description: write a `# --` comment above it in values.yaml", strings.TrimSpace(cells[1]))
		}
	}
	if rows < 50 {
		t.Errorf("the values table has %d rows; the parse lost some", rows)
	}
}

// ArtifactHub reads Chart.yaml's artifacthub.io annotations: they must
// parse, name every CRD the chart installs, show the samples as the CRD
// examples, and the image of this appVersion.
func TestArtifactHubMetadata(t *testing.T) {
	p := paths(t)
	b, err := os.ReadFile(filepath.Join(p.Chart, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		AppVersion  string            `json:"appVersion"`
		Annotations map[string]string `json:"annotations"`
	}
	if err := yaml.Unmarshal(b, &chart); err != nil {
		t.Fatal(err)
	}
	annotation := func(key string, into any) {
		t.Helper()
		v, ok := chart.Annotations["artifacthub.io/"+key]
		if !ok {
			t.Errorf("Chart.yaml lacks artifacthub.io/%s", key)
			return
		}
		if err := yaml.UnmarshalStrict([]byte(v), into); err != nil {
			t.Errorf("artifacthub.io/%s: %v", key, err)
		}
	}

	var crds []struct{ Kind, Version, Name, DisplayName, Description string }
	annotation("crds", &crds)
	rendered := map[string]bool{}
	for _, c := range Find(render(t, p), "CustomResourceDefinition") {
		rendered[c.GetName()] = true
	}
	for _, c := range crds {
		if !rendered[c.Name] || c.Description == "" || c.Version != "v1alpha1" {
			t.Errorf("artifacthub.io/crds entry %+v: not a CRD the chart installs, or no description", c)
		}
	}
	if len(crds) != len(rendered) {
		t.Errorf("artifacthub.io/crds lists %d CRDs, the chart installs %d", len(crds), len(rendered))
	}

	var examples []map[string]any
	annotation("crdsExamples", &examples)
	for _, f := range []string{"chain_calls.yaml", "link_tag.yaml", "storage_files.yaml"} {
		sb, err := os.ReadFile(filepath.Join(p.Root, "config", "samples", f))
		if err != nil {
			t.Fatal(err)
		}
		var sample map[string]any
		if err := yaml.Unmarshal(sb, &sample); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range examples {
			found = found || reflect.DeepEqual(e, sample)
		}
		if !found {
			t.Errorf("artifacthub.io/crdsExamples lacks config/samples/%s as it is now", f)
		}
	}

	var images []struct{ Name, Image string }
	annotation("images", &images)
	if len(images) != 1 || !strings.HasSuffix(images[0].Image, ":"+chart.AppVersion) {
		t.Errorf("artifacthub.io/images %+v: want the one image at appVersion %s", images, chart.AppVersion)
	}
	var changes []struct{ Kind, Description string }
	annotation("changes", &changes)
	for _, c := range changes {
		switch c.Kind {
		case "added", "changed", "deprecated", "removed", "fixed", "security":
		default:
			t.Errorf("artifacthub.io/changes: kind %q is not one ArtifactHub knows", c.Kind)
		}
	}
	var links []struct{ Name, URL string }
	annotation("links", &links)
	if len(links) == 0 {
		t.Error("artifacthub.io/links is empty")
	}
	if _, err := os.Stat(filepath.Join(p.Chart, "artifacthub-repo.yml")); err != nil {
		t.Errorf("artifacthub-repo.yml: %v", err)
	}
}
