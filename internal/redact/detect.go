package redact

import (
	"regexp"
	"sort"
	"strings"
)

// scan is one text being read by the built-in detectors.
type scan struct {
	text    string
	toks    []token
	its     []item
	runs    []run
	used    []bool // items already taken by a span
	tokItem []int  // item index of each token, or -1
	spans   []Span
}

func newScan(text string) *scan {
	s := &scan{text: text, toks: tokenize(text)}
	s.its = items(text, s.toks)
	s.runs = runs(text, s.toks, s.its)
	s.used = make([]bool, len(s.its))
	s.tokItem = make([]int, len(s.toks))
	for i := range s.tokItem {
		s.tokItem[i] = -1
	}
	for i, it := range s.its {
		for k := it.first; k <= it.last; k++ {
			s.tokItem[k] = i
		}
	}
	return s
}

func (s *scan) take(t Type, i, j int) Span {
	for k := i; k <= j; k++ {
		s.used[k] = true
	}
	sp := Span{Type: t, Start: s.its[i].start, End: s.its[j].end}
	s.spans = append(s.spans, sp)
	return sp
}

// mark takes the items inside text[start:end] without adding a span.
func (s *scan) mark(start, end int) {
	i := sort.Search(len(s.its), func(i int) bool { return s.its[i].start >= start })
	for ; i < len(s.its) && s.its[i].end <= end; i++ {
		s.used[i] = true
	}
}

func (s *scan) free(i, j int) bool {
	for k := i; k <= j; k++ {
		if s.used[k] {
			return false
		}
	}
	return true
}

// builtin runs the enabled built-in detectors. Cards go first, so that
// their digits are not read again as a phone or an SSN, and the CVV and
// expiry are looked for only next to a card.
func (r *Redactor) builtin(text string) []Span {
	s := newScan(text)
	if r.enabled[Card] {
		s.contiguousCards()
		for _, c := range s.cards() {
			if r.enabled[Expiry] || r.enabled[CVV] {
				s.cardExtras(c, r.enabled[Expiry], r.enabled[CVV])
			}
		}
	}
	if r.enabled[SSN] {
		s.ssns()
	}
	if r.enabled[Phone] {
		s.phones()
	}
	if r.enabled[Email] {
		s.emails()
	}
	return s.spans
}

// luhn reports whether a digit string passes the Luhn check.
func luhn(d string) bool {
	sum, double := 0, false
	for i := len(d) - 1; i >= 0; i-- {
		n := int(d[i] - '0')
		if double {
			n *= 2
			if n > 9 {
				n -= 9
			}
		}
		sum += n
		double = !double
	}
	return sum%10 == 0
}

// cards finds payment card numbers: 13 to 19 digits of whole items in one
// run, Luhn-valid, starting with 2 to 6 (the industries that issue payment
// cards: Mastercard 2 and 5, Amex and Diners 3, Visa 4, Discover and
// UnionPay 6). From each start the longest valid window is taken. A run
// introduced as an order, tracking or similar number is not a card.
func (s *scan) cards() []Span {
	var found []Span
	for _, r := range s.runs {
		if contextBefore(s.toks, s.its[r.lo].first, 4) == ctxOther {
			continue
		}
		for i := r.lo; i < r.hi; {
			best, n := -1, 0
			var d strings.Builder
			for j := i; j < r.hi; j++ {
				n += len(s.its[j].digits)
				if n > 19 {
					break
				}
				d.WriteString(s.its[j].digits)
				if n >= 13 && d.String()[0] >= '2' && d.String()[0] <= '6' && luhn(d.String()) {
					best = j
				}
			}
			if best < 0 {
				i++
				continue
			}
			found = append(found, s.take(Card, i, best))
			i = best + 1
		}
	}
	return found
}

// contiguousCards is the backstop: 13 to 19 digits written together that
// pass the Luhn check are a card whatever stands around them (an "order"
// before, letters touching them, a leading 1), because a PCI scan of the
// output would flag them all the same. Only grouped and spoken numbers are
// judged by their context.
func (s *scan) contiguousCards() {
	t := s.text
	for i := 0; i < len(t); {
		if !isDigit(t[i]) {
			i++
			continue
		}
		j := i
		for j < len(t) && isDigit(t[j]) {
			j++
		}
		if n := j - i; n >= 13 && n <= 19 && luhn(t[i:j]) {
			s.spans = append(s.spans, Span{Type: Card, Start: i, End: j})
			s.mark(i, j)
		}
		i = j
	}
}

// validSSN applies the SSA's rules: no area 000, 666 or 900-999, no group
// 00, no serial 0000.
func validSSN(d string) bool {
	if len(d) != 9 {
		return false
	}
	area, group, serial := d[:3], d[3:5], d[5:]
	return area != "000" && area != "666" && area[0] != '9' && group != "00" && serial != "0000"
}

// ssns finds social security numbers: nine digits, valid ranges. Written
// as 3-2-4 groups (123-45-6789, 123 45 6789) they need no context; any
// other way (123456789, spoken digits) they need "social", "SSN" or
// "security number" in the words before, as a bare nine-digit number is as
// often an account or order number.
func (s *scan) ssns() {
	for _, r := range s.runs {
		ctx := contextBefore(s.toks, s.its[r.lo].first, 8)
		if ctx == ctxOther || ctx == ctxPhone {
			continue
		}
		for i := r.lo; i < r.hi; i++ {
			n := 0
			for j := i; j < r.hi && s.free(j, j); j++ {
				n += len(s.its[j].digits)
				if n > 9 {
					break
				}
				if n < 9 {
					continue
				}
				if validSSN(digitsOf(s.its, i, j)) && (ctx == ctxSSN || s.grouped324(i, j)) {
					s.take(SSN, i, j)
					i = j
				}
				break
			}
		}
	}
}

// grouped324 reports whether its[i..j] is written 3-2-4 with dashes or
// single spaces.
func (s *scan) grouped324(i, j int) bool {
	if j != i+2 {
		return false
	}
	for k, want := range []int{3, 2, 4} {
		it := s.its[i+k]
		if it.spoken || len(it.digits) != want {
			return false
		}
		if k > 0 {
			if sep := s.text[s.its[i+k-1].end:it.start]; sep != "-" && sep != " " {
				return false
			}
		}
	}
	return true
}

var (
	// nanpWritten is a North American number as people type it:
	// +1 (415) 555-2671, 415.555.2671, 1-800-555-0199, 4155552671.
	nanpWritten = regexp.MustCompile(`(?:\+?1[ .-]?)?(?:\(\d{3}\)[ .-]?|\d{3}[ .-]?)\d{3}[ .-]?\d{4}`)
	// intlWritten is E.164 with the separators people add: +44 20 7946 0958.
	intlWritten = regexp.MustCompile(`\+[1-9](?:[ .-]?\(?\d\)?){7,14}`)
	digitsOnly  = strings.NewReplacer(" ", "", ".", "", "-", "", "(", "", ")", "", "+", "")
)

// phones finds phone numbers: written E.164 and North American formats
// anywhere (unless introduced as an order or similar number), spoken ten
// or eleven digit North American numbers, and, after a word such as
// "phone" or "call", national numbers that start with 0.
func (s *scan) phones() {
	// The regular expressions run only over stretches of digits and phone
	// punctuation long enough to hold a number: most of a transcript is
	// words, and running them over all of it was most of the cost.
	for _, w := range windows(s.text, phoneChar, 8) {
		for _, m := range intlWritten.FindAllStringIndex(s.text[w[0]:w[1]], -1) {
			if start, end := w[0]+m[0], w[0]+m[1]; s.bounded(start, end) {
				s.spans = append(s.spans, Span{Type: Phone, Start: start, End: end})
			}
		}
		for _, m := range nanpWritten.FindAllStringIndex(s.text[w[0]:w[1]], -1) {
			start, end := w[0]+m[0], w[0]+m[1]
			if !s.bounded(start, end) {
				continue
			}
			d := digitsOnly.Replace(s.text[start:end])
			if len(d) == 11 {
				d = d[1:]
			}
			if d[0] < '2' || d[3] < '2' {
				continue
			}
			if contextBefore(s.toks, tokenAt(s.toks, start), 4) == ctxOther {
				continue
			}
			s.spans = append(s.spans, Span{Type: Phone, Start: start, End: end})
		}
	}
	for _, r := range s.runs {
		ctx := contextBefore(s.toks, s.its[r.lo].first, 6)
		if ctx == ctxOther {
			continue
		}
		for i := r.lo; i < r.hi; i++ {
			n := 0
			for j := i; j < r.hi && s.free(j, j); j++ {
				n += len(s.its[j].digits)
				if n > 11 {
					break
				}
				d := digitsOf(s.its, i, j)
				spoken := false
				for k := i; k <= j; k++ {
					spoken = spoken || s.its[k].spoken
				}
				nanp := (n == 10 || n == 11 && d[0] == '1') && spoken && nanpValid(d)
				national := ctx == ctxPhone && (n == 10 || n == 11) && d[0] == '0'
				if nanp || national {
					s.take(Phone, i, j)
					i = j
					break
				}
			}
		}
	}
}

func nanpValid(d string) bool {
	if len(d) == 11 {
		d = d[1:]
	}
	return len(d) == 10 && d[0] >= '2' && d[3] >= '2'
}

// bounded reports whether text[start:end] stands alone: no letter or digit
// touches it, and it is not the middle of a longer dashed or dotted
// number.
func (s *scan) bounded(start, end int) bool {
	t := s.text
	if start > 0 && (isAlnum(t[start-1]) || t[start-1] == '+' ||
		start > 1 && (t[start-1] == '-' || t[start-1] == '.' || t[start-1] == '/') && isDigit(t[start-2])) {
		return false
	}
	if end < len(t) && (isAlnum(t[end]) ||
		end+1 < len(t) && (t[end] == '-' || t[end] == '.' || t[end] == '/') && isDigit(t[end+1])) {
		return false
	}
	return true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlnum(c byte) bool { return isDigit(c) || c|0x20 >= 'a' && c|0x20 <= 'z' || c == '_' }

var (
	emailWritten = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}`)
	// emailSpoken is an address read out: "john dot smith at gmail dot com".
	emailSpoken = regexp.MustCompile(`(?i)\b[a-z0-9_%+\-]+(?:\s+(?:dot|underscore|dash)\s+[a-z0-9_%+\-]+)*\s+at\s+[a-z0-9\-]+(?:\s+dot\s+[a-z0-9\-]+)*\s+dot\s+(?:com|net|org|edu|gov|io|co|us|uk|ca|de|fr|info|biz|me|mil)\b`)
)

func (s *scan) emails() {
	for at := 0; at < len(s.text); {
		i := strings.IndexByte(s.text[at:], '@')
		if i < 0 {
			break
		}
		a, b := at+i, at+i+1
		for a > 0 && emailChar(s.text[a-1]) {
			a--
		}
		for b < len(s.text) && emailChar(s.text[b]) {
			b++
		}
		for _, m := range emailWritten.FindAllStringIndex(s.text[a:b], -1) {
			s.spans = append(s.spans, Span{Type: Email, Start: a + m[0], End: a + m[1]})
		}
		at = b
	}
	// A spoken address has an "at" and, after it, a "dot": read a few words
	// either side.
	for k, t := range s.toks {
		if t.kind != tokWord || t.lower != "at" || !s.wordWithin(k+1, spokenDomainWords, "dot") {
			continue
		}
		from := s.toks[max(0, k-spokenLocalWords)].start
		to := s.toks[min(len(s.toks)-1, k+spokenDomainWords)].end
		for _, m := range emailSpoken.FindAllStringIndex(s.text[from:to], -1) {
			if from+m[0] <= t.start && t.end <= from+m[1] {
				s.spans = append(s.spans, Span{Type: Email, Start: from + m[0], End: from + m[1]})
			}
		}
	}
}

func (s *scan) wordWithin(k, n int, w string) bool {
	for ; k < len(s.toks) && n > 0; k, n = k+1, n-1 {
		if s.toks[k].lower == w {
			return true
		}
	}
	return false
}

// How far a spoken address reaches around its "at": "john dot q dot
// public at mail dot example dot co dot uk".
const (
	spokenLocalWords  = 9
	spokenDomainWords = 12
)

func phoneChar(c byte) bool {
	return isDigit(c) || c == ' ' || c == '(' || c == ')' || c == '.' || c == '-' || c == '+'
}

func emailChar(c byte) bool {
	return isAlnum(c) || c == '.' || c == '%' || c == '+' || c == '-' || c == '@'
}

// windows returns the maximal stretches of text made of in, trimmed of
// spaces, that are at least min bytes long.
func windows(text string, in func(byte) bool, min int) [][2]int {
	var out [][2]int
	for i := 0; i < len(text); {
		if !in(text[i]) {
			i++
			continue
		}
		j := i
		for j < len(text) && in(text[j]) {
			j++
		}
		a, b := i, j
		for a < b && text[a] == ' ' {
			a++
		}
		for b > a && text[b-1] == ' ' {
			b--
		}
		if b-a >= min {
			out = append(out, [2]int{a, b})
		}
		i = j
	}
	return out
}
