package oneimage

import (
	"archive/tar"
	"errors"
	"io"
	"slices"
	"testing"
)

func TestImage(t *testing.T) {
	for _, tc := range []struct {
		entry       string
		wantEntries []string
	}{
		{"pause", []string{"pause"}},
		{"bin/prometheus", []string{"bin/", "bin/prometheus"}},
		{"usr/local/bin/x", []string{"usr/", "usr/local/", "usr/local/bin/", "usr/local/bin/x"}},
	} {
		img, err := Image(tc.entry, []byte("#!"), "65534:65534")
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(cf.Config.Entrypoint, []string{"/" + tc.entry}) || cf.Config.User != "65534:65534" {
			t.Errorf("%s: entrypoint %q, user %q", tc.entry, cf.Config.Entrypoint, cf.Config.User)
		}
		layers, err := img.Layers()
		if err != nil || len(layers) != 1 {
			t.Fatalf("%s: %d layers, %v", tc.entry, len(layers), err)
		}
		rc, err := layers[0].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			names = append(names, h.Name)
		}
		if !slices.Equal(names, tc.wantEntries) {
			t.Errorf("%s: layer has %q, want %q", tc.entry, names, tc.wantEntries)
		}
	}
}
