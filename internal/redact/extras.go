package redact

import (
	"regexp"
	"strings"
)

// A CVV or an expiry date is three or four digits like any other; only
// where it stands makes it card data. So they are looked for near a card
// number only: within extrasBefore bytes before it and extrasAfter after
// it, which in a transcript is the agent's next question and its answer.
const (
	extrasBefore = 160
	extrasAfter  = 300
)

var (
	// writtenExpiry is MM/YY or MM/YYYY (also with a dash) at the start of
	// the text it is matched against. Not with a dot: "1.00" is an amount.
	writtenExpiry = regexp.MustCompile(`^(0?[1-9]|1[0-2]) ?[/-] ?(\d{4}|\d{2})`)

	expiryWords = map[string]bool{
		"expires": true, "expiry": true, "expiration": true, "exp": true, "expire": true,
		"expiring": true, "expired": true, "thru": true,
	}
	cvvWords = map[string]bool{"cvv": true, "cvc": true, "cvv2": true, "cvc2": true, "cid": true, "csc": true}
	// codeWords make the next "code" a card security code.
	codeWords = map[string]bool{"security": true, "verification": true, "card": true, "digit": true, "three": true, "four": true}
	// linkWords may stand between a keyword and its value: "the expiration
	// date is", "the code on the back is".
	linkWords = map[string]bool{
		"is": true, "it's": true, "its": true, "it": true, "date": true, "on": true, "in": true, "of": true,
		"the": true, "at": true, "end": true, "number": true, "code": true, "back": true, "that's": true,
		"thats": true, "be": true, "would": true, "will": true, "digits": true, "digit": true, "and": true,
		"my": true, "your": true, "a": true, "reads": true, "says": true, "ok": true, "okay": true,
		"um": true, "uh": true, "so": true, "yeah": true, "yes": true, "sure": true, "date's": true,
	}
	months = map[string]string{
		"january": "01", "jan": "01", "february": "02", "feb": "02", "march": "03", "mar": "03",
		"april": "04", "apr": "04", "may": "05", "june": "06", "jun": "06", "july": "07", "jul": "07",
		"august": "08", "aug": "08", "september": "09", "sept": "09", "sep": "09", "october": "10",
		"oct": "10", "november": "11", "nov": "11", "december": "12", "dec": "12",
	}
)

// cardExtras finds the expiry and CVV of one card: after a keyword
// ("expires", "CVV", "security code") near the card, and, written, right
// after the card number ("4111 1111 1111 1111 12/27 123").
func (s *scan) cardExtras(card Span, expiry, cvv bool) {
	from := tokenAt(s.toks, max(0, card.Start-extrasBefore))
	to := tokenAt(s.toks, card.End+extrasAfter)
	for k := from; k < to && k < len(s.toks); k++ {
		t := s.toks[k]
		lower := t.lower
		if t.kind == tokMixed {
			lower = strings.ToLower(s.text[t.start:t.end])
		}
		switch {
		case expiry && (expiryWords[lower] || lower == "through" && k > 0 && (s.toks[k-1].lower == "valid" || s.toks[k-1].lower == "good")):
			s.expiryAfter(k + 1)
		case cvv && (cvvWords[lower] || lower == "code" && (k > 0 && codeWords[s.toks[k-1].lower] || s.onTheBack(k+1))):
			s.cvvAfter(k + 1)
		}
	}
	// Written right after the number.
	k := tokenAt(s.toks, card.End)
	if k < len(s.toks) && s.toks[k].start >= card.End && gapOnly(s.text[card.End:s.toks[k].start]) {
		if end, ok := s.writtenExpiryAt(k); ok && expiry {
			s.spans = append(s.spans, Span{Type: Expiry, Start: s.toks[k].start, End: end})
			s.mark(s.toks[k].start, end)
			k = tokenAt(s.toks, end)
			if cvv && k < len(s.toks) && s.toks[k].kind == tokDigits && s.toks[k].start >= end && gapOnly(s.text[end:s.toks[k].start]) {
				if n := s.toks[k].end - s.toks[k].start; n == 3 || n == 4 {
					if i := s.tokItem[k]; i >= 0 && s.free(i, i) {
						s.take(CVV, i, i)
					}
				}
			}
		}
	}
}

// gapOnly reports whether the text between two values is only spaces and
// light punctuation.
func gapOnly(gap string) bool {
	return len(gap) <= 3 && strings.Trim(gap, " ,;") == ""
}

// onTheBack reports whether toks[k:] read "on the back".
func (s *scan) onTheBack(k int) bool {
	return k+2 < len(s.toks) && s.toks[k].lower == "on" && s.toks[k+1].lower == "the" && s.toks[k+2].lower == "back"
}

// valueAfter returns the token where a keyword's value starts: after link
// words, or, when the value is not there (the agent asked, the caller
// answers after a speaker label: "expiration? Caller: twelve twenty
// seven"), the first number or month within valueReach words.
func (s *scan) valueAfter(k int) int {
	for n := 0; k < len(s.toks) && n < 6; n++ {
		t := s.toks[k]
		if t.kind != tokWord || !linkWords[t.lower] || s.tokItem[k] >= 0 {
			break
		}
		k++
	}
	for n := 0; k+n < len(s.toks) && n <= valueReach; n++ {
		if t := s.toks[k+n]; s.tokItem[k+n] >= 0 || t.kind == tokDigits || t.kind == tokWord && months[t.lower] != "" {
			return k + n
		}
	}
	return k
}

const valueReach = 6

func (s *scan) writtenExpiryAt(k int) (end int, ok bool) {
	if s.toks[k].kind != tokDigits {
		return 0, false
	}
	start := s.toks[k].start
	// A bounded slice: the matcher's cost grows with its input even when
	// the expression is anchored, and this runs once per card.
	m := writtenExpiry.FindStringSubmatchIndex(s.text[start:min(len(s.text), start+12)])
	if m == nil {
		return 0, false
	}
	end = start + m[1]
	// Neither part of a longer number nor a full date: 12/27/2024 is a day.
	if end < len(s.text) && (isAlnum(s.text[end]) || s.text[end] == '\'' ||
		end+1 < len(s.text) && strings.ContainsRune("/.-", rune(s.text[end])) && isDigit(s.text[end+1])) {
		return 0, false
	}
	return end, true
}

func (s *scan) expiryAfter(k int) {
	k = s.valueAfter(k)
	if k >= len(s.toks) {
		return
	}
	if end, ok := s.writtenExpiryAt(k); ok {
		s.spans = append(s.spans, Span{Type: Expiry, Start: s.toks[k].start, End: end})
		s.mark(s.toks[k].start, end)
		return
	}
	// "December 2027", "March of twenty six".
	if t := s.toks[k]; t.kind == tokWord && months[t.lower] != "" {
		y := k + 1
		if y < len(s.toks) && s.toks[y].lower == "of" {
			y++
		}
		if y < len(s.toks) && s.tokItem[y] >= 0 {
			if i, j, d := s.gather(s.tokItem[y], 4); (len(d) == 2 || len(d) == 4) && s.free(i, j) {
				s.spans = append(s.spans, Span{Type: Expiry, Start: t.start, End: s.its[j].end})
				s.mark(t.start, s.its[j].end)
			}
		}
		return
	}
	// "twelve twenty seven", "one two slash two seven", "oh four twenty six".
	if i := s.tokItem[k]; i >= 0 {
		j, d := s.gatherExpiry(i)
		if j >= i && s.free(i, j) && plausibleExpiry(d) {
			s.take(Expiry, i, j)
		}
	}
}

// gatherExpiry reads up to six digits from its[i], across "slash" and "/".
func (s *scan) gatherExpiry(i int) (int, string) {
	d := s.its[i].digits
	j := i
	for j+1 < len(s.its) && len(d)+len(s.its[j+1].digits) <= 6 {
		gap := s.text[s.its[j].end:s.its[j+1].start]
		g := strings.TrimSpace(strings.ToLower(gap))
		if g != "" && g != "/" && g != "slash" && g != "-" && g != "," {
			break
		}
		j++
		d += s.its[j].digits
	}
	return j, d
}

// plausibleExpiry accepts MYY, MMYY and MMYYYY with a real month.
func plausibleExpiry(d string) bool {
	var month string
	switch len(d) {
	case 3:
		month = "0" + d[:1]
	case 4:
		month = d[:2]
	case 6:
		month = d[:2]
		if d[2:4] != "20" {
			return false
		}
	default:
		return false
	}
	return month >= "01" && month <= "12"
}

func (s *scan) cvvAfter(k int) {
	k = s.valueAfter(k)
	if k >= len(s.toks) || s.tokItem[k] < 0 {
		return
	}
	i, j, d := s.gather(s.tokItem[k], 4)
	if (len(d) == 3 || len(d) == 4) && s.free(i, j) {
		s.take(CVV, i, j)
	}
}

// gather reads items from its[i] while they continue one number and the
// digits stay within limit.
func (s *scan) gather(i, limit int) (int, int, string) {
	d := s.its[i].digits
	if len(d) > limit {
		return i, i, d
	}
	j := i
	for j+1 < len(s.its) && len(d)+len(s.its[j+1].digits) <= limit && continues(s.text, s.toks, s.its[j], s.its[j+1]) {
		j++
		d += s.its[j].digits
	}
	return i, j, d
}
