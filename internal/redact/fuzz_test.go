package redact

import (
	"context"
	"strings"
	"testing"
)

// luhnRun reports whether s holds a run of exactly 16 digits that passes
// the Luhn check.
func luhnRun(s string) bool {
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		if j-i == 16 && luhn(s[i:j]) {
			return true
		}
		i = j
	}
	return false
}

// FuzzRedact: the redactor never panics, returns sorted disjoint spans,
// and never leaves a Luhn-valid 16-digit run in its output, in either mode
// and whether it reads a text or a document. The seeds run in every `go
// test`; `go test -fuzz FuzzRedact ./internal/redact` explores further.
func FuzzRedact(f *testing.F) {
	for _, c := range corpus {
		text, _ := unmark(c.text)
		f.Add(strings.ReplaceAll(text, "|", " "))
	}
	f.Add("")
	f.Add("order 4532015112830366 and a4111111111111111b")
	f.Add("x\xff\xfe 12/27/ oh oh double 6011-1111-1111-1117")
	f.Add("41111111a@b.co11111117")
	f.Add("tracking 1Z 4012888888881881 +1 415 555 2671 ext")
	f.Add("4111 1111 1111 1111 12/27 123 expires expires cvv cvv")
	r := mustRedactor(f, Config{})
	rm := mustRedactor(f, Config{Mode: Remove, Patterns: []Pattern{{Name: "word", Expr: `[a-z]+`}}})
	f.Fuzz(func(t *testing.T, text string) {
		for _, red := range []*Redactor{r, rm} {
			out, spans := red.Redact(text)
			for i, s := range spans {
				if s.Start < 0 || s.End > len(text) || s.Start >= s.End || i > 0 && s.Start < spans[i-1].End {
					t.Fatalf("bad spans %v for %d bytes", spans, len(text))
				}
			}
			if luhnRun(out) {
				t.Fatalf("card left in %q (from %q)", out, text)
			}
			doc := map[string]any{
				"subject": text,
				"analysis": []any{map[string]any{"type": "transcript", "body": map[string]any{
					"words":    wordsOf(text),
					"segments": []any{map[string]any{"start": 0.0, "end": 1.0, "text": text}, map[string]any{"start": 1.0, "end": 2.0, "text": text}},
				}}},
			}
			if _, err := red.RedactDocument(context.Background(), doc); err != nil {
				t.Fatal(err)
			}
			body := doc["analysis"].([]any)[0].(map[string]any)["body"].(map[string]any)
			left := []string{doc["subject"].(string)}
			for _, s := range body["segments"].([]any) {
				left = append(left, s.(map[string]any)["text"].(string))
			}
			if ws, ok := body["words"].([]any); ok {
				for _, w := range ws {
					left = append(left, w.(map[string]any)["word"].(string))
				}
			}
			for _, s := range left {
				if luhnRun(s) {
					t.Fatalf("card left in %q (from %q)", s, text)
				}
			}
		}
	})
}

func wordsOf(text string) []any {
	var out []any
	for i, w := range strings.Fields(text) {
		out = append(out, map[string]any{"word": w, "start": float64(i), "end": float64(i) + 0.5})
	}
	return out
}
