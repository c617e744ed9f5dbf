package links

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/vcon-operator/vcon-operator/internal/redact"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

const (
	redactOrigUUID = "0190d6f0-1c2d-7a00-8000-00000000c0de"
	testCard       = "4111 1111 1111 1111"
	testCardDigits = "4111111111111111"
)

// callVcon is a support call as a transcriber leaves it: a chat line with a
// card, a recording (inline WAV or by url), and a Deepgram-style
// transcript whose words read the card out with timings.
func callVcon(t *testing.T, recording map[string]any) *vcon.VCon {
	t.Helper()
	words := []any{}
	at := 0.0
	for _, w := range strings.Fields("thanks my card is four one one one one one one one one one one one one one one one and that is it") {
		words = append(words, map[string]any{"word": w, "start": at, "end": at + 0.25})
		at += 0.25
	}
	dialog := []any{
		map[string]any{"type": "text", "start": "2024-03-05T10:00:00Z", "parties": []any{0, 1}, "body": "my card is " + testCard + ", mail me at jane.doe@example.com", "mediatype": "text/plain"},
	}
	if recording != nil {
		recording["type"] = "recording"
		recording["start"] = "2024-03-05T10:00:01Z"
		recording["parties"] = []any{0, 1}
		dialog = append(dialog, recording)
	}
	doc := map[string]any{
		"vcon": "0.4.0", "uuid": redactOrigUUID, "created_at": "2024-03-05T10:00:00.000Z",
		"parties": []any{
			map[string]any{"tel": "+15555550100", "name": "Alice Agent", "role": "agent"},
			map[string]any{"mailto": "jane.doe@example.com", "name": "Jane Doe", "role": "customer"},
		},
		"dialog":      dialog,
		"attachments": []any{},
		"analysis": []any{map[string]any{
			"type": "transcript", "dialog": len(dialog) - 1, "vendor": "deepgram", "encoding": "json",
			"body": map[string]any{"words": words},
		}},
		"amended": map[string]any{"uuid": "0190d6f0-1c2d-7a00-8000-000000000001"},
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	v, err := vcon.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func newRedactLink(t *testing.T, opts map[string]any, hc *http.Client) Link {
	t.Helper()
	if _, ok := opts["original_storages"]; !ok {
		opts["original_storages"] = []any{"restricted"}
	}
	l, err := New("redact", "links.redact", opts, Deps{HTTP: hc})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func marshal(t *testing.T, v *vcon.VCon) string {
	t.Helper()
	b, err := v.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// redactionBody is the redacted vCon's redaction analysis entry, decoded.
type redactionBody struct {
	Counts   map[string]int `json:"counts"`
	Findings []struct {
		Type   string            `json:"type"`
		Path   string            `json:"path"`
		Dialog *int              `json:"dialog"`
		Time   *redact.TimeRange `json:"time"`
	} `json:"findings"`
	Recordings []struct {
		Dialog int                `json:"dialog"`
		Action string             `json:"action"`
		Reason string             `json:"reason"`
		Ranges []redact.TimeRange `json:"ranges"`
	} `json:"recordings"`
	Removed []struct{ Path string } `json:"removed"`
}

func redactionOf(t *testing.T, v *vcon.VCon) redactionBody {
	t.Helper()
	for _, a := range vcon.Normalized(v).List(vcon.Analysis) {
		if a["type"] != RedactionAnalysisType {
			continue
		}
		if a["schema"] != RedactionSchema {
			t.Errorf("redaction entry schema %v", a["schema"])
		}
		var rb redactionBody
		if err := json.Unmarshal([]byte(a["body"].(string)), &rb); err != nil {
			t.Fatal(err)
		}
		return rb
	}
	t.Fatal("no redaction analysis entry")
	return redactionBody{}
}

// TestRedactLink: the link returns a redacted vCon as the core draft
// describes it (own uuid, redacted object naming the original, no
// amended), with no card or address left in any text and the recording's
// url dropped, and leaves the vCon it was given as it was.
func TestRedactLink(t *testing.T) {
	cases := []struct {
		name       string
		opts       map[string]any
		wantType   string
		wantText   string // the chat line after redaction
		partyNames bool
	}{
		{name: "defaults", opts: map[string]any{}, wantType: redact.DefaultRedactedType,
			wantText: "my card is [CARD], mail me at [EMAIL]", partyNames: true},
		{name: "remove, parties removed, own type", opts: map[string]any{"replacement": "remove", "parties": "remove", "redaction_type": "PCI"},
			wantType: "PCI", wantText: "my card is , mail me at ", partyNames: false},
		{name: "labels and a pattern", opts: map[string]any{"labels": map[string]any{"card": "{{PCI}}"}, "patterns": map[string]any{"mail_word": `\bmail\b`}},
			wantType: redact.DefaultRedactedType, wantText: "my card is {{PCI}}, [MAIL_WORD] me at [EMAIL]", partyNames: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newRedactLink(t, tc.opts, http.DefaultClient)
			v := callVcon(t, map[string]any{"url": "https://media.example.com/call.wav", "mediatype": "audio/x-wav", "content_hash": "sha512-abc"})
			before := marshal(t, v)
			res, err := l.Run(context.Background(), v)
			if err != nil {
				t.Fatal(err)
			}
			if after := marshal(t, v); after != before {
				t.Error("the link changed the vCon it was given")
			}
			if res.Halt || res.NextUUID != "" || res.Redacted == nil {
				t.Fatalf("result %+v, want only Redacted", res)
			}
			red := res.Redacted
			got := marshal(t, red)
			leaks := []string{testCardDigits, "4111 1111", "one one one one", "media.example.com"}
			if !tc.partyNames {
				// Kept parties keep their mailto; removed ones leave
				// the address nowhere.
				leaks = append(leaks, "jane.doe@example.com", "Jane Doe", "+15555550100")
			}
			for _, leak := range leaks {
				if strings.Contains(got, leak) {
					t.Errorf("redacted vCon still holds %q", leak)
				}
			}
			for _, d := range red.List(vcon.Dialog) {
				if b, _ := d["body"].(string); strings.Contains(b, "jane.doe@example.com") {
					t.Error("the chat line still holds the address")
				}
			}
			id, err := uuid.Parse(red.UUID())
			if err != nil || id.Version() != 8 || id.Variant() != uuid.RFC4122 || red.UUID() == redactOrigUUID {
				t.Errorf("redacted uuid %s: want a version 8 uuid of its own", red.UUID())
			}
			r, _ := red.Doc()["redacted"].(map[string]any)
			if r["uuid"] != redactOrigUUID || r["type"] != tc.wantType {
				t.Errorf("redacted object %v, want uuid %s type %s", r, redactOrigUUID, tc.wantType)
			}
			if _, ok := red.Doc()["amended"]; ok {
				t.Error("amended kept beside redacted")
			}
			if text := red.List(vcon.Dialog)[0]["body"]; text != tc.wantText {
				t.Errorf("chat line %q, want %q", text, tc.wantText)
			}
			rec := red.List(vcon.Dialog)[1]
			if _, ok := rec["url"]; ok {
				t.Error("the recording's url was kept")
			}
			for _, p := range red.List(vcon.Parties) {
				if _, has := p["name"]; has != tc.partyNames {
					t.Errorf("party %v: name kept %v, want %v", p, has, tc.partyNames)
				}
				if _, has := p["role"]; !has {
					t.Errorf("party %v lost its role", p)
				}
			}
			rb := redactionOf(t, red)
			if rb.Counts["card"] != 2 || rb.Counts["email"] != 1 {
				t.Errorf("counts %v, want 2 cards and 1 email", rb.Counts)
			}
			if len(rb.Recordings) != 1 || rb.Recordings[0].Action != "removed" || !strings.Contains(rb.Recordings[0].Reason, "url") {
				t.Errorf("recordings %+v, want dialog 1 removed as a url", rb.Recordings)
			}
			if strings.Contains(mustJSON(t, rb), `"start":11`) {
				t.Error("the redaction entry quotes byte offsets")
			}
		})
	}
}

func mustJSON(t *testing.T, x any) string {
	t.Helper()
	b, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRedactedUUIDDeterministic: redacting the same original again (after
// a crash or a retry) gives the same uuid, so storages overwrite; another
// link or another original gives another.
func TestRedactedUUIDDeterministic(t *testing.T) {
	v := callVcon(t, nil)
	a, err := redactedUUID(v, "redact")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := redactedUUID(callVcon(t, nil), "redact")
	other, _ := redactedUUID(v, "redact-pci")
	w := callVcon(t, nil)
	w.Doc()["uuid"] = "0190d6f0-1c2d-7a00-8000-00000000beef"
	otherOrig, _ := redactedUUID(w, "redact")
	if a != b {
		t.Errorf("same original, same link: %s then %s", a, b)
	}
	if a == other || a == otherOrig {
		t.Errorf("uuids collide: %s, %s, %s", a, other, otherOrig)
	}
	id := uuid.MustParse(a)
	if ms := int64(binary.BigEndian.Uint64(append([]byte{0, 0}, id[:6]...))); ms != 1709632800000 {
		t.Errorf("timestamp bits %d, want the original's created_at in ms", ms)
	}
}

// wavTone is a 16-bit mono PCM WAV of secs seconds of a loud tone at rate.
func wavTone(secs float64, rate int) []byte {
	n := int(secs * float64(rate))
	data := make([]byte, 2*n)
	for i := 0; i < n; i++ {
		s := int16(20000 * math.Sin(2*math.Pi*440*float64(i)/float64(rate)))
		if s == 0 {
			s = 1 // never silent by chance
		}
		binary.LittleEndian.PutUint16(data[2*i:], uint16(s))
	}
	h := make([]byte, 44)
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], uint32(36+len(data)))
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], 1)
	binary.LittleEndian.PutUint16(h[22:], 1)
	binary.LittleEndian.PutUint32(h[24:], uint32(rate))
	binary.LittleEndian.PutUint32(h[28:], uint32(2*rate))
	binary.LittleEndian.PutUint16(h[32:], 2)
	binary.LittleEndian.PutUint16(h[34:], 16)
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], uint32(len(data)))
	return append(h, data...)
}

// silentAt reports whether the 16-bit mono sample at t seconds is zero.
func silentAt(wav []byte, rate int, t float64) bool {
	i := 44 + 2*int(t*float64(rate))
	return wav[i] == 0 && wav[i+1] == 0
}

// TestRedactLinkMutesRecording: an inline WAV recording with a timed
// transcript comes back muted over the words of the card (padded), loud
// elsewhere, its time ranges recorded; a recording that cannot be muted
// (not WAV, no timed transcript, muting off, a finding without a time) is
// removed instead, with the reason.
func TestRedactLinkMutesRecording(t *testing.T) {
	const rate = 8000
	tone := wavTone(7, rate)
	inline := func(data []byte) map[string]any {
		return map[string]any{"body": base64.RawURLEncoding.EncodeToString(data), "encoding": "base64url", "mediatype": "audio/x-wav"}
	}
	// The card is words 4..19: 1.0 s to 5.0 s.
	cases := []struct {
		name       string
		opts       map[string]any
		recording  map[string]any
		edit       func(v *vcon.VCon)
		wantAction string
		wantReason string
	}{
		{name: "muted", opts: map[string]any{}, recording: inline(tone), wantAction: "muted"},
		{name: "muting off", opts: map[string]any{"mute_audio": false}, recording: inline(tone), wantAction: "removed", wantReason: "mute_audio is off"},
		{name: "mp3", opts: map[string]any{}, recording: inline([]byte("ID3\x03\x00 not a wav at all")), wantAction: "removed", wantReason: "not an inline PCM WAV"},
		{name: "no transcript", opts: map[string]any{}, recording: inline(tone), wantAction: "removed", wantReason: "no transcript with timings",
			edit: func(v *vcon.VCon) { v.Doc()["analysis"] = []any{} }},
		{name: "untimed finding", opts: map[string]any{}, recording: inline(tone), wantAction: "removed", wantReason: "has no time",
			edit: func(v *vcon.VCon) {
				v.Append(vcon.Analysis, map[string]any{"type": "summary", "dialog": 1, "body": "customer gave SSN 123-45-6789", "encoding": "none"})
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newRedactLink(t, tc.opts, http.DefaultClient)
			v := callVcon(t, tc.recording)
			if tc.edit != nil {
				tc.edit(v)
			}
			res, err := l.Run(context.Background(), v)
			if err != nil {
				t.Fatal(err)
			}
			rb := redactionOf(t, res.Redacted)
			if len(rb.Recordings) != 1 || rb.Recordings[0].Action != tc.wantAction || !strings.Contains(rb.Recordings[0].Reason, tc.wantReason) {
				t.Fatalf("recordings %+v, want %s (%s)", rb.Recordings, tc.wantAction, tc.wantReason)
			}
			rec := res.Redacted.List(vcon.Dialog)[1]
			orig := v.List(vcon.Dialog)[1]
			if orig["body"] != tc.recording["body"] {
				t.Error("the original's recording changed")
			}
			if tc.wantAction == "removed" {
				if _, ok := rec["body"]; ok {
					t.Error("a recording that could not be muted kept its body")
				}
				return
			}
			muted, err := base64.RawURLEncoding.DecodeString(rec["body"].(string))
			if err != nil {
				t.Fatal(err)
			}
			if len(muted) != len(tone) {
				t.Fatalf("muted recording is %d bytes, the original %d", len(muted), len(tone))
			}
			if r := rb.Recordings[0].Ranges; len(r) != 1 || r[0].Start != 1.0 || r[0].End != 5.0 {
				t.Errorf("muted ranges %+v, want [1.0, 5.0]", r)
			}
			for _, at := range []float64{0.85, 1.0, 3.0, 5.0, 5.15} {
				if !silentAt(muted, rate, at) {
					t.Errorf("audible at %.2f s, inside the card's words or their padding", at)
				}
			}
			for _, at := range []float64{0.2, 0.7, 5.4, 6.5} {
				if silentAt(muted, rate, at) {
					t.Errorf("silent at %.2f s, outside the card", at)
				}
			}
		})
	}
}

// TestRedactLinkExternalEngineDown: an external engine that fails never
// lets the vCon through unredacted: the link returns an error the
// pipeline retries later (Retryable), and no redacted vCon.
func TestRedactLinkExternalEngineDown(t *testing.T) {
	var calls atomic.Int32
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "engine overloaded", http.StatusServiceUnavailable)
	}))
	defer failing.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	garbled := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"results": []}`))
	}))
	defer garbled.Close()

	for _, tc := range []struct {
		name, url string
		calls     int32 // -1: not counted
	}{
		{"503", failing.URL, 3},
		{"connection refused", closedURL, -1},
		{"wrong answer", garbled.URL, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls.Store(0)
			l := newRedactLink(t, map[string]any{"external": map[string]any{"url": tc.url, "retries": 2, "timeout": "2s"}}, http.DefaultClient)
			// No back-off waits in a test.
			l.(*redactLink).external.policy.Sleep = func(context.Context, time.Duration) error { return nil }
			res, err := l.Run(context.Background(), callVcon(t, nil))
			if err == nil || res.Redacted != nil {
				t.Fatalf("result %+v, err %v: want an error and no redacted vCon", res, err)
			}
			var r interface{ Retryable() bool }
			if !errors.As(err, &r) || !r.Retryable() {
				t.Errorf("error %v is not retryable", err)
			}
			if strings.Contains(err.Error(), testCardDigits) || strings.Contains(err.Error(), "4111") {
				t.Errorf("error %q quotes the text", err)
			}
			if tc.calls >= 0 && calls.Load() != tc.calls {
				t.Errorf("engine asked %d times, want %d (1 + 2 retries)", calls.Load(), tc.calls)
			}
		})
	}
}
