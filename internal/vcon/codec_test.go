package vcon

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
)

// referenceDecode is what Parse did with encoding/json before the codec: a
// Decoder with UseNumber, then nothing but whitespace.
func referenceDecode(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if rest := data[dec.InputOffset():]; len(bytes.TrimLeft(rest, " \t\r\n")) > 0 {
		return nil, errTrailing
	}
	return v, nil
}

var errTrailing = &json.SyntaxError{}

func referenceEncode(x any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(x); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// checkSameAsEncodingJSON fails when the codec and encoding/json disagree
// on data: one accepts what the other refuses, or they decode different
// values, or they encode the value to different bytes.
func checkSameAsEncodingJSON(t *testing.T, data []byte) {
	t.Helper()
	want, wantErr := referenceDecode(data)
	got, gotErr := decode(data)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("decode(%q): error %v, encoding/json: error %v", data, gotErr, wantErr)
	}
	if wantErr != nil {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decode(%q) = %#v, encoding/json: %#v", data, got, want)
	}
	wantBytes, wantErr := referenceEncode(want)
	gotBytes, gotErr := appendJSON(nil, got)
	if (wantErr == nil) != (gotErr == nil) || !bytes.Equal(gotBytes, wantBytes) {
		t.Fatalf("encode(%q) = %q (%v), encoding/json: %q (%v)", data, gotBytes, gotErr, wantBytes, wantErr)
	}
}

func TestCodecMatchesEncodingJSON(t *testing.T) {
	inputs := []string{
		`{}`, `[]`, `null`, `true`, `false`, `0`, `-0`, `1.5e+300`, `1e400`, `-1E-7`, `12345678901234567890123`,
		`""`, `"plain"`, `"tab\there"`, `"quote\" backslash\\ slash\/"`, `"\u0000\u001f\u007f"`,
		`"<html> & 'x'"`, `"caf\u00e9 café 日本"`, `"line\u2028sep\u2029"`, "\"raw\u2028sep\"",
		`"\ud800"`, `"\ud83d\ude00"`, `"\udc00\ud800x"`, "\"bad \xff utf8 \xc3\"", "\"\xed\xa0\x80\"",
		`{"b":1,"a":[1,2,{"c":null}],"":""}`, `{"a":1,"a":2}`, `{"dup":{"x":1},"dup":[1]}`,
		" \t\r\n{\"ws\" : [ 1 , 2 ] } \n",
		// Names and values from the table of common strings, written plainly,
		// escaped, or next to invalid UTF-8.
		`{"type":"recording","typ\u0065":"recordin\u0067","body":"type"}`, "{\"\xff\":\"type\",\"type\xff\":\"none\xfe\"}",
		`{"":"","uuid":"\u0000uuid"}`,
		`[[[[[[[[[[]]]]]]]]]]`, `{"a":[{},[],"",0,false,null]}`,
		// Refused by both.
		``, ` `, `{`, `}`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`, `[1 2]`, `{} {}`, `{}}`, `{}]`, `01`, `1.`, `.5`, `+1`,
		`NaN`, `Infinity`, `"unterminated`, `'single'`, `{a:1}`, `tru`, "\"ctl\x01\"", `"\x"`, `"\u12"`, `[1]x`,
	}
	for _, in := range inputs {
		checkSameAsEncodingJSON(t, []byte(in))
	}
	deep := strings.Repeat("[", 10001) + strings.Repeat("]", 10001)
	if _, err := decode([]byte(deep)); err == nil {
		t.Fatal("decode accepted 10001 levels of nesting; encoding/json refuses more than 10000")
	}
}

// TestAppendStringEveryPosition puts each character that needs care at
// every position of strings longer than the eight-byte fast path.
func TestAppendStringEveryPosition(t *testing.T) {
	specials := []string{"\x00", "\x1f", "\"", "\\", "\x7f", "\x20", "é", "\u2028", "\u2029", "\xff", "<", "&", "~", "!", "#"}
	for _, sp := range specials {
		for n := 1; n <= 26; n++ {
			for pos := 0; pos < n; pos++ {
				str := strings.Repeat("a", pos) + sp + strings.Repeat("b", n-pos-1)
				want, _ := referenceEncode(str)
				if got := appendString(nil, str); !bytes.Equal(got, want) {
					t.Fatalf("appendString(%q) = %q, encoding/json: %q", str, got, want)
				}
			}
		}
	}
}

// The vCon samples of this package's tests, one per version seen in the
// wild.
func TestCodecMatchesEncodingJSONOnSamples(t *testing.T) {
	for _, s := range samples {
		checkSameAsEncodingJSON(t, []byte(s))
	}
}

// Values links put into a document that decoding never produces.
func TestAppendJSONOtherValues(t *testing.T) {
	for _, x := range []any{
		1.0, 0.1, 1e-7, 1e21, 123456789.125, -0.0, math.SmallestNonzeroFloat64, math.MaxFloat64, float32(0.1),
		42, int64(-7), uint8(3), []string{"a", "b"}, []string{"<x>", "\u2028", "q\"", "é"}, []string(nil), []string{}, map[string]string{"z": "1", "a": "2"},
		[]map[string]any{{"k": json.Number("1")}}, struct {
			A string `json:"a"`
		}{"x"}, []any(nil), map[string]any(nil), json.Number(""), json.RawMessage(`{"r":1}`),
	} {
		want, wantErr := referenceEncode(x)
		got, gotErr := appendJSON(nil, x)
		if (wantErr == nil) != (gotErr == nil) || !bytes.Equal(got, want) {
			t.Errorf("appendJSON(%#v) = %q (%v), encoding/json: %q (%v)", x, got, gotErr, want, wantErr)
		}
	}
	for _, bad := range []any{math.NaN(), math.Inf(1), json.Number("1x"), json.Number(" 1"), map[string]any{"a": math.Inf(-1)}} {
		if _, err := appendJSON(nil, bad); err == nil {
			t.Errorf("appendJSON(%#v): no error", bad)
		}
		if _, err := referenceEncode(bad); err == nil {
			t.Errorf("encoding/json accepts %#v: the test is wrong", bad)
		}
	}
}

func FuzzCodecMatchesEncodingJSON(f *testing.F) {
	for _, s := range samples {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"a":"\ud800","b":1e400,"c":"x\u2028"}`))
	f.Add([]byte("\"\xff\xfe\""))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkSameAsEncodingJSON(t, data)
	})
}

// BenchmarkCodec compares Parse and Marshal of a 5 KB vCon with
// encoding/json doing the same.
func BenchmarkCodec(b *testing.B) {
	doc := benchDocument()
	v, _ := decode(doc)
	for _, bc := range []struct {
		name string
		run  func() (any, error)
	}{
		{"decode/codec", func() (any, error) { return decode(doc) }},
		{"decode/encoding-json", func() (any, error) { return referenceDecode(doc) }},
		{"encode/codec", func() (any, error) { return appendJSON(nil, v) }},
		{"encode/encoding-json", func() (any, error) { return referenceEncode(v) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(doc)))
			b.ReportAllocs()
			for range b.N {
				if _, err := bc.run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchDocument() []byte {
	text := strings.Repeat("so I was calling about my order, ", 130)
	doc := map[string]any{
		"vcon": "0.0.1", "uuid": "0190d6f0-1c2d-7a00-8000-000000000001", "created_at": "2024-03-05T10:00:00.000+00:00",
		"parties": []any{
			map[string]any{"tel": "+15555550100", "name": "Alice Agent", "role": "agent"},
			map[string]any{"tel": "+15555550101", "name": "Bob Customer", "role": "customer"},
		},
		"dialog": []any{map[string]any{
			"type": "recording", "start": "2024-03-05T10:00:01Z", "duration": 312.5, "parties": []any{0, 1},
			"mimetype": "audio/x-wav", "url": "https://media.example.com/rec/x.wav",
		}},
		"analysis":    []any{map[string]any{"type": "transcript", "dialog": 0, "vendor": "deepgram", "body": text}},
		"attachments": []any{map[string]any{"type": "tags", "encoding": "json", "body": []any{"a:b"}}},
	}
	b, _ := json.Marshal(doc)
	return b
}

// FuzzValidNumber: a json.Number encodes exactly when encoding/json
// accepts it.
func FuzzValidNumber(f *testing.F) {
	for _, s := range []string{"0", "-0", "1", "-12", "1.5", "1e5", "1E+5", "1e-05", "0.0", "", "-", "01", "1.", ".5", "1e", "1e+",
		"+1", " 1", "1 ", "0x10", "1.5e3.2", "--1", "1_000", "NaN", "9007199254740993", "-0.0e-0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, err := referenceEncode(json.Number(s))
		want := err == nil && s != "" // encoding/json writes "" as 0
		if got := validNumber(s); got != want {
			t.Fatalf("validNumber(%q) = %v, encoding/json accepts it: %v", s, got, want)
		}
	})
}
