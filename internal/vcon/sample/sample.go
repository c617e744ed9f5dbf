// Package sample makes realistic vCon documents for tests and benchmarks:
// two parties, a recording dialog and a transcript analysis whose text
// brings the document to the size asked for.
package sample

import (
	"encoding/json"
	"strings"
)

// Document is a vCon of about size bytes (at least about 700) with the
// given uuid.
func Document(uuid string, size int) []byte {
	text := strings.Repeat("so I was calling about my order, ", max(0, size-700)/33+1)
	doc := map[string]any{
		"vcon": "0.0.1", "uuid": uuid, "created_at": "2024-03-05T10:00:00.000+00:00", "subject": "Support call",
		"parties": []any{
			map[string]any{"tel": "+15555550100", "name": "Alice Agent", "role": "agent"},
			map[string]any{"tel": "+15555550101", "name": "Bob Customer", "role": "customer"},
		},
		"dialog": []any{map[string]any{
			"type": "recording", "start": "2024-03-05T10:00:01Z", "duration": 312.5, "parties": []any{0, 1},
			"mimetype": "audio/x-wav", "url": "https://media.example.com/rec/" + uuid + ".wav",
		}},
		"analysis":    []any{map[string]any{"type": "transcript", "dialog": 0, "vendor": "deepgram", "encoding": "none", "body": text}},
		"attachments": []any{},
	}
	b, _ := json.Marshal(doc) // maps of strings and numbers always encode
	return b
}
