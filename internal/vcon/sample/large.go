package sample

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
)

// The document's shape, after a real call with its recordings inlined:
// half its bytes in base64url dialog bodies (few large strings), a quarter
// in a transcript analysis whose body is a list of words, a quarter in
// per-dialog summaries of text with newlines, quotes and accents (strings
// that need escaping). The transcript's body is JSON text as the API and
// every worker store it (vcon.Normalize), or with objectBodies the JSON
// object a producer writing Redis directly may leave: many small objects,
// the costliest part to decode.
const (
	LargeDialogs = 16
	largeNotes   = 4
)

// Large is a valid vCon of about size bytes (at least a few hundred
// kB), shaped as above, for measuring memory per document. It carries the
// tag urgent:yes.
func Large(uuid string, size int, objectBodies bool) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	base64Body := func(n int) string {
		b := make([]byte, n*3/4) // base64 grows by 4/3
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	sentences := []string{"Customer: \"I've been charged twice\" — for the café order.\n", "Agent: Let me check that for you.\n",
		"Customer: It's order #4411, placed Tuesday.\n", "Agent: I see it; the refund is on its way.\n"}
	text := func(n int) string {
		var sb strings.Builder
		for sb.Len() < n {
			sb.WriteString(sentences[rng.IntN(len(sentences))])
		}
		return sb.String()
	}
	ds := make([]any, LargeDialogs)
	as := make([]any, 0, LargeDialogs+1)
	for i := range ds {
		ds[i] = map[string]any{
			"type": "recording", "start": "2024-03-05T10:00:01Z", "duration": 312.5, "parties": []any{0, 1},
			"mediatype": "audio/x-wav", "filename": fmt.Sprintf("rec-%d.wav", i), "encoding": "base64url",
			"body": base64Body(size / 2 / LargeDialogs),
		}
		as = append(as, map[string]any{"type": "summary", "dialog": i, "vendor": "openai", "encoding": "none", "body": text(size / 4 / LargeDialogs)})
	}
	// A word is about 70 bytes of JSON.
	words := make([]any, size/4/70)
	for i := range words {
		words[i] = map[string]any{"word": "refund", "start": float64(i) * 0.31, "end": float64(i)*0.31 + 0.25, "confidence": 0.98, "speaker": i % 2}
	}
	var transcript any = map[string]any{"transcript": "refund refund", "words": words}
	if !objectBodies {
		text, _ := json.Marshal(transcript) // maps of strings and numbers always encode
		transcript = string(text)
	}
	analysis := append(as, map[string]any{"type": "transcript", "dialog": 0, "vendor": "deepgram", "encoding": "json", "body": transcript})
	atts := []any{map[string]any{"purpose": "tags", "encoding": "json", "body": `["urgent:yes"]`}}
	for i := range largeNotes {
		atts = append(atts, map[string]any{"purpose": "note", "mediatype": "text/plain", "filename": fmt.Sprintf("note-%d.txt", i),
			"encoding": "none", "body": text(4 << 10), "party": 1, "start": "2024-03-05T10:05:00Z"})
	}
	doc := map[string]any{
		"vcon": "0.0.1", "uuid": uuid, "created_at": "2024-03-05T10:00:00.000+00:00", "subject": "Large call",
		"parties": []any{
			map[string]any{"tel": "+15555550100", "name": "Alice Agent", "role": "agent"},
			map[string]any{"tel": "+15555550101", "name": "Bob Customer", "role": "customer"},
		},
		"dialog":      ds,
		"analysis":    analysis,
		"attachments": atts,
	}
	b, _ := json.Marshal(doc) // maps of strings and numbers always encode
	return b
}
