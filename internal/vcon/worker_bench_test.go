package vcon

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/vcon-operator/vcon-operator/internal/vcon/sample"
)

// BenchmarkWorkerPath is what the worker does to a vCon on a chain of
// links.tag and a Redis storage (internal/pipeline: parseBody, the link,
// the commit's encoding): parse a Redis reply, validate, tag, normalise,
// encode. "eager" decodes the whole document as Parse did before raw
// nodes, "lazy" is Parse; on the 5 KB document of hack/bench/worker and
// on a large one whose transcript body is a JSON object. B/op divided by
// the document's size is the allocation per vCon byte.
func BenchmarkWorkerPath(b *testing.B) {
	const uuid = "0190d6f0-1c2d-7a00-8000-000000000001"
	docs := []struct {
		name string
		data []byte
	}{
		{"5KB", sample.Document(uuid, 5000)},
		{"4MB-object-body", sample.Large(uuid, 4<<20, true)},
		{"4MB-text-body", sample.Large(uuid, 4<<20, false)},
		// Not the encoder's form (white space), so nothing is kept raw:
		// what laziness costs a document it cannot help.
		{"4MB-object-body-indented", indented(sample.Large(uuid, 4<<20, true))},
	}
	parsers := []struct {
		name  string
		parse func([]byte) (*VCon, error)
	}{
		{"eager", func(d []byte) (*VCon, error) { return parseEager(d, true) }},
		{"lazy", ParseReadOnly},
	}
	for _, doc := range docs {
		for _, p := range parsers {
			b.Run(doc.name+"/"+p.name, func(b *testing.B) {
				b.SetBytes(int64(len(doc.data)))
				b.ReportAllocs()
				buf := make([]byte, 0, len(doc.data)*2)
				for range b.N {
					v, err := p.parse(doc.data)
					if err != nil {
						b.Fatal(err)
					}
					if errs := Validate(v); len(errs) > 0 {
						b.Fatal(errs)
					}
					AddTag(v, "benchmarked", "benchmarked")
					Normalize(v)
					if buf, err = v.AppendMarshal(buf[:0]); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func indented(doc []byte) []byte {
	var b bytes.Buffer
	if err := json.Indent(&b, doc, "", "  "); err != nil {
		panic(err)
	}
	return b.Bytes()
}
