package vcon

import (
	"bytes"
	"math/bits"
	"reflect"
	"strings"
	"testing"

	"github.com/vcon-operator/vcon-operator/internal/vcon/sample"
)

// checkFastMatchesTokens: whatever fastDecode accepts, the jsontext
// decoder accepts too and decodes to the same value, with the same raw
// nodes, for every policy and sharing. What it declines is not checked
// here (jsontext reads it); TestFastDecodeTakesDocuments checks it
// declines little.
func checkFastMatchesTokens(t *testing.T, data []byte) {
	t.Helper()
	for _, policy := range []lazyPolicy{eager, topLevel} {
		for _, shared := range []bool{false, true} {
			input := bytes.Clone(data)
			got, gotRaws, ok := fastDecode(input, shared, policy)
			want, wantRaws, err := decodeTokens(bytes.Clone(data), false, policy)
			if !ok {
				continue
			}
			if err != nil {
				t.Fatalf("policy %d shared %v: fastDecode accepts what jsontext refuses (%v): %q", policy, shared, err, data)
			}
			if !shared {
				// Nothing decoded without sharing may alias the input.
				for i := range input {
					input[i] = '#'
				}
			}
			// The jsontext decoder keeps no rawArray: the fast
			// decoder's, decoded, are what it decodes.
			got, gotRaws = expandRawArrays(t, got, gotRaws)
			if !reflect.DeepEqual(got, want) || gotRaws != wantRaws {
				t.Fatalf("policy %d shared %v: fastDecode gives %#v (%d raw), jsontext %#v (%d raw), for %q", policy, shared, got, gotRaws, want, wantRaws, data)
			}
		}
	}
}

// expandRawArrays is x, a decoded document, with each rawArray of its
// top level replaced by its entries, and raws counted as they are then:
// a rawArray is one raw node, its entries hold as many as they do. It
// checks that each rawArray's bytes are what the encoder writes for it.
func expandRawArrays(t *testing.T, x any, raws int) (any, int) {
	t.Helper()
	doc, ok := x.(map[string]any)
	if !ok {
		return x, raws
	}
	out := map[string]any{}
	for k, e := range doc {
		a, isRaw := e.(*rawArray)
		if !isRaw {
			out[k] = e
			continue
		}
		policy, _ := topLevel.child(k)
		entries, n, err := decodeWith(a.text, true, policy)
		if err != nil {
			t.Fatalf("the raw array %s does not decode: %v", k, err)
		}
		if b, err := appendJSON(nil, decodeRaw(a.text)); err != nil || !bytes.Equal(b, a.text) {
			t.Fatalf("the raw array %s encodes as %q, not as its bytes %q (%v)", k, b, a.text, err)
		}
		if items, _ := entries.([]any); len(items) != a.items {
			t.Fatalf("the raw array %s has %d entries, noted %d", k, len(items), a.items)
		}
		out[k], raws = entries, raws-1+n
	}
	return out, raws
}

func FuzzFastDecodeMatchesTokens(f *testing.F) {
	for _, in := range lazyInputs() {
		f.Add([]byte(in))
	}
	for _, s := range wrapped(fastDecodeCases) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkFastMatchesTokens(t, data) })
}

// fastDecodeCases are the edges of JSON's grammar the fast decoder must
// refuse or read exactly as jsontext.
var fastDecodeCases = []string{
	`{}`, `[]`, ` {} `, "\t{\n}\r", `{"a":1,}`, `[1,]`, `[,1]`, `{,}`, `{"a" 1}`, `{"a":}`, `{"a":1 "b":2}`, `{1:2}`,
	`[01]`, `[-]`, `[1.]`, `[.5]`, `[1e]`, `[1e+]`, `[-0.0e-0]`, `[1E5]`, `[+1]`, `[0x1]`, `[1_0]`, `[9007199254740993]`,
	`[tru]`, `[truex]`, `[nul]`, `[null,true,false]`, `[True]`, `{}{}`, `{} x`, `{}]`, `"x"`, `12`, ``, ` `,
	`["\u00e9"]`, `["\u00E9"]`, `["\ud83d\ude00"]`, `["\ud800"]`, `["\udc00x"]`, `["\u12"]`, `["\u12g4"]`, `["\x"]`, `["\/"]`,
	"[\"\x01\"]", "[\"\x7f\"]", "[\"\xff\"]", "[\"\xe2\x80\xa8\"]", `["\"\\\b\f\n\r\t"]`, `["unterminated]`, `["\`,
	`{"a":1,"a":2}`, `{"b":1,"a":2}`, `{"a\u0062":1}`, `{"":1}`,
	strings.Repeat("[", 64) + strings.Repeat("]", 64), strings.Repeat("[", 65) + strings.Repeat("]", 65),
	strings.Repeat("[", 600) + strings.Repeat("]", 600),
	`{"attachments":[{"body":"` + strings.Repeat("x", 70) + `"},{"body":"` + strings.Repeat("y", 70) + `\u0001"}]}`,
	`{"dialog":[{"body":"` + strings.Repeat("é", 40) + `","parties":[0]}],"x":{"a":[1, 2]}}`,
	`{"dialog":[{"body":"` + strings.Repeat("z", 70) + "\xff" + `"}]}`,
	`{"x":{"a":"\ud800"}}`, `{"x":{"a":"` + "\xff" + `"}}`, `{"x":{"a":1}  }`, `{"x":{"b":{},"a":[]}}`,
}

func TestFastDecodeMatchesTokens(t *testing.T) {
	for _, in := range append(lazyInputs(), wrapped(fastDecodeCases)...) {
		checkFastMatchesTokens(t, []byte(in))
	}
}

// wrapped is each case alone and in the places where a value may be kept
// raw (a member of the document, a dialog entry's body), alone there so
// that nothing else in the document sends it to jsontext.
func wrapped(cases []string) []string {
	var out []string
	for _, c := range cases {
		out = append(out, c, `{"x":`+c+`}`, `{"x":[`+c+`]}`, `{"dialog":[{"body":`+c+`,"parties":[0]}]}`, `{"analysis":[{"body":`+c+`}]}`)
	}
	return out
}

// TestFastDecodeTakesDocuments: the fast path reads the documents the
// worker sees (the benchmark's, the large ones, producers' white space,
// non-ASCII text), rather than silently leaving them all to jsontext; and
// declines the inputs only jsontext can word an error for or decode.
func TestFastDecodeTakesDocuments(t *testing.T) {
	const uuid = "0190d6f0-1c2d-7a00-8000-000000000001"
	for _, tc := range []struct {
		name string
		data []byte
		fast bool
	}{
		{"the bench's 5 KB vCon", sample.Document(uuid, 5000), true},
		{"4 MB, object bodies", sample.Large(uuid, 1<<20, true), true},
		{"4 MB, text bodies", sample.Large(uuid, 1<<20, false), true},
		{"indented", indented(sample.Document(uuid, 5000)), true},
		{"non-ASCII and escapes", []byte(`{"uuid":"` + uuid + `","subject":"Grüße \"x\"\n\u00e9"}`), true},
		{"a syntax error", []byte(`{"uuid":"` + uuid + `",}`), false},
		{"invalid UTF-8", []byte(`{"subject":"` + "\xff" + `"}`), false},
		{"a lone surrogate", []byte(`{"subject":"\ud800"}`), false},
		{"too deep", []byte(`{"x":` + strings.Repeat("[", maxFastDepth) + strings.Repeat("]", maxFastDepth) + `}`), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, policy := range []lazyPolicy{eager, topLevel} {
				if _, _, ok := fastDecode(tc.data, true, policy); ok != tc.fast {
					t.Fatalf("policy %d: fast path %v, want %v", policy, ok, tc.fast)
				}
			}
			checkFastMatchesTokens(t, tc.data)
		})
	}
}

// TestCommonEntryOf: the shape table finds every string of common,
// boxed as itself, and nothing else.
func TestCommonEntryOf(t *testing.T) {
	for s := range common {
		if e := commonEntryOf([]byte(s)); e == nil || e.s != s || e.boxed != any(s) {
			t.Errorf("commonEntryOf(%q) = %+v", s, e)
		}
	}
	for _, s := range []string{"", "x", "typ", "types", "Type", "é", "\xff", strings.Repeat("a", maxCommon+1), "recordin", "recordinh"} {
		if e := commonEntryOf([]byte(s)); e != nil {
			t.Errorf("commonEntryOf(%q) = %q, want none", s, e.s)
		}
	}
}

// TestPlainWord: the eight-byte test agrees with the byte-by-byte one for
// every byte value in every position, and for every pair of byte classes
// in every pair of positions (a borrow from one byte into the next).
func TestPlainWord(t *testing.T) {
	plainByte := func(c byte) bool { return c >= 0x20 && c < 0x80 && c != '"' && c != '\\' }
	word := func(w []byte) uint64 {
		x := uint64(0)
		for i := 7; i >= 0; i-- {
			x = x<<8 | uint64(w[i])
		}
		return x
	}
	for pos := range 8 {
		for c := range 256 {
			w := []byte("abcdefgh")
			w[pos] = byte(c)
			if got, want := plainWord(word(w)), plainByte(byte(c)); got != want {
				t.Fatalf("byte %#x at %d: plainWord %v, want %v", c, pos, got, want)
			}
		}
	}
	edges := []byte{0x00, 0x01, 0x1f, 0x20, 0x21, '"', 0x23, 0x5b, '\\', 0x5d, 0x7e, 0x7f, 0x80, 0x81, 0x9f, 0xa0, 0xa2, 0xdc, 0xfe, 0xff}
	for p1 := range 8 {
		for p2 := range 8 {
			for _, c1 := range edges {
				for _, c2 := range edges {
					w := []byte("abcdefgh")
					w[p1], w[p2] = c1, c2
					want := true
					for _, c := range w {
						want = want && plainByte(c)
					}
					if got := plainWord(word(w)); got != want {
						t.Fatalf("%q: plainWord %v, want %v", w, got, want)
					}
					// scanString reads on from the lowest bit set:
					// it is the first byte that is not plain.
					if m := plainBits(word(w)) & hi; m != 0 {
						first := bits.TrailingZeros64(m) >> 3
						ok := !plainByte(w[first])
						for _, c := range w[:first] {
							ok = ok && plainByte(c)
						}
						if !ok {
							t.Fatalf("%q: plainBits points at byte %d", w, first)
						}
					}
				}
			}
		}
	}
}

// TestScanStringFindsEveryByte: the 32-byte and 8-byte steps of
// scanString stop at a byte that is not plain wherever it is in them.
func TestScanStringFindsEveryByte(t *testing.T) {
	const n = 70
	for pos := range n {
		for c := range 256 {
			b := []byte(`"` + strings.Repeat("a", n) + `"`)
			b[1+pos] = byte(c)
			end, flags, ok := scanString(b, 1)
			switch {
			case c == '"':
				if !ok || end != 1+pos || flags != 0 {
					t.Fatalf("quote at %d: end %d flags %d ok %v", pos, end, flags, ok)
				}
			case c < 0x20 || c == '\\':
				if ok {
					t.Fatalf("byte %#x at %d accepted", c, pos)
				}
			case c >= 0x80:
				if !ok || end != n+1 || flags&strInvalidUTF8 == 0 {
					t.Fatalf("byte %#x at %d: end %d flags %d ok %v", c, pos, end, flags, ok)
				}
			default:
				if !ok || end != n+1 || flags != 0 {
					t.Fatalf("byte %#x at %d: end %d flags %d ok %v", c, pos, end, flags, ok)
				}
			}
		}
	}
}
