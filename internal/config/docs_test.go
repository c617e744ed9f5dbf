package config

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The table of docs/migrating-from-conserver.md that lists every
// behaviour differing from conserver's, each with the test that checks it.
const (
	migrationGuide    = "docs/migrating-from-conserver.md"
	differenceHeading = "Every difference"
	differenceColumns = 6 // behaviour, conserver, ours, why, option, test
)

var (
	testName = regexp.MustCompile("`(Test[A-Za-z0-9_]+)`")
	testFunc = regexp.MustCompile(`(?m)^func (Test[A-Za-z0-9_]+)\(`)
)

// differenceProblems reads the table under the "## ... Every difference"
// heading of doc and returns what is wrong with it: no such section or
// table, a row without its columns, a row naming no test, a test that
// exists reports false for.
func differenceProblems(doc string, exists func(string) bool) []string {
	var problems []string
	lines := strings.Split(doc, "\n")
	start := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "## ") && strings.Contains(l, differenceHeading) {
			start = i + 1
			break
		}
	}
	if start < 0 {
		return []string{fmt.Sprintf("no section %q", differenceHeading)}
	}
	rows := 0
	inTable := false
	for i := start; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if strings.HasPrefix(l, "## ") {
			break
		}
		if !strings.HasPrefix(l, "|") {
			if inTable {
				break // the table ended
			}
			continue
		}
		cells := splitRow(l)
		if !inTable { // the header, then its rule
			inTable = true
			if len(cells) != differenceColumns {
				problems = append(problems, fmt.Sprintf("line %d: the header has %d columns, want %d", i+1, len(cells), differenceColumns))
			}
			i++
			continue
		}
		rows++
		if len(cells) != differenceColumns {
			problems = append(problems, fmt.Sprintf("line %d: %d columns, want %d (a | in a cell must be written \\|)", i+1, len(cells), differenceColumns))
			continue
		}
		for c, cell := range cells {
			if strings.TrimSpace(cell) == "" {
				problems = append(problems, fmt.Sprintf("line %d (%s): column %d is empty", i+1, cells[0], c+1))
			}
		}
		names := testName.FindAllStringSubmatch(cells[differenceColumns-1], -1)
		if len(names) == 0 {
			problems = append(problems, fmt.Sprintf("line %d (%s): names no test; write `TestX`", i+1, cells[0]))
		}
		for _, m := range names {
			if !exists(m[1]) {
				problems = append(problems, fmt.Sprintf("line %d (%s): no func %s( in any _test.go file", i+1, cells[0], m[1]))
			}
		}
	}
	if rows == 0 {
		problems = append(problems, fmt.Sprintf("section %q has no table rows", differenceHeading))
	}
	return problems
}

// splitRow splits a Markdown table row into its cells, keeping \| inside
// a cell.
func splitRow(row string) []string {
	row = strings.TrimSuffix(strings.TrimPrefix(row, "|"), "|")
	var cells []string
	var cell strings.Builder
	for i := 0; i < len(row); i++ {
		switch {
		case row[i] == '\\' && i+1 < len(row) && row[i+1] == '|':
			cell.WriteByte('|')
			i++
		case row[i] == '|':
			cells = append(cells, strings.TrimSpace(cell.String()))
			cell.Reset()
		default:
			cell.WriteByte(row[i])
		}
	}
	return append(cells, strings.TrimSpace(cell.String()))
}

// repoTests returns the names of every test function of the module.
func repoTests(t *testing.T, root string) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "bin" || d.Name() == "vendor") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range testFunc.FindAllStringSubmatch(string(src), -1) {
			names[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestEveryDifferenceHasATest: each row of the migration guide's table of
// differences names at least one test, and each test it names exists.
func TestEveryDifferenceHasATest(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not at %s: %v", root, err)
	}
	doc, err := os.ReadFile(filepath.Join(root, migrationGuide))
	if err != nil {
		t.Fatal(err)
	}
	tests := repoTests(t, root)
	for _, p := range differenceProblems(string(doc), func(name string) bool { return tests[name] }) {
		t.Errorf("%s: %s", migrationGuide, p)
	}
}

// TestDifferenceTableCheck: the check above finds each kind of mistake.
func TestDifferenceTableCheck(t *testing.T) {
	const header = "## 7. Every difference\n\nintro\n\n| behaviour | conserver | ours | why | option | test |\n|---|---|---|---|---|---|\n"
	known := func(name string) bool { return name == "TestKnown" || name == "TestOther" }
	tests := []struct {
		name string
		doc  string
		want []string // substrings, one per problem; none when empty
	}{
		{name: "good", doc: header + "| a | b | c | d | none | `TestKnown`, `TestOther` |\n| x \\| y | b | c | d | e | `TestKnown` |\n\n## 8. Next\n| not | the | table | at | all | x |\n"},
		{name: "no section", doc: "## 1. Other\n", want: []string{"no section"}},
		{name: "no rows", doc: "## 7. Every difference\n\ntext only\n", want: []string{"no table rows"}},
		{name: "row without a test", doc: header + "| a | b | c | d | e | see the code |\n", want: []string{"names no test"}},
		{name: "unknown test", doc: header + "| a | b | c | d | e | `TestKnown`, `TestGone` |\n", want: []string{"no func TestGone("}},
		{name: "unescaped pipe", doc: header + "| a | b | c | x | y | d | e | `TestKnown` |\n", want: []string{"8 columns"}},
		{name: "empty cell", doc: header + "| a |  | c | d | e | `TestKnown` |\n", want: []string{"column 2 is empty"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := differenceProblems(tc.doc, known)
			if len(got) != len(tc.want) {
				t.Fatalf("problems %q, want %d like %q", got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %q, want it to say %q", got[i], w)
				}
			}
		})
	}
}
