package vcon

import (
	"fmt"
	"strings"
	"testing"
)

// rawArrayCase is a document in the encoder's form with one entry of
// one array set, and whether Parse may keep that array as a rawArray:
// only when the entry is valid and normal but for legacy names.
type rawArrayCase struct {
	name  string
	array string // Parties, Dialog, Analysis or Attachments
	entry string // the array's only entry, or its items with "items:"
	raw   bool
}

// doc is the case's document: valid and normal but for its entry, its
// members in sorted order, no white space.
func (c rawArrayCase) doc() string {
	arrays := map[string]string{
		Analysis:    `[{"body":"s","dialog":0,"encoding":"none","type":"summary"}]`,
		Attachments: `[{"body":"[\"a:b\"]","encoding":"json","purpose":"tags"}]`,
		Dialog:      `[{"duration":1.5,"mediatype":"audio/x-wav","parties":[0,1],"type":"recording"}]`,
		Parties:     `[{"name":"A"},{"tel":"+15555550100"}]`,
	}
	if items, ok := strings.CutPrefix(c.entry, "items:"); ok {
		arrays[c.array] = items
	} else {
		arrays[c.array] = "[" + c.entry + "]"
	}
	return `{"analysis":` + arrays[Analysis] + `,"attachments":` + arrays[Attachments] +
		`,"created_at":"2024-03-05T10:00:00Z","dialog":` + arrays[Dialog] + `,"parties":` + arrays[Parties] +
		`,"uuid":"0185f9a4-6f2b-8f77-a6e3-9b2c1d0e4f5a","vcon":"0.4.0"}`
}

var rawArrayCases = []rawArrayCase{
	{"valid and normal", Dialog, `{"duration":1.5,"mediatype":"audio/x-wav","parties":[0,1],"type":"recording"}`, true},
	{"an empty entry", Dialog, `{}`, true},
	{"no entries", Dialog, `items:[]`, true},
	{"two entries", Dialog, `items:[{"parties":0},{"parties":[1]}]`, true},
	// Legacy names: renamed in the bytes, where the current name is absent.
	{"mimetype", Dialog, `{"duration":1.5,"mimetype":"audio/x-wav","parties":[0,1],"type":"recording","url":"https://x"}`, true},
	{"mimetype and mediatype", Dialog, `{"mediatype":"a/b","mimetype":"c/d"}`, true},
	{"schema_version, must_support", Analysis, `{"body":"x","must_support":["x"],"schema_version":"1","type":"t"}`, true},
	{"schema_version and schema", Analysis, `{"schema":"2","schema_version":"1"}`, true},
	{"attachment type", Attachments, `{"body":"[\"a:b\"]","encoding":"json","type":"tags"}`, true},
	{"attachment type and purpose", Attachments, `{"purpose":"p","type":"t"}`, true},
	// AddTag appends to raw attachments without a tags attachment.
	{"attachments without tags", Attachments, `items:[{"body":"n","purpose":"note"},{"type":"note"}]`, true},
	{"no attachments", Attachments, `items:[]`, true},
	{"tags as the legacy type", Attachments, `{"body":"[\"a:b\"]","encoding":"json","type":"tags"}`, true},
	{"purpose not a string, type tags", Attachments, `{"body":"[\"a:b\"]","purpose":1,"type":"tags"}`, true},
	{"purpose tags, type not", Attachments, `{"body":"[\"x:y\"]","purpose":"tags","type":"note"}`, true},
	{"purpose a list", Attachments, `{"purpose":["tags"]}`, true},
	{"purpose tagsx", Attachments, `{"purpose":"tagsx"}`, true},
	{"dialog type is no legacy name", Dialog, `{"type":"text"}`, true},
	{"every rename at once", Attachments, `{"mimetype":"a/b","must_support":[],"schema_version":"1","type":"t","x":1}`, true},
	// What Validate reads in a dialog entry, each rule broken alone.
	{"party index out of range", Dialog, `{"parties":[0,2]}`, true}, // kept; Validate decodes it
	{"party index -0", Dialog, `{"parties":[-0]}`, true},
	{"party index negative", Dialog, `{"parties":[0,-1]}`, false},
	{"party index fractional", Dialog, `{"parties":[1.0]}`, false},
	{"party index exponent", Dialog, `{"parties":[1e0]}`, false},
	{"party index too big", Dialog, `{"parties":[99999999999999999999]}`, false},
	{"party index a string", Dialog, `{"parties":["0"]}`, false},
	{"party index true", Dialog, `{"parties":[true]}`, false},
	{"parties a number", Dialog, `{"parties":1}`, true},
	{"parties null", Dialog, `{"parties":null}`, true},
	{"parties an object", Dialog, `{"parties":{"a":0}}`, false},
	{"parties shared channel", Dialog, `{"parties":[[0,1],1,[]]}`, true},
	{"parties nested too deep", Dialog, `{"parties":[[0,[1]]]}`, false},
	{"parties null in a list", Dialog, `{"parties":[0,null]}`, false},
	{"duration negative", Dialog, `{"duration":-1}`, false},
	{"duration -0", Dialog, `{"duration":-0}`, true},
	{"duration out of range", Dialog, `{"duration":1e400}`, false},
	{"duration underflows", Dialog, `{"duration":1e-400}`, true},
	{"duration a string", Dialog, `{"duration":"5"}`, false},
	{"duration null", Dialog, `{"duration":null}`, true},
	{"duration big", Dialog, `{"duration":123456789012345678901234567890}`, true},
	{"analysis parties not read", Analysis, `{"duration":-1,"parties":"x"}`, true},
	{"not an object", Dialog, `items:[{},1]`, false},
	{"null entry", Analysis, `items:[null]`, false},
	{"party not an object", Parties, `items:[{"name":"A"},"B"]`, false},
	{"no parties", Parties, `items:[]`, true},
	// What Normalize changes besides names.
	{"object body", Analysis, `{"body":{"a":1},"encoding":"json"}`, false},
	{"array body", Attachments, `{"body":["a:b"],"purpose":"tags"}`, false},
	{"object body in the dialog", Dialog, `{"body":{}}`, false},
	{"string body with escapes", Analysis, `{"body":"a\"\\\n\u0001\u2028é","encoding":"none"}`, true},
	{"null body", Analysis, `{"body":null}`, true},
	{"number body", Attachments, `{"body":12.5e3}`, true},
	// Not the encoder's form, at the top of an entry or deep in it.
	{"names out of order", Dialog, `{"type":"x","duration":1}`, false},
	{"duplicate names", Dialog, `{"parties":[0],"parties":[9]}`, false},
	{"duplicate party names", Parties, `items:[{"a":1,"a":2}]`, false},
	{"white space", Dialog, `{"duration": 1}`, false},
	{"white space between entries", Dialog, `items:[{}, {}]`, false},
	{"an escaped name", Dialog, `{"typ\u0065":"x"}`, false},
	{"an escaped legacy name", Dialog, `{"mim\u0065type":"a/b"}`, false},
	{"a non-canonical escape deep down", Analysis, `{"meta":{"x":[{"y":"\/"}]}}`, false},
	{"upper-case hex deep down", Parties, `items:[{"meta":{"x":"\u00E9"}}]`, false},
	{"invalid UTF-8 deep down", Analysis, `{"meta":{"x":["` + "\xff" + `"]}}`, false},
	{"a lone surrogate", Attachments, `{"meta":"\ud800"}`, false},
	{"deep and canonical", Analysis, `{"meta":` + strings.Repeat(`[`, 60) + strings.Repeat(`]`, 60) + `}`, true},
	{"big numbers deep down", Analysis, `{"meta":{"n":12345678901234567890123,"x":-1.5e-300}}`, true},
	{"a long body", Analysis, `{"body":"` + strings.Repeat("so I was calling about my order, ", 40) + `"}`, true},
	{"a long body, then an object body", Analysis, `items:[{"body":"` + strings.Repeat("a", 600) + `"},{"body":{"k":"` + strings.Repeat("b", 600) + `"}}]`, false},
	{"a long party, then a bad one", Parties, `items:[{"name":"` + strings.Repeat("a", 600) + `"},{"b":1,"a":2}]`, false},
}

// TestRawArrayDecision: Parse keeps an array raw exactly where the case
// says, and whatever it keeps, the document reads, validates, normalises
// and encodes as the one decoded all through.
func TestRawArrayDecision(t *testing.T) {
	for _, c := range rawArrayCases {
		t.Run(c.name, func(t *testing.T) {
			data := []byte(c.doc())
			v, err := ParseReadOnly(data)
			if err != nil {
				t.Fatal(err)
			}
			if _, raw := v.tree()[c.array].(*rawArray); raw != c.raw {
				t.Fatalf("%s raw: %v, want %v", c.array, raw, c.raw)
			}
			// What only jsontext decodes (invalid UTF-8, a lone
			// surrogate) it decodes as before: no array is raw.
			_, _, fast := fastDecode(data, true, topLevel)
			for _, key := range []string{Parties, Dialog, Analysis, Attachments} {
				if _, raw := v.tree()[key].(*rawArray); fast && key != c.array && !raw {
					t.Fatalf("%s, valid and normal, was decoded", key)
				}
			}
			checkLazyMatchesEager(t, data)
		})
	}
}

// TestAddTagAppendsToRawAttachments: links.tag on a document whose
// attachments hold no tags attachment writes one into their bytes; the
// tags read back, and the array decodes to what AddTag makes decoded.
func TestAddTagAppendsToRawAttachments(t *testing.T) {
	for _, atts := range []string{`[]`, `[{"body":"n","purpose":"note"}]`} {
		doc := []byte(`{"attachments":` + atts + `,"uuid":"0185f9a4-6f2b-8f77-a6e3-9b2c1d0e4f5a"}`)
		v, _ := ParseReadOnly(doc)
		AddTag(v, "k", "v")
		if _, raw := v.tree()[Attachments].(*rawArray); !raw {
			t.Fatalf("%s: the attachments were decoded", atts)
		}
		AddTag(v, "k", "v") // present: not added again
		AddTag(v, "a", "b") // to the attachment the first made
		eager, _ := parseEager(doc, false)
		AddTag(eager, "k", "v")
		AddTag(eager, "k", "v")
		AddTag(eager, "a", "b")
		if got, want := fmt.Sprint(Tags(v)), fmt.Sprint(Tags(eager)); got != want || got != "[k:v a:b]" {
			t.Fatalf("%s: tags %s, want %s", atts, got, want)
		}
		if got, want := mustMarshal(t, v), mustMarshal(t, eager); string(got) != string(want) {
			t.Fatalf("%s: encoded\n%s\nwant\n%s", atts, got, want)
		}
	}
}

// TestRawDialogPartyIndices: a dialog kept raw whose indices the parties
// do not cover is decoded by Validate, which then reports each index as
// it always has.
func TestRawDialogPartyIndices(t *testing.T) {
	for _, tc := range []struct {
		parties string
		want    []string
	}{
		{`[{},{}]`, nil},
		{`[{}]`, []string{"dialog.0.parties.1: Value error, party index 1 does not exist (the vCon has 1 parties)"}},
		{`[]`, []string{
			"dialog.0.parties.0: Value error, party index 0 does not exist (the vCon has 0 parties)",
			"dialog.0.parties.1: Value error, party index 1 does not exist (the vCon has 0 parties)",
		}},
		{`null`, []string{
			"dialog.0.parties.0: Value error, party index 0 does not exist (the vCon has 0 parties)",
			"dialog.0.parties.1: Value error, party index 1 does not exist (the vCon has 0 parties)",
		}},
	} {
		doc := `{"created_at":"2024-03-05T10:00:00Z","dialog":[{"parties":[0,1]}],"parties":` + tc.parties +
			`,"uuid":"0185f9a4-6f2b-8f77-a6e3-9b2c1d0e4f5a"}`
		v, err := ParseReadOnly([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if _, raw := v.tree()[Dialog].(*rawArray); !raw {
			t.Fatalf("%s: the dialog was decoded", tc.parties)
		}
		var got []string
		for _, e := range Validate(v) {
			got = append(got, e.Error())
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("parties %s: Validate = %q, want %q", tc.parties, got, tc.want)
		}
	}
}
