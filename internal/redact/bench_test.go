package redact

import (
	"context"
	"strings"
	"testing"
)

// transcript5K is a support call of about 5 KB with a card, its expiry
// and CVV, a phone number and an e-mail address in it.
func transcript5K() string {
	var b strings.Builder
	lines := []string{
		"Agent: Thank you for calling, how can I help you today?",
		"Caller: Hi, I'm calling about order number 5555 5555 5555 4445, it hasn't arrived yet.",
		"Agent: I'm sorry to hear that. Let me look it up, it was placed on 12/27/2024 for $1,234.56.",
		"Caller: Right, and I'd like to pay the balance with a new card.",
		"Agent: Sure, go ahead with the card number when you're ready.",
		"Caller: It's four one one one, one one one one, one one one one, one one one one.",
		"Agent: And the expiration date? Caller: twelve twenty seven. Agent: and the security code is? Caller: one two three.",
		"Agent: Can I have a phone number in case we need to reach you? Caller: four one five, five five five, two six seven one.",
		"Agent: And an email for the receipt? Caller: jane dot smith at gmail dot com, or jane.smith@example.com.",
		"Agent: The tracking number is 1Z999AA10123456784 and it should arrive on Friday.",
	}
	for b.Len() < 5000 {
		for _, l := range lines {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return b.String()[:5000]
}

func BenchmarkRedact5K(b *testing.B) {
	r := mustRedactor(b, Config{})
	text := transcript5K()
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		r.Redact(text)
	}
}

// BenchmarkRedactDocument5K reads the same transcript as Deepgram words,
// the shape that costs most: every word is an element.
func BenchmarkRedactDocument5K(b *testing.B) {
	r := mustRedactor(b, Config{})
	text := transcript5K()
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		doc := map[string]any{"analysis": []any{map[string]any{"type": "transcript", "body": map[string]any{
			"transcript": text, "words": wordsOf(text),
		}}}}
		b.StartTimer()
		if _, err := r.RedactDocument(ctx, doc); err != nil {
			b.Fatal(err)
		}
	}
}
