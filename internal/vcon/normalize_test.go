package vcon

import (
	"reflect"
	"testing"
)

func mustParse(t testing.TB, s string) *VCon {
	t.Helper()
	v, err := Parse([]byte(s))
	if err != nil {
		t.Fatalf("Parse(%s): %v", s, err)
	}
	return v
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{
			name: "stamps the version",
			in:   `{"uuid":"u","vcon":"0.0.1"}`,
			want: `{"uuid":"u","vcon":"0.4.0"}`,
		},
		{
			name: "appended becomes amended",
			in:   `{"appended":{"uuid":"p"}}`,
			want: `{"vcon":"0.4.0","amended":{"uuid":"p"}}`,
		},
		{
			name: "appended beside amended is kept, not overwritten",
			in:   `{"appended":{"a":1},"amended":{"b":2}}`,
			want: `{"vcon":"0.4.0","appended":{"a":1},"amended":{"b":2}}`,
		},
		{
			name: "attachment type becomes purpose, mimetype becomes mediatype",
			in:   `{"attachments":[{"type":"invoice","mimetype":"application/pdf","body":"x","encoding":"base64url"}]}`,
			want: `{"vcon":"0.4.0","attachments":[{"purpose":"invoice","mediatype":"application/pdf","body":"x","encoding":"base64url"}]}`,
		},
		{
			name: "dialog and analysis type is not renamed, mimetype is",
			in:   `{"dialog":[{"type":"text","mimetype":"text/plain"}],"analysis":[{"type":"summary","mimetype":"text/plain"}]}`,
			want: `{"vcon":"0.4.0","dialog":[{"type":"text","mediatype":"text/plain"}],"analysis":[{"type":"summary","mediatype":"text/plain"}]}`,
		},
		{
			name: "object and list bodies become JSON strings",
			in:   `{"analysis":[{"type":"t","body":{"b":1.50,"a":"<x>"},"encoding":"none"}],"attachments":[{"type":"tags","body":["a:b"]}],"dialog":[{"body":"plain","encoding":"none"}]}`,
			want: `{"vcon":"0.4.0","analysis":[{"type":"t","body":"{\"a\":\"<x>\",\"b\":1.50}","encoding":"json"}],"attachments":[{"purpose":"tags","body":"[\"a:b\"]","encoding":"json"}],"dialog":[{"body":"plain","encoding":"none"}]}`,
		},
		{
			name: "empty group and redacted dropped, non-empty kept",
			in:   `{"group":[],"redacted":{},"amended":{}}`,
			want: `{"vcon":"0.4.0","amended":{}}`,
		},
		{
			name: "null redacted dropped, filled group kept",
			in:   `{"redacted":null,"group":[{"uuid":"g"}]}`,
			want: `{"vcon":"0.4.0","group":[{"uuid":"g"}]}`,
		},
		{
			name: "unknown fields and non-object entries kept",
			in:   `{"x":{"mimetype":"keep"},"dialog":[1,"two",{"x_y":[{}]}]}`,
			want: `{"vcon":"0.4.0","x":{"mimetype":"keep"},"dialog":[1,"two",{"x_y":[{}]}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := mustParse(t, tt.in)
			Normalize(v)
			want := mustParse(t, tt.want)
			if !reflect.DeepEqual(v.Doc(), want.Doc()) {
				got, _ := v.Marshal()
				t.Fatalf("Normalize:\n got: %s\nwant: %s", got, tt.want)
			}
			once, _ := v.Marshal()
			Normalize(v)
			twice, _ := v.Marshal()
			if string(once) != string(twice) {
				t.Fatalf("Normalize is not idempotent:\n once: %s\ntwice: %s", once, twice)
			}
		})
	}
}

func TestToVersion001(t *testing.T) {
	in := mustParse(t, `{"vcon":"0.4.0","uuid":"u","amended":{"uuid":"p"},
		"dialog":[{"type":"recording","mediatype":"audio/wav"}],
		"attachments":[{"purpose":"tags","mediatype":"application/json","body":"[]","encoding":"json"}],
		"analysis":[{"type":"summary","mediatype":"text/plain"}],"x":1}`)
	before, _ := in.Marshal()
	got := ToVersion001(in)
	want := mustParse(t, `{"vcon":"0.0.1","uuid":"u","appended":{"uuid":"p"},"group":[],"redacted":{},
		"dialog":[{"type":"recording","mimetype":"audio/wav"}],
		"attachments":[{"type":"tags","mimetype":"application/json","body":[],"encoding":"none"}],
		"analysis":[{"type":"summary","mimetype":"text/plain"}],"x":1}`)
	if !reflect.DeepEqual(got.Doc(), want.Doc()) {
		b, _ := got.Marshal()
		t.Fatalf("ToVersion001 = %s", b)
	}
	after, _ := in.Marshal()
	if string(before) != string(after) {
		t.Fatalf("ToVersion001 changed its input:\n%s\n%s", before, after)
	}
	Normalize(got)
	back, _ := got.Marshal()
	if string(back) != string(before) {
		t.Fatalf("Normalize(ToVersion001(v)) != v:\n%s\n%s", back, before)
	}
}

// TestLegacyNames: the renames of conserver's common/lib/vcon_compat.py
// (on read) and vcon_egress_compat.py (to the 0.0.1 shape), case by case
// from its tests. Unlike conserver, a rename never drops the spec field's
// twin: when both are present both stay (dropping either loses data).
func TestLegacyNames(t *testing.T) {
	tests := []struct {
		name, in, normalized, legacy string
	}{
		{"top-level must_support", `{"uuid":"u","must_support":["lawful_basis"]}`,
			`{"uuid":"u","critical":["lawful_basis"]}`,
			`{"uuid":"u","must_support":["lawful_basis"],"group":[],"redacted":{},"appended":null}`},
		{"analysis schema_version", `{"uuid":"u","analysis":[{"type":"summary","vendor":"openai","schema_version":"v1"}]}`,
			`{"uuid":"u","analysis":[{"type":"summary","vendor":"openai","schema":"v1"}]}`,
			`{"uuid":"u","analysis":[{"type":"summary","vendor":"openai","schema_version":"v1"}],"group":[],"redacted":{},"appended":null}`},
		{"must_support inside an attachment", `{"uuid":"u","attachments":[{"purpose":"x","must_support":true}]}`,
			`{"uuid":"u","attachments":[{"purpose":"x","critical":true}]}`,
			`{"uuid":"u","attachments":[{"type":"x","must_support":true}],"group":[],"redacted":{},"appended":null}`},
		{"lawful_basis keeps type beside purpose", `{"uuid":"u","attachments":[{"type":"lawful_basis","purpose":"lawful_basis","body":"{}","encoding":"json"}]}`,
			`{"uuid":"u","attachments":[{"type":"lawful_basis","purpose":"lawful_basis","body":"{}","encoding":"json"}]}`,
			`{"uuid":"u","attachments":[{"type":"lawful_basis","purpose":"lawful_basis","body":{},"encoding":"none"}],"group":[],"redacted":{},"appended":null}`},
		{"a JSON body inflated, a text body kept", `{"uuid":"u","analysis":[{"type":"a","body":"{\"k\":1}","encoding":"json"},{"type":"b","body":"plain","encoding":"none"}]}`,
			`{"uuid":"u","analysis":[{"type":"a","body":"{\"k\":1}","encoding":"json"},{"type":"b","body":"plain","encoding":"none"}]}`,
			`{"uuid":"u","analysis":[{"type":"a","body":{"k":1},"encoding":"none"},{"type":"b","body":"plain","encoding":"none"}],"group":[],"redacted":{},"appended":null}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := mustParse(t, tc.in)
			legacy := ToVersion001(mustParse(t, tc.in))
			Normalize(v)
			want := mustParse(t, tc.normalized)
			want.Doc()["vcon"] = CurrentVersion
			if !reflect.DeepEqual(v.Doc(), want.Doc()) {
				b, _ := v.Marshal()
				t.Errorf("Normalize = %s", b)
			}
			wantLegacy := mustParse(t, tc.legacy)
			wantLegacy.Doc()["vcon"] = Version001
			if !reflect.DeepEqual(legacy.Doc(), wantLegacy.Doc()) {
				b, _ := legacy.Marshal()
				t.Errorf("ToVersion001 = %s", b)
			}
			// Round trip, as conserver's test_vcon_egress_compat does.
			Normalize(legacy)
			if !reflect.DeepEqual(legacy.Doc(), v.Doc()) {
				a, _ := legacy.Marshal()
				b, _ := v.Marshal()
				t.Errorf("Normalize(ToVersion001(v)) = %s, want %s", a, b)
			}
		})
	}
}
