package vcon

import (
	"testing"

	"github.com/vcon-operator/vcon-operator/internal/vcon/sample"
)

// BenchmarkLargeDocument measures what the worker does to every vCon,
// on one of about 8 MB shaped like a real call with its media inlined
// and its transcript an object (sample.Large, the costlier shape):
// decode, normalise, encode. B/op divided by the
// document's size is the allocation per vCon byte behind the worker's
// peak RSS, which hack/bench/memory measures on the real binary.
func BenchmarkLargeDocument(b *testing.B) {
	doc := sample.Large("0190d6f0-1c2d-7a00-8000-000000000001", 8<<20, true)
	v, err := Parse(doc)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		run  func(b *testing.B) error
	}{
		{"parse", func(*testing.B) error { _, err := Parse(doc); return err }},
		{"normalize", func(b *testing.B) error {
			b.StopTimer()
			v, _ := Parse(doc)
			b.StartTimer()
			Normalize(v)
			return nil
		}},
		{"marshal", func(*testing.B) error { _, err := v.Marshal(); return err }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(doc)))
			b.ReportAllocs()
			for range b.N {
				if err := bc.run(b); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
