package sample

import (
	"testing"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

func TestDocumentIsAValidVConOfTheSize(t *testing.T) {
	for _, size := range []int{700, 5000, 50000} {
		b := Document("0190d6f0-1c2d-7a00-8000-000000000001", size)
		tolerance := max(100, size/50) // the text grows by whole sentences
		if d := len(b) - size; d < -tolerance || d > tolerance {
			t.Errorf("Document(%d) is %d bytes", size, len(b))
		}
		v, errs, err := vcon.ParseAndValidate(b)
		if err != nil || len(errs) > 0 {
			t.Fatalf("Document(%d): %v %v", size, err, errs)
		}
		if v.UUID() != "0190d6f0-1c2d-7a00-8000-000000000001" {
			t.Errorf("uuid %q", v.UUID())
		}
	}
}

func TestLargeIsAValidVConOfTheSize(t *testing.T) {
	const size = 4 << 20
	for _, objectBodies := range []bool{false, true} {
		b := Large("0190d6f0-1c2d-7a00-8000-000000000001", size, objectBodies)
		if d := len(b) - size; d < -size/10 || d > size/10 {
			t.Errorf("Large(%d, %v) is %d bytes", size, objectBodies, len(b))
		}
		v, errs, err := vcon.ParseAndValidate(b)
		if err != nil || len(errs) > 0 {
			t.Fatalf("Large(%d, %v): %v %v", size, objectBodies, err, errs)
		}
		if tag, _ := vcon.Tag(v, "urgent"); tag != "yes" {
			t.Errorf("tag urgent = %q, want yes", tag)
		}
		_, isText := vcon.FindAnalysis(v, 0, "transcript")["body"].(string)
		if isText == objectBodies {
			t.Errorf("Large(%d, %v): transcript body is text: %v", size, objectBodies, isText)
		}
	}
}
