package vcon

import (
	"strings"
	"testing"
)

const jwsDoc = `{
  "payload": "eyJ1dWlkIjoiMSJ9",
  "signatures": [ { "protected": "eyJhbGciOiJFUzI1NiJ9", "header": {"kid": "k", "uuid": "019f15a6-a752-826f-b9a2-279e0d16bc46"}, "signature": "c2ln" } ]
}
`

const jweDoc = `{"protected":"eyJlbmMiOiJBMjU2Q0JDLUhTNTEyIn0","unprotected":{"cty":"application/vcon","uuid":"019f15a6-a752-826f-b9a2-279e0d16bc46"},"recipients":[{"encrypted_key":"a2V5"}],"iv":"aXY","ciphertext":"Y3Q","tag":"dGFn"}`

func TestForms(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		form Form
		uuid string
		err  string // of CheckSecured
	}{
		{"unsigned", `{"uuid":"019f15a6-a752-826f-b9a2-279e0d16bc46","parties":[]}`, Unsigned, "019f15a6-a752-826f-b9a2-279e0d16bc46", ""},
		{"signed", jwsDoc, Signed, "019f15a6-a752-826f-b9a2-279e0d16bc46", ""},
		{"encrypted", jweDoc, Encrypted, "019f15a6-a752-826f-b9a2-279e0d16bc46", ""},
		{"payload alone is unsigned", `{"payload":"x","uuid":"019f15a6-a752-826f-b9a2-279e0d16bc46"}`, Unsigned, "019f15a6-a752-826f-b9a2-279e0d16bc46", ""},
		{"signed without uuid header", `{"payload":"eA","signatures":[{"protected":"eA","signature":"eA","header":{"kid":"k"}}]}`, Signed, "", "signatures[0].header.uuid"},
		{"signatures disagree on the uuid", `{"payload":"eA","signatures":[{"protected":"eA","signature":"eA","header":{"uuid":"019f15a6-a752-826f-b9a2-279e0d16bc46"}},{"protected":"eA","signature":"eA","header":{"uuid":"00000000-0000-4000-8000-000000000000"}}]}`, Signed, "", "differ"},
		{"signed, no header", `{"payload":"eA","signatures":[{"protected":"eA","signature":"eA"}]}`, Signed, "", "signatures[0].header"},
		{"signed, empty signatures", `{"payload":"eA","signatures":[]}`, Signed, "", "signatures: want a non-empty list"},
		{"encrypted without uuid", `{"recipients":[{}],"ciphertext":"eA","iv":"eA","tag":"eA"}`, Encrypted, "", "unprotected.uuid"},
		{"encrypted without tag", `{"recipients":[{}],"ciphertext":"eA","iv":"eA","unprotected":{"uuid":"019f15a6-a752-826f-b9a2-279e0d16bc46"}}`, Encrypted, "019f15a6-a752-826f-b9a2-279e0d16bc46", "tag: want"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, parse := range []func([]byte) (*VCon, error){Parse, ParseReadOnly} {
				v, err := parse([]byte(c.doc))
				if err != nil {
					t.Fatal(err)
				}
				if v.Form() != c.form || v.UUID() != c.uuid || v.Secured() != (c.form != Unsigned) {
					t.Fatalf("form %v uuid %q, want %v %q", v.Form(), v.UUID(), c.form, c.uuid)
				}
				err = CheckSecured(v)
				if (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
					t.Fatalf("CheckSecured = %v, want %q", err, c.err)
				}
			}
		})
	}
}

// A signed or encrypted document is written back as the bytes it came as,
// through every rewrite the module has: its signer's, not ours.
func TestSecuredFormsAreNotRewritten(t *testing.T) {
	for _, doc := range []string{jwsDoc, jweDoc} {
		v, err := Parse([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		Normalize(v)
		for name, w := range map[string]*VCon{"doc": v, "Normalized": Normalized(v), "ToVersion001": ToVersion001(v), "ConserverView": ConserverView(v), "Clone": v.Clone()} {
			b, err := w.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != doc {
				t.Errorf("%s rewrote the %v document:\n%s", name, v.Form(), b)
			}
		}
		if _, stamped := v.Doc()["vcon"]; stamped {
			t.Error("Normalize stamped a version on a secured document")
		}
	}
}
