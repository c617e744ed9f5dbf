package redact

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// original is shaped like the core draft's ab_call_ext_rec example with a
// transcript added.
const original = `{"uuid":"019f15a6-a752-826f-b9a2-279e0d16bc46","created_at":"2022-06-21T17:53:26.000+00:00",
"parties":[{"name":"Alice","tel":"+12345678901"},{"name":"Bob"}],
"dialog":[{"type":"recording","start":"2022-06-21T17:53:26.000+00:00","duration":33.12,"parties":[0,1],
  "url":"https://example.com/ab_call.mp3","mediatype":"audio/x-mp3","content_hash":"sha512-GLy6"}],
"analysis":[{"type":"transcript","dialog":0,"encoding":"json","body":{"transcript":"my card is 4111 1111 1111 1111"}}],
"amended":{"uuid":"0190c5e0-0000-8000-8000-000000000000"}}`

func TestRedactedVcon(t *testing.T) {
	ctx := context.Background()
	r := mustRedactor(t, Config{})
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	const newID = "01928e10-193e-8231-b9a2-279e0d16bc46"

	v := mustParse(t, original)
	before, _ := v.Marshal()
	out, rep, err := r.RedactedVcon(ctx, v, RedactedOptions{UUID: newID, DropUnreadable: true, Now: now,
		URL: "https://vault.example.com/v/019f15a6.vcon", ContentHash: "sha512-abc"})
	if err != nil {
		t.Fatal(err)
	}
	if after, _ := v.Marshal(); string(after) != string(before) {
		t.Errorf("original changed:\n%s", after)
	}
	if out.UUID() != newID {
		t.Errorf("uuid = %q", out.UUID())
	}
	red, _ := out.Doc()["redacted"].(map[string]any)
	want := map[string]any{"uuid": "019f15a6-a752-826f-b9a2-279e0d16bc46", "type": "PII Redaction",
		"url": "https://vault.example.com/v/019f15a6.vcon", "content_hash": "sha512-abc"}
	for k, w := range want {
		if red[k] != w {
			t.Errorf("redacted.%s = %v, want %v", k, red[k], w)
		}
	}
	if _, ok := out.Doc()["amended"]; ok {
		t.Error("amended kept beside redacted")
	}
	if out.Doc()["updated_at"] != "2026-12-02T10:00:00.000Z" {
		t.Errorf("updated_at = %v", out.Doc()["updated_at"])
	}
	d := out.List(vcon.Dialog)[0]
	if _, ok := d["url"]; ok || d["content_hash"] != "sha512-GLy6" || d["duration"] == nil {
		t.Errorf("dialog = %v, want url dropped and the rest kept", d)
	}
	body := out.List(vcon.Analysis)[0]["body"].(map[string]any)
	if body["transcript"] != "my card is [CARD]" {
		t.Errorf("transcript = %q", body["transcript"])
	}
	if errs := vcon.Validate(out); len(errs) > 0 {
		t.Errorf("redacted vCon does not validate: %v", errs)
	}
	if c := rep.Counts(); c[Card] != 1 {
		t.Errorf("counts = %v", c)
	}

	generated, _, err := r.RedactedVcon(ctx, mustParse(t, original), RedactedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if id := generated.UUID(); !vcon.ValidUUID(id) || id == v.UUID() {
		t.Errorf("generated uuid %q", id)
	}
	if d := generated.List(vcon.Dialog)[0]; d["url"] == nil {
		t.Error("url dropped without DropUnreadable")
	}
}

func TestRedactedVconRefuses(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		o    RedactedOptions
		want string
	}{
		{"signed", `{"payload":"x","signatures":[]}`, RedactedOptions{}, "signed or encrypted"},
		{"encrypted", `{"ciphertext":"x"}`, RedactedOptions{}, "signed or encrypted"},
		{"critical", `{"uuid":"019f15a6-a752-826f-b9a2-279e0d16bc46","critical":["X"]}`, RedactedOptions{}, "critical extensions X"},
		{"unknown extension", `{"uuid":"019f15a6-a752-826f-b9a2-279e0d16bc46","extensions":["CC","Lawful"]}`, RedactedOptions{}, `extension "Lawful"`},
		{"url without hash", `{"uuid":"019f15a6-a752-826f-b9a2-279e0d16bc46"}`, RedactedOptions{URL: "https://x"}, "needs its content_hash"},
		{"same uuid", `{"uuid":"019f15a6-a752-826f-b9a2-279e0d16bc46"}`, RedactedOptions{UUID: "019f15a6-a752-826f-b9a2-279e0d16bc46"}, "uuid of its own"},
		{"bad uuid", `{"uuid":"019f15a6-a752-826f-b9a2-279e0d16bc46"}`, RedactedOptions{UUID: "nope"}, "not a UUID"},
	}
	r := mustRedactor(t, Config{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := r.RedactedVcon(context.Background(), mustParse(t, tc.doc), tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if _, _, err := r.RedactedVcon(context.Background(), mustParse(t, `{"uuid":"019f15a6-a752-826f-b9a2-279e0d16bc46","extensions":["CC","X"]}`),
		RedactedOptions{Extensions: []string{"X"}}); err != nil {
		t.Errorf("known extension refused: %v", err)
	}
}
