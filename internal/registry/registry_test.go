package registry

import (
	"slices"
	"testing"
)

func TestRegistry(t *testing.T) {
	r := New[func() int]("link")
	r.Register("links.b", func() int { return 2 })
	r.Register("links.a", func() int { return 1 })
	if got := r.Known(); !slices.Equal(got, []string{"links.a", "links.b"}) {
		t.Fatalf("Known = %v", got)
	}
	f, err := r.Lookup("tag", "links.b")
	if err != nil || f() != 2 {
		t.Fatalf("Lookup(links.b) = %v", err)
	}
	if _, err := r.Lookup("tag", "links.nope"); err == nil ||
		err.Error() != `link "tag": unknown module "links.nope" (known: links.a, links.b)` {
		t.Fatalf("unknown module: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("registering a module twice did not panic")
		}
	}()
	r.Register("links.a", func() int { return 3 })
}
