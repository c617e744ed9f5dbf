package vcon

import (
	"reflect"
	"testing"
)

// TestConserverView: the document a conserver link reads of a vCon its API
// stored (the Vcon model's dump), once its worker has written it.
func TestConserverView(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{
			name: "declared fields a producer left out are null",
			in:   `{"uuid":"u","vcon":"0.4.0","parties":[{"name":"A"},{"tel":"+15551230000"}],"dialog":[{"type":"text","body":"hi","encoding":"none"}]}`,
			want: `{"uuid":"u","vcon":"0.4.0","subject":null,"amended":null,
				"parties":[{"name":"A","tel":null},{"tel":"+15551230000"}],
				"dialog":[{"type":"text","body":"hi","encoding":"none","duration":null,"start":null,"parties":null,"url":null,"mediatype":null,"alg":null}]}`,
		},
		{
			name: "values given are kept, mimetype read as mediatype",
			in: `{"uuid":"u","vcon":"0.0.1","subject":"s","appended":{"uuid":"p"},
				"dialog":[{"duration":60,"start":"2024-01-01T00:00:00Z","parties":[0],"url":"https://x/a.wav","mimetype":"audio/wav","alg":"SHA-512"}]}`,
			want: `{"uuid":"u","vcon":"0.4.0","subject":"s","amended":{"uuid":"p"},
				"dialog":[{"duration":60,"start":"2024-01-01T00:00:00Z","parties":[0],"url":"https://x/a.wav","mediatype":"audio/wav","alg":"SHA-512"}]}`,
		},
		{
			name: "a legacy mimetype beside mediatype is not doubled by a null",
			in:   `{"dialog":[{"mimetype":"audio/wav","mediatype":"audio/x-wav","duration":1,"start":"t","parties":[],"url":"u://x","alg":"a"}]}`,
			want: `{"vcon":"0.4.0","subject":null,"amended":null,"dialog":[{"mimetype":"audio/wav","mediatype":"audio/x-wav","duration":1,"start":"t","parties":[],"url":"u://x","alg":"a"}]}`,
		},
		{
			name: "created_at as Python's isoformat",
			in:   `{"created_at":"2024-03-01T10:20:30.500Z"}`,
			want: `{"vcon":"0.4.0","subject":null,"amended":null,"created_at":"2024-03-01T10:20:30.500000+00:00"}`,
		},
		{
			name: "a Unix-time created_at too",
			in:   `{"created_at":1700000000}`,
			want: `{"vcon":"0.4.0","subject":null,"amended":null,"created_at":"2023-11-14T22:13:20+00:00"}`,
		},
		{
			name: "an unreadable created_at is left as written",
			in:   `{"created_at":"last tuesday"}`,
			want: `{"vcon":"0.4.0","subject":null,"amended":null,"created_at":"last tuesday"}`,
		},
		{
			name: "written shape: bodies as JSON text, empty group and redacted dropped",
			in:   `{"group":[],"redacted":{},"analysis":[{"type":"t","body":{"a":1}}]}`,
			want: `{"vcon":"0.4.0","subject":null,"amended":null,"analysis":[{"type":"t","body":"{\"a\":1}","encoding":"json"}]}`,
		},
		{
			name: "entries that are not objects stay as they are",
			in:   `{"parties":["p"],"dialog":[3]}`,
			want: `{"vcon":"0.4.0","subject":null,"amended":null,"parties":["p"],"dialog":[3]}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := mustParse(t, tc.in)
			before, _ := v.Marshal()
			got := ConserverView(v)
			if want := mustParse(t, tc.want); !reflect.DeepEqual(got.Doc(), want.Doc()) {
				b, _ := got.Marshal()
				t.Fatalf("ConserverView:\n got: %s\nwant: %s", b, want.Doc())
			}
			if after, _ := v.Marshal(); string(after) != string(before) {
				t.Fatalf("ConserverView changed its input:\n%s\n%s", before, after)
			}
		})
	}
}
