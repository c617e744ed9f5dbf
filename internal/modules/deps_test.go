package modules_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/vcon-operator/vcon-operator"

// workerOnly are the packages only the worker (cmd/conserver, cmd/api)
// may link: its modules, its pipeline and HTTP server, and the drivers
// and libraries they bring. A pattern matches the package and those
// under it.
var workerOnly = []string{
	module + "/internal/links",
	module + "/internal/storage",
	module + "/internal/pipeline",
	module + "/internal/api",
	"github.com/aws/aws-sdk-go-v2",
	"github.com/aws/smithy-go",
	"github.com/jackc/pgx",
	"go.mongodb.org/mongo-driver",
	"github.com/itchyny/gojq",
	"github.com/pkg/sftp",
	"golang.org/x/crypto/ssh",
}

// TestOperatorLinksNoWorkerCode fails when the manager or the kubectl
// plugin depends on a worker-only package, naming the import chain that
// brings it in. The worker itself is listed too, as proof that the check
// sees what it looks for.
func TestOperatorLinksNoWorkerCode(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list dependencies: %v", err)
	}
	for _, c := range []struct {
		binary       string
		mayUseWorker bool
	}{
		{"cmd/manager", false},
		{"cmd/kubectl-vcon", false},
		{"cmd/conserver", true},
	} {
		t.Run(c.binary, func(t *testing.T) {
			root := module + "/" + c.binary
			imports := listDeps(t, goTool, root)
			var found []string
			for pkg := range imports {
				if matchesAny(pkg, workerOnly) {
					found = append(found, pkg)
				}
			}
			slices.Sort(found)
			if c.mayUseWorker {
				if len(found) == 0 {
					t.Fatalf("%s links none of %q: the check cannot see them", c.binary, workerOnly)
				}
				return
			}
			for _, pkg := range topmost(found, imports) {
				t.Errorf("%s links worker code %s via %s", c.binary, strings.TrimPrefix(pkg, module+"/"), strings.Join(importChain(root, pkg, imports), " -> "))
			}
		})
	}
}

// listDeps returns, for root and every package it depends on, the
// packages it imports.
//
// go test caches a passing result keyed on the files the test itself
// opened, and what `go list` read is not among them: without reading
// them here, a new import in controllers/ would not rerun this test. So
// the test reads go.mod, go.sum and every directory and Go file of this
// module that root depends on (the other modules are pinned by go.sum).
func listDeps(t *testing.T, goTool, root string) map[string][]string {
	t.Helper()
	cmd := exec.Command(goTool, "list", "-deps", "-f", `{{.ImportPath}} {{if .Module}}{{.Module.Path}} {{.Module.GoMod}} {{.Dir}}{{else}}- - -{{end}} {{join .Imports " "}}`, root)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", root, err, stderr.String())
	}
	imports := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 {
			t.Fatalf("go list printed %q", sc.Text())
		}
		pkg, mod, gomod, dir := f[0], f[1], f[2], f[3]
		imports[pkg] = f[4:]
		if mod == module {
			readForCache(t, dir, filepath.Join(filepath.Dir(gomod), "go.sum"), gomod)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if _, ok := imports[root]; !ok {
		t.Fatalf("go list -deps %s did not list %s itself", root, root)
	}
	return imports
}

// readForCache reads dir's listing and Go files, and the named files, so
// that go test reruns the test when any of them changes.
func readForCache(t *testing.T, dir string, files ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".go") {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	for _, f := range files {
		if _, err := os.ReadFile(f); err != nil {
			t.Fatal(err)
		}
	}
}

func matchesAny(pkg string, patterns []string) bool {
	for _, p := range patterns {
		if pkg == p || strings.HasPrefix(pkg, p+"/") {
			return true
		}
	}
	return false
}

// topmost keeps the offending packages no other offending package
// imports: the SDK's hundred subpackages are reported as the one link
// that pulled them in.
func topmost(found []string, imports map[string][]string) []string {
	var out []string
	for _, pkg := range found {
		pulledByOther := false
		for _, other := range found {
			if other != pkg && slices.Contains(imports[other], pkg) {
				pulledByOther = true
				break
			}
		}
		if !pulledByOther {
			out = append(out, pkg)
		}
	}
	return out
}

// importChain is a shortest import path from root to pkg.
func importChain(root, pkg string, imports map[string][]string) []string {
	prev := map[string]string{root: ""}
	queue := []string{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == pkg {
			var chain []string
			for ; p != ""; p = prev[p] {
				chain = append(chain, strings.TrimPrefix(p, module+"/"))
			}
			slices.Reverse(chain)
			return chain
		}
		for _, next := range imports[p] {
			if _, seen := prev[next]; !seen {
				prev[next] = p
				queue = append(queue, next)
			}
		}
	}
	return []string{root, "?", pkg}
}
