package redact

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

func mustParse(t *testing.T, s string) *vcon.VCon {
	t.Helper()
	v, err := vcon.Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustRedactor(t testing.TB, cfg Config) *Redactor {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// deepgramBody is a Deepgram alternative as links.transcribe stores it
// (JSON text, encoding "json"), with a card read in four words.
const deepgramBody = `{"transcript":"my card is 4111 1111 1111 1111 thanks","confidence":0.98,"words":[` +
	`{"word":"my","start":1.0,"end":1.2,"punctuated_word":"My"},` +
	`{"word":"card","start":1.2,"end":1.5,"punctuated_word":"card"},` +
	`{"word":"is","start":1.5,"end":1.6,"punctuated_word":"is"},` +
	`{"word":"4111","start":1.6,"end":2.1,"punctuated_word":"4111"},` +
	`{"word":"1111","start":2.1,"end":2.6,"punctuated_word":"1111"},` +
	`{"word":"1111","start":2.6,"end":3.1,"punctuated_word":"1111"},` +
	`{"word":"1111","start":3.1,"end":3.6,"punctuated_word":"1111."},` +
	`{"word":"thanks","start":3.8,"end":4.2,"punctuated_word":"Thanks."}],"detected_language":"en"}`

func TestRedactDocument(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		mode     Mode
		doc      string
		findings []Finding // Group is not compared
		skipped  []string
		check    func(t *testing.T, v *vcon.VCon)
	}{
		{
			name:     "text dialog",
			doc:      `{"uuid":"u","dialog":[{"type":"text","body":"email me at a.b@example.com","encoding":"none"}]}`,
			findings: []Finding{{Type: Email, Path: "dialog[0].body", Start: 12, End: 27, Dialog: ptr(0)}},
			check: func(t *testing.T, v *vcon.VCon) {
				if got := v.List(vcon.Dialog)[0]["body"]; got != "email me at [EMAIL]" {
					t.Errorf("body = %q", got)
				}
			},
		},
		{
			name: "deepgram words and transcript",
			doc: `{"uuid":"u","dialog":[{"type":"recording","url":"https://x/a.wav"}],` +
				`"analysis":[{"type":"transcript","dialog":0,"vendor":"deepgram","encoding":"json","body":` + quote(deepgramBody) + `}]}`,
			findings: []Finding{
				{Type: Card, Path: "analysis[0].body.transcript", Start: 11, End: 30, Dialog: ptr(0)},
				{Type: Card, Path: "analysis[0].body.words", Start: 11, End: 31, Dialog: ptr(0),
					Words: &IndexRange{First: 3, Last: 6}, Time: &TimeRange{Start: 1.6, End: 3.6}},
			},
			skipped: []string{"dialog[0]"},
			check: func(t *testing.T, v *vcon.VCon) {
				body := v.List(vcon.Analysis)[0]["body"].(string)
				var alt struct {
					Transcript string `json:"transcript"`
					Words      []struct {
						Punctuated string `json:"punctuated_word"`
					} `json:"words"`
				}
				if err := json.Unmarshal([]byte(body), &alt); err != nil {
					t.Fatal(err)
				}
				if alt.Transcript != "my card is [CARD] thanks" {
					t.Errorf("transcript = %q", alt.Transcript)
				}
				var words []string
				for _, w := range alt.Words {
					words = append(words, w.Punctuated)
				}
				if got := strings.Join(words, " "); got != "My card is [CARD] Thanks." {
					t.Errorf("words = %q", got)
				}
				if strings.Contains(body, "4111") {
					t.Errorf("card left in body")
				}
			},
		},
		{
			name: "deepgram words removed",
			mode: Remove,
			doc:  `{"uuid":"u","analysis":[{"type":"transcript","encoding":"json","body":` + quote(deepgramBody) + `}]}`,
			findings: []Finding{
				{Type: Card, Path: "analysis[0].body.transcript", Start: 11, End: 30},
				{Type: Card, Path: "analysis[0].body.words", Start: 11, End: 31,
					Words: &IndexRange{First: 3, Last: 6}, Time: &TimeRange{Start: 1.6, End: 3.6}},
			},
			check: func(t *testing.T, v *vcon.VCon) {
				body := v.List(vcon.Analysis)[0]["body"].(string)
				if !strings.Contains(body, `"transcript":"my card is thanks"`) || strings.Count(body, `"word"`) != 4 {
					t.Errorf("body = %s", body)
				}
			},
		},
		{
			name: "whisper segments split a card",
			doc: `{"uuid":"u","analysis":[{"type":"transcript","dialog":0,"encoding":"json","body":{"text":"card 4111 1111. 1111 1111. ok",` +
				`"segments":[{"id":0,"start":0.0,"end":2.0,"text":" card 4111 1111."},{"id":1,"start":2.0,"end":4.5,"text":" 1111 1111."},{"id":2,"start":4.5,"end":5,"text":" ok"}]}}]}`,
			findings: []Finding{
				{Type: Card, Path: "analysis[0].body.segments[0].text", Start: 6, End: 15, Dialog: ptr(0), Time: &TimeRange{Start: 0, End: 2}},
				{Type: Card, Path: "analysis[0].body.segments[1].text", Start: 1, End: 10, Dialog: ptr(0), Time: &TimeRange{Start: 2, End: 4.5}},
				{Type: Card, Path: "analysis[0].body.text", Start: 5, End: 25, Dialog: ptr(0)},
			},
			check: func(t *testing.T, v *vcon.VCon) {
				body := v.List(vcon.Analysis)[0]["body"].(map[string]any)
				segs := body["segments"].([]any)
				got := []string{segs[0].(map[string]any)["text"].(string), segs[1].(map[string]any)["text"].(string)}
				if !reflect.DeepEqual(got, []string{" card [CARD].", " ."}) {
					t.Errorf("segments = %q", got)
				}
				if body["text"] != "card [CARD]. ok" {
					t.Errorf("text = %q", body["text"])
				}
			},
		},
		{
			name: "draft transcript timed by date",
			doc: `{"uuid":"u","dialog":[{"type":"recording","start":"2022-06-21T17:53:26.000+00:00","duration":33.12}],` +
				`"analysis":[{"type":"transcript","dialog":0,"encoding":"json","body":[` +
				`{"parties":0,"start":"2022-06-21T17:53:39.735000+00:00","duration":6.5,"text":"My social is 123-45-6789."}]}]}`,
			findings: []Finding{{Type: SSN, Path: "analysis[0].body[0].text", Start: 13, End: 24, Dialog: ptr(0), Time: &TimeRange{Start: 13.735, End: 20.235}}},
		},
		{
			name: "attachments: base64url text read, binary skipped",
			doc: `{"uuid":"u","attachments":[` +
				`{"type":"note","mediatype":"text/plain","encoding":"base64url","body":"` + base64.RawURLEncoding.EncodeToString([]byte("call +1 415 555 2671")) + `"},` +
				`{"type":"scan","mediatype":"image/png","encoding":"base64url","body":"iVBORw0KGgo"},` +
				`{"type":"doc","url":"https://example.com/d.pdf","content_hash":"sha512-x"}]}`,
			findings: []Finding{{Type: Phone, Path: "attachments[0].body", Start: 5, End: 20}},
			skipped:  []string{"attachments[1].body", "attachments[2].body"},
			check: func(t *testing.T, v *vcon.VCon) {
				b, _ := base64.RawURLEncoding.DecodeString(v.List(vcon.Attachments)[0]["body"].(string))
				if string(b) != "call [PHONE]" {
					t.Errorf("attachment = %q", b)
				}
			},
		},
		{
			name: "JSON body without finding is left byte for byte",
			doc:  `{"uuid":"u","analysis":[{"type":"summary","encoding":"json","body":"{ \"b\": \"<fine>\",  \"a\": 1 }"}]}`,
			check: func(t *testing.T, v *vcon.VCon) {
				if got := v.List(vcon.Analysis)[0]["body"]; got != `{ "b": "<fine>",  "a": 1 }` {
					t.Errorf("body = %q", got)
				}
			},
		},
		{
			name:     "subject",
			doc:      `{"uuid":"u","subject":"Callback 415-555-2671"}`,
			findings: []Finding{{Type: Phone, Path: "subject", Start: 9, End: 21}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := mustParse(t, tc.doc)
			rep, err := mustRedactor(t, Config{Mode: tc.mode}).RedactVCon(ctx, v)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]Finding, len(rep.Findings))
			for i, f := range rep.Findings {
				f.Group = 0
				got[i] = f
			}
			sortFindings(got)
			sortFindings(tc.findings)
			if tc.findings == nil {
				tc.findings = []Finding{}
			}
			if !reflect.DeepEqual(got, tc.findings) {
				a, _ := json.Marshal(got)
				b, _ := json.Marshal(tc.findings)
				t.Errorf("findings\n got %s\nwant %s", a, b)
			}
			var skipped []string
			for _, s := range rep.Skipped {
				skipped = append(skipped, s.Path)
			}
			if !reflect.DeepEqual(skipped, tc.skipped) {
				t.Errorf("skipped = %q, want %q", skipped, tc.skipped)
			}
			if tc.check != nil {
				tc.check(t, v)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func sortFindings(fs []Finding) {
	key := func(f Finding) string { b, _ := json.Marshal(f); return string(b) }
	for i := 1; i < len(fs); i++ {
		for j := i; j > 0 && key(fs[j]) < key(fs[j-1]); j-- {
			fs[j], fs[j-1] = fs[j-1], fs[j]
		}
	}
}
