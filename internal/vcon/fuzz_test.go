package vcon

import (
	"bytes"
	"testing"
)

func FuzzParseValidate(f *testing.F) {
	for _, s := range samples {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"dialog":[{"parties":[[0,[1]]],"duration":-0,"body":{"a":[{}]}}],"attachments":[{"type":"tags","body":"[1,\"a:b\"]"}]}`))
	f.Add([]byte(`{"uuid":"x","created_at":"2024-01-15 10:30:00.1234567890123+05:30","group":{},"appended":[]}`))
	f.Add([]byte(`{"a":"\ud800","b":1e400}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Parse(data)
		if err != nil {
			return
		}
		_ = Validate(v)
		_, _ = CreatedAt(v)
		_ = Tags(v)
		_ = FindAnalysis(v, 0, "transcript")

		// Marshal may repair input (invalid UTF-8), so stability is
		// checked from the first marshalled form on.
		first := mustMarshal(t, v)
		// ParseReadOnly reads the same document as Parse.
		shared, err := ParseReadOnly(data)
		if err != nil {
			t.Fatalf("ParseReadOnly fails where Parse did not: %v", err)
		}
		if b := mustMarshal(t, shared); !bytes.Equal(b, first) {
			t.Fatalf("ParseReadOnly differs from Parse:\n%s\n%s", b, first)
		}
		if n := encodedLen(v.tree()); n != len(first) {
			t.Fatalf("encodedLen = %d, encoding is %d bytes: %s", n, len(first), first)
		}
		again, err := Parse(first)
		if err != nil {
			t.Fatalf("Parse(Marshal(v)): %v\n%s", err, first)
		}
		if second := mustMarshal(t, again); !bytes.Equal(first, second) {
			t.Fatalf("round trip unstable:\n%s\n%s", first, second)
		}

		// Normalized reads as Normalize on a deep copy and leaves its
		// input as it was.
		base := mustMarshal(t, again)
		view := mustMarshal(t, Normalized(again))
		if after := mustMarshal(t, again); !bytes.Equal(after, base) {
			t.Fatalf("Normalized changed its input:\n%s\n%s", base, after)
		}
		deep := again.Clone()
		Normalize(deep)
		if want := mustMarshal(t, deep); !bytes.Equal(view, want) {
			t.Fatalf("Normalized differs from Normalize on a copy:\n%s\n%s", view, want)
		}

		old := ToVersion001(again)
		Normalize(again)
		n1 := mustMarshal(t, again)
		Normalize(again)
		if n2 := mustMarshal(t, again); !bytes.Equal(n1, n2) {
			t.Fatalf("Normalize not idempotent:\n%s\n%s", n1, n2)
		}
		AddTag(old, "k", "v")
		if val, ok := Tag(old, "k"); !ok || val != "v" {
			// A document may already hold an earlier "k" tag.
			found := false
			for _, tg := range Tags(old) {
				found = found || tg == "k:v"
			}
			if !found {
				t.Fatalf("AddTag did not add k:v: %q", Tags(old))
			}
		}
		_ = mustMarshal(t, old)
	})
}

func mustMarshal(t *testing.T, v *VCon) []byte {
	t.Helper()
	b, err := v.Marshal()
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	return b
}
