package modules_test

import (
	"slices"
	"testing"

	"github.com/vcon-operator/vcon-operator/internal/links"
	"github.com/vcon-operator/vcon-operator/internal/modules"
	"github.com/vcon-operator/vcon-operator/internal/storage"
)

// TestCatalogIsWhatTheWorkerRegisters fails when a module is registered in
// internal/links or internal/storage and not named in the catalog (or the
// other way round): the operator would then refuse a step the worker runs.
// This external test package may import the worker's code; the catalog may
// not.
func TestCatalogIsWhatTheWorkerRegisters(t *testing.T) {
	for _, c := range []struct {
		kind            string
		catalog, worker []string
	}{
		{"link", modules.Links(), links.Known()},
		{"storage", modules.Storages(), storage.Known()},
	} {
		if !slices.IsSorted(c.catalog) {
			t.Errorf("%s catalog is not sorted: %q", c.kind, c.catalog)
		}
		if !slices.Equal(c.catalog, c.worker) {
			t.Errorf("%s catalog differs from what the worker registers:\n catalog: %q\n  worker: %q\nupdate internal/modules/modules.go", c.kind, c.catalog, c.worker)
		}
	}
}

func TestIs(t *testing.T) {
	for _, c := range []struct {
		module        string
		link, storage bool
	}{
		{"links.tag", true, false},
		{"storage.s3", false, true},
		{"links.s3", false, false},
		{"", false, false},
	} {
		if got := modules.IsLink(c.module); got != c.link {
			t.Errorf("IsLink(%q) = %v", c.module, got)
		}
		if got := modules.IsStorage(c.module); got != c.storage {
			t.Errorf("IsStorage(%q) = %v", c.module, got)
		}
	}
}

func TestCallerOwnsTheSlice(t *testing.T) {
	l := modules.Links()
	l[0] = "links.changed"
	if modules.Links()[0] == "links.changed" {
		t.Fatal("Links() returned the catalog itself")
	}
}
