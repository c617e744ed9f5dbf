package vcon

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/bits"
	"unicode/utf8"
	"unsafe"

	"github.com/go-json-experiment/json/jsontext"
)

// The worker decodes every vCon it takes, and the decoder was the largest
// share of its own CPU per document (docs/benchmarks.md): jsontext read
// each byte once to check the syntax, and canonical then read the parts
// kept raw a second time to check they are the encoder's form.
// fastDecoder does both in one pass over the bytes, with no tokenizer
// state between the two.
//
// It is an accelerator, not a second definition of JSON: it accepts only
// what jsontext accepts (with decodeOptions) and gives the same value, raw
// nodes and all. Anything it is not sure of (a syntax error, invalid
// UTF-8, an escape it would have to replace, a very deep document) makes
// it give up, and the jsontext decoder reads the document instead, so
// errors and their wording are jsontext's. FuzzFastDecodeMatchesTokens
// holds it to that.
type fastDecoder struct {
	data   []byte
	i      int
	shared bool // strings and raw nodes may alias data
	depth  int
	raws   int
	// memo notes the long values the check of a top-level array read
	// (topArray), for its decoding when the check fails: memos of them
	// are noted, nextMemo is the first the decoding has not passed.
	memo            [32]memoSpan
	memos, nextMemo int
	// arrays holds the rawArrays of the document, nArrays of them.
	arrays  *[4]rawArray
	nArrays int
}

// topLevelRoom is the size hint of the document's object: the most
// members a table of 16 slots takes (7/8 of them).
const topLevelRoom = 14

// maxFastDepth bounds the nesting the fast decoder follows (jsontext
// allows 10000): a document nested deeper is handed to jsontext, which
// does not recurse to read it.
const maxFastDepth = 500

// fastDecode decodes data as decodeWith does, or reports false when the
// jsontext decoder must read it.
func fastDecode(data []byte, shared bool, policy lazyPolicy) (any, int, bool) {
	d := fastDecoder{data: data, shared: shared}
	d.space()
	v, ok := d.value(policy)
	if !ok {
		return nil, 0, false
	}
	if d.space(); d.i != len(data) {
		return nil, 0, false
	}
	return v, d.raws, true
}

// peek is the byte at the read position, or 0 at the end.
func (d *fastDecoder) peek() byte {
	if d.i < len(d.data) {
		return d.data[d.i]
	}
	return 0
}

// space skips JSON white space and reports whether there was any.
func (d *fastDecoder) space() bool {
	start := d.i
	for d.i < len(d.data) {
		switch d.data[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return d.i > start
		}
	}
	return d.i > start
}

// enter and leave track the nesting of objects and arrays.
func (d *fastDecoder) enter() bool {
	d.depth++
	return d.depth <= maxFastDepth
}

func (d *fastDecoder) leave() { d.depth-- }

// value decodes the value at the read position; policy says which of its
// members or items may be kept raw (see lazyPolicy).
func (d *fastDecoder) value(policy lazyPolicy) (any, bool) {
	switch c := d.peek(); c {
	case '{':
		return d.object(policy)
	case '[':
		return d.array(policy)
	case '"':
		return d.stringValue()
	case 't':
		return true, d.literal("true")
	case 'f':
		return false, d.literal("false")
	case 'n':
		return nil, d.literal("null")
	default:
		start := d.i
		if !d.number() {
			return nil, false
		}
		if d.i-start == 1 {
			// A digit (a party's index, a dialog's): boxed once.
			return digitNumbers[d.data[start]-'0'], true
		}
		return json.Number(string(d.data[start:d.i])), true
	}
}

func (d *fastDecoder) object(policy lazyPolicy) (any, bool) {
	var formed bool // the decoded value's form is not asked
	empty, ok := d.open('}', -1, &formed)
	if !ok {
		return nil, false
	}
	var m map[string]any
	if policy == topLevel {
		// A vCon has about eight members, which fill a small map:
		// the runtime then grows it into a table at the first
		// assignment, even to a member it has (Normalize stamps the
		// version), and the small map is garbage. The table that
		// growth makes, of 16 slots, is made at once.
		m = make(map[string]any, topLevelRoom)
	} else {
		m = make(map[string]any)
	}
	for more := !empty; more; {
		if d.peek() != '"' {
			return nil, false
		}
		name, ok := d.string()
		if !ok {
			return nil, false
		}
		if d.space(); d.peek() != ':' {
			return nil, false
		}
		d.i++
		d.space()
		v, ok := d.member(policy, name)
		if !ok {
			return nil, false
		}
		m[name] = v // a later duplicate wins, as in encoding/json
		if more, ok = d.next('}', &formed); !ok {
			return nil, false
		}
	}
	return m, true
}

func (d *fastDecoder) array(policy lazyPolicy) (any, bool) {
	var formed bool // the decoded value's form is not asked
	empty, ok := d.open(']', -1, &formed)
	if !ok {
		return nil, false
	}
	// Non-nil, as encoding/json decodes [] into an empty slice; room
	// for the few items most arrays of a vCon have (parties, dialog,
	// a dialog's parties) in one allocation rather than one per growth.
	s := make([]any, 0, 4)
	for more := !empty; more; {
		v, ok := d.member(policy, "")
		if !ok {
			return nil, false
		}
		s = append(s, v)
		if more, ok = d.next(']', &formed); !ok {
			return nil, false
		}
	}
	return s, true
}

// open reads the opening byte of an object or array, and the closing
// one too when it is empty. level is its depth below a raw candidate
// (-1 outside one); white space, or a level deeper than canonical
// follows, clears *canon.
func (d *fastDecoder) open(closing byte, level int, canon *bool) (empty, ok bool) {
	if !d.enter() {
		return false, false
	}
	if level == maxCanonicalDepth {
		*canon = false
	}
	d.i++
	d.blank(canon)
	if d.peek() == closing {
		d.i++
		d.leave()
		return true, true
	}
	return false, true
}

// next reads what follows a member or an item: a comma (more follow) or
// the closing byte (the object or array ends).
func (d *fastDecoder) next(closing byte, canon *bool) (more, ok bool) {
	d.blank(canon)
	switch d.peek() {
	case ',':
		d.i++
		d.blank(canon)
		return true, true
	case closing:
		d.i++
		d.leave()
		return false, true
	}
	return false, false
}

// blank skips white space, which is not the encoder's form.
func (d *fastDecoder) blank(canon *bool) {
	if d.space() {
		*canon = false
	}
}

// member decodes the member name (or an item, name "") of a value decoded
// under policy: as a raw node when the policy allows it and its text is
// canonical (the check made while reading it), decoded otherwise. It is
// decoder.member in one pass.
func (d *fastDecoder) member(policy lazyPolicy, name string) (any, bool) {
	below, mayBeRaw := policy.child(name)
	c := d.peek()
	if policy == topLevel && c == '[' && isTopArray(name) {
		return d.topArray(name, below)
	}
	var memo memoSpan
	noted := false
	if mayBeRaw && d.memos > 0 {
		memo, noted = d.remembered()
	}
	if mayBeRaw && c == '"' {
		var (
			quoted []byte
			flags  uint8
			ok     = true
		)
		if noted {
			quoted, flags, d.i = d.data[memo.start:memo.end], memo.flags, memo.end
		} else if quoted, flags, ok = d.quoted(); !ok {
			return nil, false
		}
		if len(quoted)-2 >= minRawText && flags&strNotCanonical == 0 {
			d.raws++
			if d.shared {
				return rawText(quoted[:len(quoted):len(quoted)]), true
			}
			return rawText(bytes.Clone(quoted)), true
		}
		return d.stringOf(quoted, flags)
	}
	if !mayBeRaw || c != '{' && c != '[' {
		return d.value(below)
	}
	start, canon := d.i, true
	if noted {
		d.i = memo.end // noted only when canonical
	} else if !d.skip(0, &canon) {
		return nil, false
	}
	if canon {
		text := d.data[start:d.i]
		d.raws++
		if d.shared {
			return rawJSON(text[:len(text):len(text)]), true
		}
		return rawJSON(bytes.Clone(text)), true
	}
	// Not the encoder's form: decoded, all of it, as decoder.member does
	// (its syntax is known good now; reading it twice is the price of a
	// producer's white space).
	end := d.i
	d.i = start
	v, ok := d.value(eager)
	return v, ok && d.i == end
}

// skip reads one value, checking its syntax, and clears *canon unless its
// text is what appendJSON writes for it (the test canonical makes: no
// white space, names sorted and unique without escapes, strings as
// appendString writes them, at most 64 levels deep). level is the depth
// below the raw node's own value.
func (d *fastDecoder) skip(level int, canon *bool) bool {
	switch c := d.peek(); c {
	case '{':
		empty, ok := d.open('}', level, canon)
		prevStart, prevEnd := 0, 0
		for more := ok && !empty; more; {
			if d.peek() != '"' {
				return false
			}
			start := d.i + 1
			end, flags, ok := scanString(d.data, start)
			if !ok {
				return false
			}
			switch {
			case flags&(strNotCanonical|strEscaped) != 0:
				// An escaped name sorts by its decoded text; canonical
				// does not compare those.
				*canon = false
			case prevEnd > 0 && bytes.Compare(d.data[prevStart:prevEnd], d.data[start:end]) >= 0:
				*canon = false // out of order, or a duplicate
			}
			prevStart, prevEnd = start, end
			d.i = end + 1
			if d.blank(canon); d.peek() != ':' {
				return false
			}
			d.i++
			d.blank(canon)
			if !d.skip(level+1, canon) {
				return false
			}
			if more, ok = d.next('}', canon); !ok {
				return false
			}
		}
		return ok
	case '[':
		empty, ok := d.open(']', level, canon)
		for more := ok && !empty; more; {
			if !d.skip(level+1, canon) {
				return false
			}
			if more, ok = d.next(']', canon); !ok {
				return false
			}
		}
		return ok
	case '"':
		_, flags, ok := d.quoted()
		if flags&strNotCanonical != 0 {
			*canon = false
		}
		return ok
	case 't':
		return d.literal("true")
	case 'f':
		return d.literal("false")
	case 'n':
		return d.literal("null")
	default:
		// appendJSON writes a number as it was written.
		return d.number()
	}
}

// maxCanonicalDepth is the nesting canonical follows: a raw candidate
// nested deeper is decoded instead, as there.
const maxCanonicalDepth = 64

func (d *fastDecoder) literal(word string) bool {
	if !bytes.HasPrefix(d.data[d.i:], []byte(word)) {
		return false
	}
	d.i += len(word)
	return true
}

// number reads a number as RFC 8259 writes it (jsontext's grammar).
func (d *fastDecoder) number() bool {
	b, i := d.data, d.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digits(b, i+1)
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		if i+1 >= len(b) || !isDigit(b[i+1]) {
			return false
		}
		i = digits(b, i+1)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return false
		}
		i = digits(b, i)
	}
	d.i = i
	return true
}

// digits is the end of the run of digits from b[i].
func digits(b []byte, i int) int {
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

// quoted reads the string literal at the read position, as scanString
// checks it.
func (d *fastDecoder) quoted() (quoted []byte, flags uint8, ok bool) {
	start := d.i
	end, flags, ok := scanString(d.data, start+1)
	if !ok {
		return nil, 0, false
	}
	d.i = end + 1
	return d.data[start : end+1], flags, true
}

// string decodes the string at the read position.
func (d *fastDecoder) string() (string, bool) {
	quoted, flags, ok := d.quoted()
	if !ok {
		return "", false
	}
	return d.stringOf(quoted, flags)
}

// stringValue is string as a value: a common one is boxed once, not
// per document.
func (d *fastDecoder) stringValue() (any, bool) {
	quoted, flags, ok := d.quoted()
	if !ok {
		return nil, false
	}
	if flags == 0 {
		if e := commonEntryOf(quoted[1 : len(quoted)-1]); e != nil {
			return e.boxed, true
		}
	}
	return d.stringOf(quoted, flags)
}

// digitNumbers are the one-digit numbers, boxed.
var digitNumbers = func() (n [10]any) {
	for i := range n {
		n[i] = json.Number(string(rune('0' + i)))
	}
	return n
}()

// stringOf is decoder.stringOf for a literal scanString accepted: the
// table's string for a common one, the input's bytes for a long one of a
// shared input, a copy otherwise. Invalid UTF-8, which encoding/json
// replaces, is left to jsontext.
func (d *fastDecoder) stringOf(quoted []byte, flags uint8) (string, bool) {
	text := quoted[1 : len(quoted)-1]
	switch {
	case flags&strInvalidUTF8 != 0:
		return "", false
	case flags&strEscaped == 0:
		if e := commonEntryOf(text); e != nil {
			return e.s, true
		}
		if d.shared && len(text) >= minShared {
			return unsafe.String(unsafe.SliceData(text), len(text)), true
		}
		return string(text), true
	}
	// Unquoted into a buffer of its quoted size that becomes the string
	// (escapes only shrink the text). An escape AppendUnquote refuses
	// (a lone surrogate) is replaced by jsontext's decoder: left to it.
	b, err := jsontext.AppendUnquote(make([]byte, 0, len(quoted)), quoted)
	if err != nil {
		return "", false
	}
	return unsafe.String(unsafe.SliceData(b), len(b)), true
}

// What scanString found in a string besides its end.
const (
	// strEscaped: it has a backslash escape.
	strEscaped uint8 = 1 << iota
	// strNotCanonical: appendString would not write it so
	// (canonicalString's test).
	strNotCanonical
	// strInvalidUTF8: it has bytes that are not UTF-8.
	strInvalidUTF8
)

// scanString checks the string text starting at b[i] (after its opening
// quote) as jsontext does (no raw control characters, only JSON's
// escapes; invalid UTF-8 is allowed, as decodeOptions allow it) and
// returns where its closing quote is and what it holds.
func scanString(b []byte, i int) (end int, flags uint8, ok bool) {
	for {
		// Eight bytes at a time while they are printable ASCII
		// without quote or backslash: the bulk of a transcript, and
		// most of the time of reading a document kept raw. After four
		// such words, 32 at a time, with one test for four words: that
		// reads a long plain text twice as fast, but costs a text with
		// an escape every few words (JSON text in a string) more than
		// it saves. A word that is not plain is read from its first
		// byte that is not (plainBits sets no bit below it), rather
		// than tested again after each plain byte before it.
		for run := 0; i+8 <= len(b); run++ {
			if m := plainBits(binary.LittleEndian.Uint64(b[i:])) & hi; m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
			if run == 3 {
				for i+32 <= len(b) {
					w := b[i : i+32]
					if (plainBits(binary.LittleEndian.Uint64(w))|plainBits(binary.LittleEndian.Uint64(w[8:]))|
						plainBits(binary.LittleEndian.Uint64(w[16:]))|plainBits(binary.LittleEndian.Uint64(w[24:])))&hi != 0 {
						break
					}
					i += 32
				}
			}
		}
		if i >= len(b) {
			return 0, 0, false
		}
		switch c := b[i]; {
		case c == '"':
			return i, flags, true
		case c == '\\':
			flags |= strEscaped
			if i+1 >= len(b) {
				return 0, 0, false
			}
			switch b[i+1] {
			case '"', '\\', 'b', 'f', 'n', 'r', 't':
				i += 2
			case '/':
				flags |= strNotCanonical // written /
				i += 2
			case 'u':
				if i+6 > len(b) || !hex4(b[i+2:i+6]) {
					return 0, 0, false
				}
				if !canonicalEscape(b[i+2 : i+6]) {
					flags |= strNotCanonical
				}
				i += 6
			default:
				return 0, 0, false
			}
		case c < 0x20:
			return 0, 0, false
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			switch {
			case r == utf8.RuneError && size == 1:
				flags |= strInvalidUTF8 | strNotCanonical // written \ufffd
			case r == '\u2028' || r == '\u2029':
				flags |= strNotCanonical // written escaped
			}
			i += size
		}
	}
}

// hex4 reports whether h is four hexadecimal digits.
func hex4(h []byte) bool {
	for _, c := range h {
		if !(isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
