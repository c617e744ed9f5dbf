package vcon

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Samples of every document version seen in the wild, kept small. Each one
// carries a field this code does not know, and numbers whose text must
// survive (1.50, big integers).
var samples = map[string]string{
	"0.0.1 legacy names": `{"vcon":"0.0.1","uuid":"0185f9a4-6f2b-8f77-a6e3-9b2c1d0e4f5a","created_at":"2023-01-20T15:30:00.123456+00:00",
		"parties":[{"tel":"+12125551234","name":"Alice"},{"mailto":"bob@example.com"}],
		"dialog":[{"type":"recording","start":"2023-01-20T15:30:00Z","duration":1.50,"parties":[0,1],"mimetype":"audio/x-wav","url":"https://example.com/a.wav"}],
		"attachments":[{"type":"tags","body":["a:b"],"encoding":"none"}],
		"appended":{"uuid":"0185f9a4-0000-8000-8000-000000000000"},
		"x_vendor":{"n":12345678901234567890}}`,
	"0.0.2": `{"vcon":"0.0.2","uuid":"0185f9a4-6f2b-8f77-a6e3-9b2c1d0e4f5b","created_at":"2023-06-01T10:00:00Z","subject":"support call",
		"parties":[{"tel":"+1 555"}],"dialog":[{"type":"text","parties":0,"body":"hi","encoding":"none","mimetype":"text/plain"}],
		"analysis":[{"type":"transcript","dialog":0,"vendor":"v","body":{"paragraphs":{"transcript":"hello"}},"encoding":"json"}],
		"redacted":{},"group":[]}`,
	"0.3.0": `{"vcon":"0.3.0","uuid":"0185F9A4-6F2B-8F77-A6E3-9B2C1D0E4F5C","created_at":"2024-01-15 10:30:00",
		"parties":[{"name":"A","validation":"none","meta":{"deep":[1,[2,[3e10]]]}}],
		"dialog":[{"type":"recording","duration":0,"parties":[[0]],"mediatype":"audio/mp3"}],
		"attachments":[{"purpose":"tags","body":"[\"x:y\"]","encoding":"json","dialog":0}]}`,
	"0.4.0": `{"vcon":"0.4.0","uuid":"0185f9a4-6f2b-8f77-a6e3-9b2c1d0e4f5d","created_at":"2025-03-01T00:00:00.5-05:00",
		"parties":[],"dialog":[],"analysis":[],"attachments":[],"amended":{"uuid":"u"},"extensions":["x"],"critical":[]}`,
	"no version, unknown nested fields": `{"uuid":"0185f9a4-6f2b-8f77-a6e3-9b2c1d0e4f5e","created_at":"2025-03-01T00:00:00Z",
		"dialog":[{"type":"text","body":"<b>&amp;</b>","x_unknown":{"a":null,"b":true,"c":-0.000100}}],"ünïcode":"✓ \u2028"}`,
}

func TestRoundTripKeepsDocument(t *testing.T) {
	for name, in := range samples {
		t.Run(name, func(t *testing.T) {
			v, err := Parse([]byte(in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			out, err := v.Marshal()
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			again, err := Parse(out)
			if err != nil {
				t.Fatalf("Parse(Marshal): %v\n%s", err, out)
			}
			if !reflect.DeepEqual(v.Doc(), again.Doc()) {
				t.Fatalf("round trip changed the document:\n in: %s\nout: %s", in, out)
			}
			if errs := Validate(v); len(errs) != 0 {
				t.Fatalf("sample should be valid, got %v", errs)
			}
		})
	}
}

func TestMarshalKeepsNumberTextAndHTML(t *testing.T) {
	tests := []struct {
		sample string
		want   []string
	}{
		{"0.0.1 legacy names", []string{`"duration":1.50`, `"n":12345678901234567890`}},
		{"0.3.0", []string{`3e10`}},
		{"no version, unknown nested fields", []string{`"c":-0.000100`, `"body":"<b>&amp;</b>"`, `"ünïcode"`}},
	}
	for _, tt := range tests {
		t.Run(tt.sample, func(t *testing.T) {
			v, err := Parse([]byte(samples[tt.sample]))
			if err != nil {
				t.Fatal(err)
			}
			out, err := v.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !bytes.Contains(out, []byte(w)) {
					t.Errorf("marshalled document lacks %s:\n%s", w, out)
				}
			}
		})
	}
}

func TestCreatedAt(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"2024-01-15T10:30:00Z", time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC), true},
		{"2024-01-15T10:30:00.123456+00:00", time.Date(2024, 1, 15, 10, 30, 0, 123456000, time.UTC), true},
		{"2024-01-15 10:30:00", time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC), true},
		{"2024-01-15T12:30:00+0200", time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC), true},
		{"2024-01-15t10:30:00z", time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC), true},
		{"2024-01-15T10:30", time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC), true},
		{"2024-01-15", time.Date(2024, 1, 15, 0, 0, 0, 0, time.UTC), true},
		{"2024-13-15T10:30:00Z", time.Time{}, false},
		{"yesterday", time.Time{}, false},
		{"", time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			v := New("u")
			v.Doc()["created_at"] = tt.in
			got, ok := CreatedAt(v)
			if ok != tt.ok || !got.Equal(tt.want) {
				t.Fatalf("CreatedAt(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
	if _, ok := CreatedAt(FromDoc(map[string]any{"created_at": 1700000000})); ok {
		t.Fatal("a number created_at should not parse")
	}
}

// TestAppendMarshalGrowsOnce: a small buffer is grown to the document's
// size once, not by append's doubling as the encoding proceeds.
func TestAppendMarshalGrowsOnce(t *testing.T) {
	item := `"` + strings.Repeat("x", 500) + `"`
	v, err := Parse([]byte(`{"uuid":"u","body":[` + strings.Repeat(item+",", 2000) + item + `]}`))
	if err != nil {
		t.Fatal(err)
	}
	small := make([]byte, 0, 8<<10)
	allocs := testing.AllocsPerRun(5, func() {
		if _, err := v.AppendMarshal(small[:0]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("AppendMarshal allocated %.0f times, want once", allocs)
	}
}

// TestParseReadOnlyShares: the long strings of a document read by
// ParseReadOnly are the input's bytes (what saves a copy of a large
// vCon); short ones, escaped ones and Parse's are copies.
func TestParseReadOnlyShares(t *testing.T) {
	long := strings.Repeat("A", 100)
	data := []byte(`{"uuid":"u","long":"` + long + `","short":"abc","escaped":"` + long + `\n"}`)
	shared, err := ParseReadOnly(data)
	if err != nil {
		t.Fatal(err)
	}
	copied, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	for i := range data {
		if data[i] == 'A' || data[i] == 'a' {
			data[i]++ // what a caller must never do to a ParseReadOnly input
		}
	}
	for _, tc := range []struct {
		v         *VCon
		key, want string
	}{
		{shared, "long", strings.Repeat("B", 100)},
		{shared, "short", "abc"},
		{shared, "escaped", long + "\n"},
		{copied, "long", long},
	} {
		if got := tc.v.String(tc.key); got != tc.want {
			t.Errorf("%s = %q, want %q", tc.key, got, tc.want)
		}
	}
}
