package modules_test

import (
	"slices"
	"strings"
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

// TestStrictLinksReadStrict: every module the catalog says takes strict
// reads it by the options rules (a value that is not a boolean is refused
// and named), so the operator's default for hand-written Links reaches a
// module that acts on it.
func TestStrictLinksReadStrict(t *testing.T) {
	minimal := map[string]map[string]any{
		"links.jq_link": {},
		"links.webhook": {"webhook-urls": []any{"https://hooks.example/x"}},
	}
	if len(modules.StrictLinks()) == 0 {
		t.Fatal("no link takes strict")
	}
	for _, module := range modules.StrictLinks() {
		t.Run(module, func(t *testing.T) {
			base, ok := minimal[module]
			if !ok {
				t.Fatalf("add the minimal options of %s to this test", module)
			}
			with := func(v any) map[string]any {
				opts := map[string]any{modules.StrictOption: v}
				for k, x := range base {
					opts[k] = x
				}
				return opts
			}
			for _, v := range []any{true, false, "true"} {
				if _, err := links.New("s", module, with(v), links.Deps{}); err != nil {
					t.Fatalf("strict: %v refused: %v", v, err)
				}
			}
			_, err := links.New("s", module, with("sometimes"), links.Deps{})
			if err == nil || !strings.Contains(err.Error(), `option "strict"`) {
				t.Fatalf("strict: sometimes: error = %v, want it named", err)
			}
		})
	}
}
