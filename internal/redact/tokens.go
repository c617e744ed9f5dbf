package redact

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Transcripts do not write numbers the way forms do: a caller reads a card
// as "four one one one, double one, ...", a recogniser writes "4111 1111"
// in one segment and the rest in the next, and smart formatting turns some
// of it back into digits. So numbers are not found with one regular
// expression but in three steps over the text:
//
//  1. tokens: maximal runs of letters, digits and apostrophes;
//  2. items: tokens that stand for digits ("4111", "four", "oh", "double
//     five", "twenty seven", "forty one hundred");
//  3. runs: items separated only by spaces, dashes, parentheses, a comma or
//     full stop before a space, or fillers ("uh", "um").
//
// Detectors then choose windows of whole items inside a run. A window
// never cuts an item: a 14-digit order number is one item and is judged
// whole, so a Luhn-valid 13-digit piece of it is never taken for a card.

type tokenKind uint8

const (
	tokWord   tokenKind = iota // letters (and apostrophes) only
	tokDigits                  // ASCII digits only
	tokMixed                   // letters and digits: an id, a hash, "21T17"
)

type token struct {
	start, end int
	kind       tokenKind
	lower      string // lower-cased text, for words only
}

// tokenize splits text into tokens. Offsets are bytes.
func tokenize(text string) []token {
	toks := make([]token, 0, len(text)/5+1)
	i := 0
	for i < len(text) {
		r, size := utf8.DecodeRuneInString(text[i:])
		if !isTokenRune(r) {
			i += size
			continue
		}
		start := i
		hasDigit, hasLetter := false, false
		for i < len(text) {
			r, size = utf8.DecodeRuneInString(text[i:])
			if !isTokenRune(r) {
				break
			}
			switch {
			case r >= '0' && r <= '9':
				hasDigit = true
			case r != '\'' && r != '’':
				hasLetter = true
			}
			i += size
		}
		t := token{start: start, end: i}
		switch {
		case hasDigit && hasLetter:
			t.kind = tokMixed
		case hasDigit:
			t.kind = tokDigits
		default:
			t.kind = tokWord
			t.lower = strings.ToLower(text[start:i])
		}
		toks = append(toks, t)
	}
	return toks
}

func isTokenRune(r rune) bool {
	return r < utf8.RuneSelf && (r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '\'') ||
		r >= utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '’')
}

var digitWords = map[string]byte{
	"zero": '0', "oh": '0', "o": '0', "nought": '0', "naught": '0',
	"one": '1', "two": '2', "three": '3', "four": '4', "five": '5',
	"six": '6', "seven": '7', "eight": '8', "nine": '9',
}

var teenWords = map[string]string{
	"ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14",
	"fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19",
}

var tensWords = map[string]byte{
	"twenty": '2', "thirty": '3', "forty": '4', "fourty": '4', "fifty": '5',
	"sixty": '6', "seventy": '7', "eighty": '8', "ninety": '9',
}

var repeatWords = map[string]int{"double": 2, "triple": 3, "treble": 3}

// fillers may stand inside a spoken number without ending it.
var fillers = map[string]bool{"uh": true, "um": true, "er": true, "erm": true, "ah": true, "hmm": true, "mm": true}

// item is one or more tokens that stand for a digit string.
type item struct {
	first, last int // token indexes
	start, end  int // bytes
	digits      string
	spoken      bool // made of words, not written digits
}

// items reads the digit-bearing tokens of text.
func items(text string, toks []token) []item {
	var out []item
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.kind == tokDigits {
			out = append(out, item{first: i, last: i, start: t.start, end: t.end, digits: text[t.start:t.end]})
			continue
		}
		if t.kind != tokWord {
			continue
		}
		if it, ok := spokenItem(text, toks, i); ok {
			out = append(out, it)
			i = it.last
		}
	}
	return out
}

// spokenItem reads a number word at toks[i], with what it takes after it
// ("double five", "twenty seven", "four hundred twelve").
func spokenItem(text string, toks []token, i int) (item, bool) {
	w := toks[i].lower
	it := item{first: i, last: i, start: toks[i].start, end: toks[i].end, spoken: true}
	next := func(j int) (token, bool) {
		if j >= len(toks) || !joined(text, toks[j-1].end, toks[j].start) {
			return token{}, false
		}
		return toks[j], true
	}
	switch {
	case w == "o" || w == "oh":
		// "oh" and "o" are zero only beside another digit: "oh, I see" and
		// "o" as a letter are not numbers.
		if !numericNeighbour(text, toks, i) {
			return item{}, false
		}
		it.digits = "0"
	case digitWords[w] != 0:
		it.digits = string(digitWords[w])
	case teenWords[w] != "":
		it.digits = teenWords[w]
	case tensWords[w] != 0:
		it.digits = string(tensWords[w]) + "0"
		if t, ok := next(i + 1); ok && t.kind == tokWord && digitWords[t.lower] != 0 && t.lower != "o" && t.lower != "oh" && t.lower != "zero" {
			it.digits = string(tensWords[w]) + string(digitWords[t.lower])
			it.last, it.end = i+1, t.end
		}
	case repeatWords[w] != 0:
		t, ok := next(i + 1)
		if !ok {
			return item{}, false
		}
		var d byte
		switch {
		case t.kind == tokWord && digitWords[t.lower] != 0:
			d = digitWords[t.lower]
		case t.kind == tokDigits && t.end-t.start == 1:
			d = text[t.start]
		default:
			return item{}, false
		}
		it.digits = strings.Repeat(string(d), repeatWords[w])
		it.last, it.end = i+1, t.end
	default:
		return item{}, false
	}
	// "forty one hundred", "four hundred twelve": a hundred after one or two
	// digits, optionally followed by one or two more.
	if len(it.digits) <= 2 {
		if t, ok := next(it.last + 1); ok && t.kind == tokWord && t.lower == "hundred" {
			it.digits += "00"
			it.last, it.end = it.last+1, t.end
			if t2, ok := next(it.last + 1); ok && t2.kind == tokWord && t2.lower != "o" && t2.lower != "oh" {
				if tail, ok := spokenItem(text, toks, it.last+1); ok && len(tail.digits) <= 2 && repeatWords[t2.lower] == 0 {
					it.digits = it.digits[:len(it.digits)-len(tail.digits)] + tail.digits
					it.last, it.end = tail.last, tail.end
				}
			}
		}
	}
	return it, true
}

func numericNeighbour(text string, toks []token, i int) bool {
	isNum := func(t token) bool {
		return t.kind == tokDigits || t.kind == tokWord && t.lower != "o" && t.lower != "oh" &&
			(digitWords[t.lower] != 0 || teenWords[t.lower] != "" || tensWords[t.lower] != 0 || repeatWords[t.lower] != 0)
	}
	// Look past a run of o/oh both ways ("four oh oh one", "one oh oh"),
	// not far: a text of a thousand o's must not cost a million steps.
	for j := i - 1; j >= 0 && j >= i-ohReach && joined(text, toks[j].end, toks[j+1].start); j-- {
		if isNum(toks[j]) {
			return true
		}
		if toks[j].lower != "o" && toks[j].lower != "oh" {
			break
		}
	}
	for j := i + 1; j < len(toks) && j <= i+ohReach && joined(text, toks[j-1].end, toks[j].start); j++ {
		if isNum(toks[j]) {
			return true
		}
		if toks[j].lower != "o" && toks[j].lower != "oh" {
			return false
		}
	}
	return false
}

const ohReach = 8

func joined(text string, from, to int) bool {
	for k := from; k < to; k++ {
		switch c := text[k]; c {
		case ' ', '\t', '\n', '\r', '-', '(', ')':
		case ',', '.':
			if k+1 < to && !isSpace(text[k+1]) {
				return false
			}
			if k+1 == to {
				return false // "1,234" or "1.5"
			}
		default:
			if c >= utf8.RuneSelf {
				r, size := utf8.DecodeRuneInString(text[k:])
				if r == '\u2013' || r == '\u2014' || r == '\u00a0' { // en/em dash, no-break space
					k += size - 1
					continue
				}
			}
			return false
		}
	}
	return true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// run is a maximal sequence of items, its[lo:hi], that read as one number.
type run struct{ lo, hi int }

// digitsOf is the digit string of its[i..j].
func digitsOf(its []item, i, j int) string {
	var b strings.Builder
	for k := i; k <= j; k++ {
		b.WriteString(its[k].digits)
	}
	return b.String()
}

// runs groups items: two items are in one run when only separators and
// fillers stand between them.
func runs(text string, toks []token, its []item) []run {
	var out []run
	for i := 0; i < len(its); {
		j := i + 1
		for j < len(its) && continues(text, toks, its[j-1], its[j]) {
			j++
		}
		out = append(out, run{lo: i, hi: j})
		i = j
	}
	return out
}

func continues(text string, toks []token, a, b item) bool {
	for k := a.last + 1; k < b.first; k++ {
		if toks[k].kind != tokWord || !fillers[toks[k].lower] {
			return false
		}
	}
	for k := a.last; k < b.first; k++ {
		if !joined(text, toks[k].end, toks[k+1].start) {
			return false
		}
	}
	return true
}

// topic says what the words just before a position talk about: the
// nearest keyword within a few words wins, so "order 12, card 4111..."
// reads as a card and "order number 4111..." as an order.
type topic uint8

const (
	ctxNone topic = iota
	ctxCard
	ctxSSN
	ctxPhone
	ctxOther // an order, tracking, confirmation or similar number
)

var contextWords = map[string]topic{
	"card": ctxCard, "visa": ctxCard, "mastercard": ctxCard, "amex": ctxCard, "discover": ctxCard,
	"credit": ctxCard, "debit": ctxCard, "pan": ctxCard,
	"social": ctxSSN, "ssn": ctxSSN,
	"phone": ctxPhone, "cell": ctxPhone, "mobile": ctxPhone, "telephone": ctxPhone, "call": ctxPhone,
	"reach": ctxPhone, "callback": ctxPhone, "tel": ctxPhone, "fax": ctxPhone, "text": ctxPhone,
	"order": ctxOther, "tracking": ctxOther, "confirmation": ctxOther, "reference": ctxOther, "ref": ctxOther,
	"invoice": ctxOther, "ticket": ctxOther, "case": ctxOther, "claim": ctxOther, "shipment": ctxOther,
	"parcel": ctxOther, "package": ctxOther, "receipt": ctxOther, "transaction": ctxOther, "po": ctxOther,
	"sku": ctxOther, "serial": ctxOther, "model": ctxOther, "policy": ctxOther, "member": ctxOther,
	"booking": ctxOther, "reservation": ctxOther, "routing": ctxOther, "id": ctxOther,
}

// contextBefore reads back at most n word tokens before token index i.
func contextBefore(toks []token, i, n int) topic {
	seen := 0
	for k := i - 1; k >= 0 && seen < n; k-- {
		t := toks[k]
		if t.kind != tokWord {
			continue
		}
		seen++
		if c, ok := contextWords[t.lower]; ok {
			return c
		}
		// "security code" is a card's CVV, not a social security number.
		if t.lower == "security" && (k+1 >= len(toks) || toks[k+1].lower != "code") {
			return ctxSSN
		}
		if t.lower == "n" && k >= 2 && toks[k-1].lower == "s" && toks[k-2].lower == "s" {
			return ctxSSN // "s s n"
		}
	}
	return ctxNone
}

// tokenAt returns the index of the first token that ends after offset.
func tokenAt(toks []token, offset int) int {
	lo, hi := 0, len(toks)
	for lo < hi {
		m := (lo + hi) / 2
		if toks[m].end <= offset {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}
