package image

import (
	"encoding/json"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// stage is what a Dockerfile stage says, as far as the image goes.
type stage struct {
	from       string
	user       string
	entrypoint []string
	copies     [][]string // sources..., destination; flags dropped
	runs       []string
}

// parseDockerfile splits a Dockerfile into stages: comments dropped,
// backslash continuations joined. It knows only what our Dockerfile uses.
func parseDockerfile(t *testing.T, text string) []stage {
	t.Helper()
	var stages []stage
	var logical []string
	var cur strings.Builder
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		logical = append(logical, cur.String())
		cur.Reset()
	}
	for _, l := range logical {
		instr, args, _ := strings.Cut(l, " ")
		args = strings.TrimSpace(args)
		if strings.EqualFold(instr, "FROM") {
			stages = append(stages, stage{from: args})
			continue
		}
		if len(stages) == 0 {
			if strings.EqualFold(instr, "ARG") {
				continue
			}
			t.Fatalf("Dockerfile: %s before FROM", instr)
		}
		s := &stages[len(stages)-1]
		switch strings.ToUpper(instr) {
		case "USER":
			s.user = args
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(args), &s.entrypoint); err != nil {
				t.Fatalf("Dockerfile: ENTRYPOINT %s is not the exec (JSON) form: %v", args, err)
			}
		case "COPY":
			var fields []string
			for _, f := range strings.Fields(args) {
				if !strings.HasPrefix(f, "--") {
					fields = append(fields, f)
				}
			}
			s.copies = append(s.copies, fields)
		case "RUN":
			s.runs = append(s.runs, args)
		}
	}
	return stages
}

func TestMatchesDockerfile(t *testing.T) {
	text, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	stages := parseDockerfile(t, string(text))
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a build stage and a final one", len(stages))
	}
	build, final := stages[len(stages)-2], stages[len(stages)-1]

	// The binaries the build stage compiles, and where it puts them.
	var built []string
	var outDir string
	loop := regexp.MustCompile(`for (\w+) in ([\w -]+);`)
	for _, r := range build.runs {
		m := loop.FindStringSubmatch(r)
		if m == nil {
			continue
		}
		built = strings.Fields(m[2])
		out := regexp.MustCompile(`-o (\S+)/\$` + m[1] + `\b`).FindStringSubmatch(r)
		if out == nil {
			t.Fatalf("Dockerfile: no -o DIR/$%s in %q", m[1], r)
		}
		outDir = out[1]
	}
	if built == nil {
		t.Fatal("Dockerfile: no `for bin in ...` loop in the build stage")
	}

	// The final stage copies that directory somewhere; those are the paths.
	var paths []string
	for _, c := range final.copies {
		if len(c) != 2 || path.Clean(c[0]) != path.Clean(outDir) {
			t.Fatalf("Dockerfile: final stage COPY %v; this test knows only COPY --from=build %s/ DEST", c, outDir)
		}
		for _, b := range built {
			paths = append(paths, path.Join(c[1], b))
		}
	}

	img, err := Build(fakeInputs())
	if err != nil {
		t.Fatal(err)
	}
	amd64, err := ForPlatform(img, "linux", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	cf, err := amd64.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if final.user != cf.Config.User {
		t.Errorf("Dockerfile USER %q, image user %q", final.user, cf.Config.User)
	}
	if !slices.Equal(final.entrypoint, cf.Config.Entrypoint) {
		t.Errorf("Dockerfile ENTRYPOINT %q, image entrypoint %q", final.entrypoint, cf.Config.Entrypoint)
	}
	var imagePaths []string
	for _, b := range Binaries {
		imagePaths = append(imagePaths, "/"+b)
	}
	slices.Sort(paths)
	slices.Sort(imagePaths)
	if !slices.Equal(paths, imagePaths) {
		t.Errorf("Dockerfile installs %v, image has %v", paths, imagePaths)
	}
	// distroless/static:nonroot is what the base layer stands in for.
	if final.from != "gcr.io/distroless/static:nonroot" {
		t.Errorf("Dockerfile's final stage is FROM %s: check that baseFiles still gives what it does", final.from)
	}
}

// TestMatchesMakefile keeps the binaries `make build` builds and the ones
// the image holds the same.
func TestMatchesMakefile(t *testing.T) {
	text, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^BINARIES\s*:?=\s*(.*)$`).FindSubmatch(text)
	if m == nil {
		t.Fatal("Makefile: no BINARIES := line")
	}
	got := strings.Fields(string(m[1]))
	want := slices.Clone(Binaries)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Makefile BINARIES %v, image Binaries %v", got, want)
	}
}
