package links

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/vcon/sample"
)

// BenchmarkLargeDocument runs core links on a vCon of about 8 MB shaped
// like a real call with its media inlined and its transcript an object
// (sample.Large, the costlier shape). The document is
// parsed outside the timer: B/op is what the link itself allocates, and
// divided by the document's size, what it adds to the worker's memory per
// vCon (hack/bench/memory measures the whole worker).
func BenchmarkLargeDocument(b *testing.B) {
	doc := sample.Large("0190d6f0-1c2d-7a00-8000-000000000001", 8<<20, true)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer hook.Close()
	for _, bc := range []struct {
		module string
		opts   map[string]any
	}{
		{"links.tag", map[string]any{"tags": []any{"benchmarked"}}},
		{"links.jq_link", map[string]any{"filter": ".dialog | length > 0"}},
		{"links.webhook", map[string]any{"webhook-urls": []any{hook.URL}}},
		{"links.diet", map[string]any{"remove_system_prompts": true}},
	} {
		b.Run(bc.module, func(b *testing.B) {
			l, err := New("bench", bc.module, bc.opts, Deps{HTTP: hook.Client()})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(doc)))
			b.ReportAllocs()
			for range b.N {
				b.StopTimer()
				v, err := vcon.Parse(doc)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if _, err := l.Run(context.Background(), v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
