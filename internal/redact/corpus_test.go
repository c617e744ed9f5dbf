package redact

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The corpus is written the way recognisers and chat logs write calls.
// ⟦type:text⟧ marks what must be found; a mark whose type is not a
// detector's (order, date, tracking, amount, id, invalid-ssn) marks a near
// miss that must not be redacted. A "|" in a segments case ends a segment
// (the redactor joins segments with a space, which keeps offsets equal);
// a words case is split into one word per space, Deepgram-style.
var corpus = []struct {
	name, kind, text string
}{
	// Cards, written.
	{"card spaced", "text", "Agent: Can I get the card number? Caller: Sure, it's ⟦card:4111 1111 1111 1111⟧."},
	{"card dashed", "text", "card number ⟦card:5555-5555-5555-4444⟧ please charge it"},
	{"card run together", "text", "Card: ⟦card:6011111111111117⟧ exp ⟦expiry:04/27⟧ cvv ⟦cvv:123⟧"},
	{"amex 4-6-5", "text", "my amex is ⟦card:3782 822463 10005⟧ and the four digit code is ⟦cvv:7890⟧"},
	{"diners 14", "text", "It's a Diners card, ⟦card:3056 930902 5904⟧."},
	{"visa 13", "text", "the old visa ⟦card:4222222222222⟧ still works?"},
	{"mastercard 2-series", "text", "use the Mastercard ⟦card:2223 0031 2200 3222⟧ for this one"},
	{"card then expiry and cvv written", "text", "⟦card:4012 8888 8888 1881⟧ ⟦expiry:12/27⟧ ⟦cvv:345⟧"},
	// Cards, spoken.
	{"card spelled", "text", "yeah it's ⟦card:four one one one one one one one one one one one one one one one⟧ okay"},
	{"card spelled groups", "text", "Caller: ⟦card:Five five five five, five five five five, five five five five, four four four four⟧. Agent: Thank you."},
	{"card oh for zero", "text", "the number is ⟦card:four oh one two, eight eight eight eight, eight eight eight eight, one eight eight one⟧"},
	{"card doubles", "text", "it's a ⟦card:double five double five, double five double five, double five double five, double four double four⟧"},
	{"card triple", "text", "amex, ⟦card:three seven eight two, eight two two four six three, one triple oh five⟧"},
	{"card teens", "text", "visa ⟦card:forty one eleven, eleven eleven, eleven eleven, eleven eleven⟧"},
	{"card with fillers", "text", "card is ⟦card:five one oh five, uh, one oh five one, um, oh five one oh, five one oh oh⟧ got it?"},
	{"card mixed digits and words", "text", "number ⟦card:4111 one one one one 1111 one one one one⟧ right"},
	{"card single digits written", "text", "my visa is ⟦card:4 1 1 1, 1 1 1 1, 1 1 1 1, 1 1 1 1⟧."},
	{"card with leading oh", "text", "Caller: oh ⟦card:four one one one, one one one one, one one one one, one one one one⟧"},
	{"card then spoken expiry and cvv", "text", "it's ⟦card:five two zero zero eight two eight two eight two eight two eight two one zero⟧ and the expiration is ⟦expiry:twelve twenty seven⟧ and the security code is ⟦cvv:one two three⟧"},
	{"card expiry month name", "text", "⟦card:6200 0000 0000 0005⟧, expires ⟦expiry:December 2027⟧"},
	{"card expiry oh four", "text", "card ⟦card:4000 0566 5566 5556⟧. The expiration date is ⟦expiry:oh four twenty six⟧."},
	{"card valid thru", "text", "⟦card:4532 0151 1283 0366⟧ valid thru ⟦expiry:11/26⟧, and the CVV is ⟦cvv:four five six⟧"},
	{"card three digit code on the back", "text", "⟦card:5424 1802 7979 1732⟧ ... and the three digit code on the back is ⟦cvv:nine eight seven⟧"},
	// Cards split across segments and words.
	{"card split over segments", "segments", "Caller: the card number is ⟦card:4111 1111|1111 1111⟧|Agent: thank you"},
	{"card spoken over segments", "segments", "it's ⟦card:six zero one one, zero zero zero nine,|nine zero one three, nine four two four⟧.|okay"},
	{"card split over three segments", "segments", "⟦card:3530 1113|3330|0000⟧ and that's it"},
	{"card in words", "words", "my card is ⟦card:6011 1111 1111 1117⟧ thanks"},
	{"card spoken in words", "words", "it is ⟦card:five five five five five five five five five five five five four four four four⟧ yes"},
	{"card and expiry in words", "words", "⟦card:4111 1111 1111 1111⟧ expires ⟦expiry:12/27⟧ ok"},

	// SSNs.
	{"ssn dashed", "text", "my social is ⟦ssn:123-45-6789⟧"},
	{"ssn dashed without context", "text", "on file: ⟦ssn:536-22-1234⟧."},
	{"ssn spaced", "text", "Social security number ⟦ssn:219 09 9999⟧ right"},
	{"ssn run together", "text", "SSN ⟦ssn:078051120⟧"},
	{"ssn spelled", "text", "my social security number is ⟦ssn:five three six, two two, one two three four⟧"},
	{"ssn spelled flat", "text", "the social is ⟦ssn:two eight seven six five four three two one⟧ okay"},
	{"ssn with fillers", "text", "social, it's uh ⟦ssn:two eight seven, six five, four three two one⟧"},
	{"ssn over segments", "segments", "and my social is ⟦ssn:287 65|4321⟧|thanks"},
	{"ssn in words", "words", "SSN is ⟦ssn:one two three four five six seven eight nine⟧ thanks"},
	{"ssn last", "text", "for verification, social security ⟦ssn:123 45 6789⟧ and date of birth ⟦date:03/15/1985⟧"},

	// E-mail and phones.
	{"email written", "text", "send it to ⟦email:john.doe@example.com⟧ please"},
	{"email plus and subdomain", "text", "it's ⟦email:m_rodriguez+billing@mail.company.co.uk⟧"},
	{"email spoken", "text", "it's ⟦email:jane dot smith at gmail dot com⟧ all lower case"},
	{"phone nanp parens", "text", "call me back at ⟦phone:(415) 555-2671⟧"},
	{"phone nanp dashed", "text", "my number is ⟦phone:415-555-2671⟧ after five"},
	{"phone dotted", "text", "fax ⟦phone:212.555.0123⟧"},
	{"phone toll free", "text", "the number was ⟦phone:1-800-555-0199⟧"},
	{"phone e164", "text", "reach me at ⟦phone:+14155552671⟧"},
	{"phone international", "text", "my UK mobile is ⟦phone:+44 20 7946 0958⟧"},
	{"phone spoken", "text", "yeah it's ⟦phone:four one five, five five five, two six seven one⟧"},
	{"phone uk national", "text", "my phone is ⟦phone:020 7946 0958⟧"},

	// Near misses.
	{"order number failing luhn", "text", "your order number is ⟦order:4111 1111 1111 1112⟧"},
	{"order number run together", "text", "order ⟦order:5555555555554445⟧ shipped yesterday"},
	{"order number luhn-valid", "text", "the order number is ⟦order:4532 0151 1283 0366⟧, can you check it"},
	{"random sixteen digits", "text", "the code on the box says ⟦id:1234 5678 9012 3456⟧"},
	{"number starting with 7", "text", "the voucher ⟦id:7712 3456 7890 1234⟧ expired"},
	{"amounts", "text", "you were charged ⟦amount:$1,234.56⟧ and then ⟦amount:$89.99⟧ on ⟦date:12/27/2024⟧"},
	{"date not next to a card", "text", "my appointment is on ⟦date:12/27⟧ at 10:30, and the bill from ⟦date:12/27/2024⟧"},
	{"date next to a card", "text", "I used ⟦card:4111 1111 1111 1111⟧ on ⟦date:12/27/2024⟧ for the order"},
	{"ups tracking", "text", "tracking number ⟦tracking:1Z999AA10123456784⟧"},
	{"usps tracking", "text", "the tracking number is ⟦tracking:9400 1000 0000 0000 0000 00⟧"},
	{"case number", "text", "case number ⟦id:00123456789⟧ and reference ⟦id:778899001122334⟧"},
	{"invoice", "text", "invoice ⟦id:2024-001234⟧ is overdue"},
	{"phone-like order id", "text", "confirmation number ⟦order:212 555 0187⟧"},
	{"phone-like order id dashed", "text", "order id ⟦order:415-555-2671⟧ was cancelled"},
	{"employee id", "text", "my employee id is ⟦id:123456789⟧"},
	{"invalid ssn area 000", "text", "SSN ⟦invalid-ssn:000-12-3456⟧"},
	{"invalid ssn area 666", "text", "SSN ⟦invalid-ssn:666-12-3456⟧"},
	{"invalid ssn area 9xx", "text", "social ⟦invalid-ssn:912-34-5678⟧"},
	{"invalid ssn group 00", "text", "social ⟦invalid-ssn:123-00-4567⟧"},
	{"invalid ssn serial 0000", "text", "social ⟦invalid-ssn:123-45-0000⟧"},
	{"spoken amount", "text", "it comes to ⟦amount:two hundred forty nine dollars and ninety nine cents⟧"},
	{"zip and time", "text", "zip is ⟦id:94105⟧ and I'll be there at ⟦date:10:30⟧"},
	{"order over segments", "segments", "order number ⟦order:5555 5555|5555 4445⟧|okay"},
	{"account number like a phone", "text", "my account number is ⟦account:2125550187⟧"},
	{"loyalty number luhn-valid", "text", "member number ⟦id:6011 0009 9013 9424⟧"},

	// Hard cases, kept to measure what the rules miss.
	{"two cards", "text", "first ⟦card:4111111111111111⟧ then ⟦card:5105 1051 0510 5100⟧"},
	{"email uppercase", "text", "⟦email:JOHN.DOE@EXAMPLE.COM⟧"},
	{"email spoken with full name", "text", "it's ⟦email:john smith at gmail dot com⟧"},
	{"phone with extension", "text", "call ⟦phone:415-555-2671⟧ ext 22"},
	{"phone seven digits", "text", "my phone is ⟦phone:five five five, one two three four⟧"},
	{"phone uk mobile without context", "text", "it's ⟦phone:07700 900123⟧"},
	{"expiry after speaker label", "segments", "Caller: ⟦card:4111 1111 1111 1111⟧|Agent: and the expiration?|Caller: ⟦expiry:twelve twenty seven⟧."},
	{"cvv asked by the agent", "segments", "⟦card:4111 1111 1111 1111⟧|Agent: what's the code on the back?|Caller: it's ⟦cvv:123⟧"},
}

// mustNotRedact are the near misses the test fails on; others (an id, an
// account number, an invalid SSN) redacted only lower precision.
var mustNotRedact = []Type{"order", "date", "tracking", "amount"}

var markup = regexp.MustCompile(`⟦([a-z-]+):([^⟧]*)⟧`)

// unmark strips the marks and returns the text and the marked spans.
func unmark(s string) (string, []Span) {
	var b strings.Builder
	var spans []Span
	at := 0
	for _, m := range markup.FindAllStringSubmatchIndex(s, -1) {
		b.WriteString(s[at:m[0]])
		start := b.Len()
		b.WriteString(s[m[4]:m[5]])
		spans = append(spans, Span{Type: Type(s[m[2]:m[3]]), Start: start, End: b.Len()})
		at = m[1]
	}
	b.WriteString(s[at:])
	return b.String(), spans
}

// corpusDoc builds the vCon a case is read in and returns it with the
// offset of each segment (or word) in the case's text.
func corpusDoc(kind, text string) (map[string]any, []int) {
	var elems []any
	var offsets []int
	at := 0
	sep := "|"
	if kind == "words" {
		sep = " "
	}
	for i, p := range strings.Split(text, sep) {
		offsets = append(offsets, at)
		at += len(p) + 1
		t := float64(i)
		if kind == "words" {
			elems = append(elems, map[string]any{"word": strings.ToLower(p), "punctuated_word": p, "start": t, "end": t + 0.5})
		} else {
			elems = append(elems, map[string]any{"start": t, "end": t + 1, "text": p})
		}
	}
	switch kind {
	case "words":
		return map[string]any{"analysis": []any{map[string]any{"type": "transcript", "body": map[string]any{"words": elems}}}}, offsets
	case "segments":
		return map[string]any{"analysis": []any{map[string]any{"type": "transcript", "body": map[string]any{"segments": elems}}}}, offsets
	}
	return map[string]any{"dialog": []any{map[string]any{"type": "text", "body": text}}}, nil
}

var segmentPath = regexp.MustCompile(`\.segments\[(\d+)\]\.text$`)

// detections runs a case through RedactDocument and returns what was found
// as spans of the case's text, one per detection.
func detections(t *testing.T, r *Redactor, kind, text string) []Span {
	doc, offsets := corpusDoc(kind, text)
	rep, err := r.RedactDocument(context.Background(), doc)
	if err != nil {
		t.Fatal(err)
	}
	byGroup := map[int]*Span{}
	var order []int
	for _, f := range rep.Findings {
		start, end := f.Start, f.End
		if m := segmentPath.FindStringSubmatch(f.Path); m != nil {
			i, _ := strconv.Atoi(m[1])
			start, end = start+offsets[i], end+offsets[i]
		}
		if s, ok := byGroup[f.Group]; ok {
			s.Start, s.End = min(s.Start, start), max(s.End, end)
			continue
		}
		byGroup[f.Group] = &Span{Type: f.Type, Start: start, End: end}
		order = append(order, f.Group)
	}
	out := make([]Span, 0, len(order))
	for _, g := range order {
		out = append(out, *byGroup[g])
	}
	return out
}

// covered reports whether detections of w's type cover every letter and
// digit of w: a card found but for its last group is a miss.
func covered(text string, w Span, got []Span) bool {
	for i := w.Start; i < w.End; i++ {
		if !isAlnum(text[i]) {
			continue
		}
		if !slices.ContainsFunc(got, func(g Span) bool { return g.Type == w.Type && g.Start <= i && i < g.End }) {
			return false
		}
	}
	return true
}

func overlaps(a, b Span) bool { return a.Start < b.End && b.Start < a.End }

type score struct{ expected, found, truePos, matched int }

func (s score) precision() float64 {
	if s.found == 0 {
		return 1
	}
	return float64(s.truePos) / float64(s.found)
}

func (s score) recall() float64 {
	if s.expected == 0 {
		return 1
	}
	return float64(s.matched) / float64(s.expected)
}

// TestCorpus measures precision and recall per type on the corpus and
// holds the line docs/compliance.md promises: every card number and SSN
// found, no near miss redacted.
func TestCorpus(t *testing.T) {
	r := mustRedactor(t, Config{})
	scores := map[Type]*score{}
	for _, typ := range BuiltinTypes {
		scores[typ] = &score{}
	}
	for _, c := range corpus {
		text, want := unmark(c.text)
		got := detections(t, r, c.kind, text)
		for _, w := range want {
			if w.Type == Card && !luhn(strings.Map(keepDigits, spokenDigits(text[w.Start:w.End]))) {
				t.Errorf("%s: corpus card %q is not Luhn-valid", c.name, text[w.Start:w.End])
			}
			s, isType := scores[w.Type]
			if !isType {
				for _, g := range got {
					if overlaps(g, w) && slices.Contains(mustNotRedact, w.Type) {
						t.Errorf("%s: near miss %s %q redacted as %s", c.name, w.Type, text[w.Start:w.End], g.Type)
					}
				}
				continue
			}
			s.expected++
			if covered(text, w, got) {
				s.matched++
			} else {
				t.Logf("%s: missed %s %q", c.name, w.Type, text[w.Start:w.End])
			}
		}
		for _, g := range got {
			s, ok := scores[g.Type]
			if !ok {
				continue
			}
			s.found++
			if slices.ContainsFunc(want, func(w Span) bool { return w.Type == g.Type && overlaps(g, w) }) {
				s.truePos++
			} else {
				t.Logf("%s: false %s %q", c.name, g.Type, text[g.Start:g.End])
			}
		}
	}
	t.Logf("corpus: %d cases", len(corpus))
	t.Logf("| type | expected | found | true | precision | recall |")
	t.Logf("|---|---|---|---|---|---|")
	for _, typ := range BuiltinTypes {
		s := scores[typ]
		t.Logf("| %s | %d | %d | %d | %.1f%% | %.1f%% |", typ, s.expected, s.found, s.truePos, 100*s.precision(), 100*s.recall())
	}
	for _, typ := range []Type{Card, SSN} {
		if s := scores[typ]; s.recall() < 1 {
			t.Errorf("%s recall %.1f%%, want 100%%", typ, 100*s.recall())
		}
	}
	if len(corpus) < 40 {
		t.Errorf("corpus has %d cases; keep at least 40", len(corpus))
	}
}

func keepDigits(r rune) rune {
	if r >= '0' && r <= '9' {
		return r
	}
	return -1
}

// spokenDigits turns a marked card back into digits, for the corpus's own
// Luhn check.
func spokenDigits(s string) string {
	toks := tokenize(s)
	var b strings.Builder
	for _, it := range items(s, toks) {
		b.WriteString(it.digits)
	}
	return b.String()
}

func TestCorpusMarkup(t *testing.T) {
	text, spans := unmark("a ⟦card:4111⟧ b ⟦ssn:x⟧")
	if text != "a 4111 b x" || fmt.Sprint(spans) != "[{card 2 6} {ssn 9 10}]" {
		t.Errorf("unmark = %q %v", text, spans)
	}
}
