package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCreationTime(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1768473000")
	got, err := creationTime()
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 1, 15, 10, 30, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("creation time %v, want %v", got, want)
	}

	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	if _, err := creationTime(); err == nil || !strings.Contains(err.Error(), "not a number") {
		t.Errorf("SOURCE_DATE_EPOCH=yesterday: %v, want an error", err)
	}
}

func TestReadCACerts(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.crt")
	bad := filepath.Join(dir, "bad.crt")
	if err := os.WriteFile(good, []byte("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		path string
		want string // "" for success
	}{
		"bundle":      {good, ""},
		"missing":     {filepath.Join(dir, "absent.crt"), "apt-get install -y ca-certificates"},
		"not pem":     {bad, "no PEM certificate"},
		"a directory": {dir, "CA certificates"},
	}
	for what, c := range cases {
		t.Run(what, func(t *testing.T) {
			_, err := readCACerts(c.path)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("readCACerts: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("readCACerts: %v, want an error containing %q", err, c.want)
			}
		})
	}
}
