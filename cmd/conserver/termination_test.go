package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestWriteTerminationMessage(t *testing.T) {
	dir := t.TempDir()
	env := func(path string) func(string) string {
		return func(k string) string {
			if k == envTerminationLog {
				return path
			}
			return ""
		}
	}

	existing := filepath.Join(dir, "termination-log")
	if err := os.WriteFile(existing, []byte("an older, longer message"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeTerminationMessage(env(existing), "conserver: invalid config")
	if got, _ := os.ReadFile(existing); string(got) != "conserver: invalid config" {
		t.Errorf("message %q, want the new one alone", got)
	}

	long := strings.Repeat("é", maxTerminationMessage)
	writeTerminationMessage(env(existing), long)
	got, _ := os.ReadFile(existing)
	if len(got) > maxTerminationMessage || !utf8.Valid(got) || !strings.HasSuffix(string(got), "(truncated)") {
		t.Errorf("long message written as %d bytes (valid UTF-8 %v), want at most %d, marked truncated", len(got), utf8.Valid(got), maxTerminationMessage)
	}

	absent := filepath.Join(dir, "absent")
	writeTerminationMessage(env(absent), "conserver: boom")
	if _, err := os.Stat(absent); !os.IsNotExist(err) {
		t.Errorf("a missing termination log was created (stat: %v)", err)
	}
	writeTerminationMessage(env(filepath.Join(dir, "no", "such", "dir")), "conserver: boom") // must not panic
}

func TestTruncateMessage(t *testing.T) {
	for _, c := range []struct {
		msg   string
		limit int
		want  string
	}{
		{"short", 100, "short"},
		{"exactly", 7, "exactly"},
		{strings.Repeat("a", 40), 20, "aaaaa …(truncated)"}, // the mark is 15 bytes
		// "é" is two bytes; the cut must not split it.
		{strings.Repeat("é", 20), 20, "éé …(truncated)"},
	} {
		got := truncateMessage(c.msg, c.limit)
		if got != c.want || len(got) > c.limit {
			t.Errorf("truncateMessage(%q, %d) = %q (%d bytes), want %q", c.msg, c.limit, got, len(got), c.want)
		}
	}
}
