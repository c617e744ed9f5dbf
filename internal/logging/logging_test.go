package logging

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

type stringer string

func (s stringer) String() string { return string(s) }

// TestBoundedCutsEveryValue logs a huge value in every shape a caller
// passes and checks the line stays short and says how long the value was.
func TestBoundedCutsEveryValue(t *testing.T) {
	huge := strings.Repeat("u", 5<<20)
	tests := []struct {
		name string
		log  func(l *slog.Logger)
	}{
		{"string attr", func(l *slog.Logger) { l.Info("taken", "uuid", huge) }},
		{"error attr", func(l *slog.Logger) { l.Info("failed", "error", errors.New(huge)) }},
		{"stringer attr", func(l *slog.Logger) { l.Info("x", "v", stringer(huge)) }},
		{"bytes attr", func(l *slog.Logger) { l.Info("x", "v", []byte(huge)) }},
		{"group attr", func(l *slog.Logger) { l.Info("x", slog.Group("g", "uuid", huge)) }},
		{"With attr", func(l *slog.Logger) { l.With("uuid", huge).Info("x") }},
		{"message", func(l *slog.Logger) { l.Info(huge) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			tt.log(NewJSON(&buf, nil))
			if buf.Len() > 2*MaxValueBytes {
				t.Fatalf("line is %d bytes, want under %d", buf.Len(), 2*MaxValueBytes)
			}
			if !strings.Contains(buf.String(), "(5242880 bytes)") {
				t.Fatalf("line does not say the value's size: %s", buf.String())
			}
		})
	}
}

func TestBoundedKeepsShortValues(t *testing.T) {
	var buf bytes.Buffer
	NewJSON(&buf, nil).Info("taken", "uuid", "0193a8f2-aaaa", "n", 3, "héllo", strings.Repeat("é", 200))
	got := buf.String()
	for _, want := range []string{`"uuid":"0193a8f2-aaaa"`, `"n":3`} {
		if !strings.Contains(got, want) {
			t.Fatalf("missing %s in %s", want, got)
		}
	}
	if !strings.Contains(got, "…(400 bytes)") || strings.ContainsRune(got, '\uFFFD') {
		t.Fatalf("a multi-byte value must be cut on a rune boundary: %s", got)
	}
}
