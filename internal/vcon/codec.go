package vcon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/go-json-experiment/json/jsontext"
)

// The worker decodes and re-encodes every vCon it processes; with
// encoding/json that was most of its CPU per document (see
// docs/benchmarks.md). Decoding reads tokens with jsontext (the syntactic
// layer of encoding/json/v2) in one pass; encoding appends bytes directly.
// Both keep encoding/json's results: the same values (numbers as
// json.Number, duplicate names resolved to the last, invalid UTF-8 and lone
// surrogates as U+FFFD) and the same output bytes (sorted keys, no HTML
// escaping, U+2028 and U+2029 escaped), which codec_test.go checks against
// encoding/json on many inputs.

// decodeOptions accept what encoding/json accepts: it lets a later
// duplicate name win and replaces invalid UTF-8 rather than refusing it.
var decodeOptions = []jsontext.Options{
	jsontext.AllowDuplicateNames(true),
	jsontext.AllowInvalidUTF8(true),
}

// decode parses exactly one JSON value.
func decode(data []byte) (any, error) { return decodeFrom(data, false) }

// decodeFrom parses exactly one JSON value; with shared, long strings
// without escapes are data's own bytes instead of copies.
func decodeFrom(data []byte, shared bool) (any, error) {
	v, _, err := decodeWith(data, shared, eager)
	return v, err
}

// decodeLazy parses a document, keeping the parts that policy allows
// as raw nodes when they are canonical (see rawJSON); raws is how many
// it kept.
func decodeLazy(data []byte, shared bool) (v any, raws int, err error) {
	return decodeWith(data, shared, topLevel)
}

func decodeWith(data []byte, shared bool, policy lazyPolicy) (any, int, error) {
	if v, raws, ok := fastDecode(data, shared, policy); ok {
		return v, raws, nil
	}
	return decodeTokens(data, shared, policy)
}

// decodeTokens is decodeWith on jsontext's tokens: the decoder of every
// document fastDecode leaves, and the one whose errors are reported.
func decodeTokens(data []byte, shared bool, policy lazyPolicy) (any, int, error) {
	d := decoder{dec: jsontext.NewDecoder(bytes.NewBuffer(data), decodeOptions...)}
	if shared {
		d.shared = data
	}
	v, err := d.value(policy)
	if err != nil {
		return nil, 0, err
	}
	if _, err := d.dec.ReadToken(); err != io.EOF {
		if err == nil {
			return nil, 0, errors.New("more than one value")
		}
		return nil, 0, err
	}
	return v, d.raws, nil
}

// decoder reads one document. shared, when set, is the input: strings may
// alias it (ParseReadOnly).
type decoder struct {
	dec    *jsontext.Decoder
	shared []byte
	raws   int // raw nodes kept
	// sub decodes the values that could have been raw nodes but are
	// not canonical, reused from one to the next.
	sub *jsontext.Decoder
}

// value reads one value; policy says which of its members or items may
// be kept raw.
func (d *decoder) value(policy lazyPolicy) (any, error) {
	dec := d.dec
	switch dec.PeekKind() {
	case '{':
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
		m := make(map[string]any)
		for dec.PeekKind() != '}' {
			name, err := d.string()
			if err != nil {
				return nil, err
			}
			v, err := d.member(policy, name)
			if err != nil {
				return nil, err
			}
			m[name] = v
		}
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
		return m, nil
	case '[':
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
		// Non-nil, as encoding/json decodes [] into an empty slice.
		s := make([]any, 0)
		for dec.PeekKind() != ']' {
			v, err := d.member(policy, "")
			if err != nil {
				return nil, err
			}
			s = append(s, v)
		}
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
		return s, nil
	}
	if dec.PeekKind() == '"' {
		return d.string()
	}
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, err
	}
	switch tok.Kind() {
	case '0':
		return json.Number(tok.String()), nil
	case 't', 'f':
		return tok.Bool(), nil
	case 'n':
		return nil, nil
	}
	// PeekKind saw a delimiter where a value belongs: ReadToken reports
	// the syntax error above, so this is not reached.
	return nil, fmt.Errorf("unexpected %v", tok.Kind())
}

// member reads the member name (or an item, name "") of a value decoded
// under policy: as a raw node when the policy allows it and its text is
// canonical, decoded otherwise.
func (d *decoder) member(policy lazyPolicy, name string) (any, error) {
	below, mayBeRaw := policy.child(name)
	k := d.dec.PeekKind()
	if mayBeRaw && k == '"' {
		quoted, err := d.dec.ReadValue()
		if err != nil {
			return nil, err
		}
		if len(quoted)-2 >= minRawText {
			if end, ok := canonicalString(quoted, 1); ok && end == len(quoted)-1 {
				d.raws++
				if d.within(quoted) {
					return rawText(quoted[:len(quoted):len(quoted)]), nil
				}
				return rawText(bytes.Clone(quoted)), nil
			}
		}
		return d.stringOf(quoted), nil
	}
	if !mayBeRaw || k != '{' && k != '[' {
		return d.value(below)
	}
	text, err := d.dec.ReadValue()
	if err != nil {
		return nil, err
	}
	inShared := d.within(text)
	if canonical(text) {
		d.raws++
		if inShared {
			return rawJSON(text[:len(text):len(text)]), nil
		}
		return rawJSON(bytes.Clone(text)), nil
	}
	// Decoded from its text, all of it: a value below one that is not
	// canonical is seldom canonical itself, and trying each level again
	// would read a deep value once per level.
	if d.sub == nil {
		d.sub = jsontext.NewDecoder(bytes.NewBuffer(text), decodeOptions...)
	} else {
		d.sub.Reset(bytes.NewBuffer(text), decodeOptions...)
	}
	sub := decoder{dec: d.sub}
	if inShared {
		sub.shared = d.shared
	}
	return sub.value(eager)
}

// minShared is the length from which a string aliases a shared input:
// shorter ones are cheaper copied than pointing into a large buffer.
const minShared = 64

// string reads a string (a value or an object's name). The names and
// short values of vCon documents repeat in every document ("type", "body",
// "recording"): those come from a fixed table instead of a new allocation
// each. The raw value lives until the next read; the string returned does
// not share it, unless it is a long string of a shared input, which it
// then aliases.
func (d *decoder) string() (string, error) {
	raw, err := d.dec.ReadValue()
	if err != nil {
		return "", err
	}
	return d.stringOf(raw), nil
}

// stringOf is the string of raw, a string literal ReadValue accepted.
func (d *decoder) stringOf(raw []byte) string {
	text := raw[1 : len(raw)-1]
	if bytes.IndexByte(text, '\\') < 0 && utf8.Valid(text) {
		if e := commonEntryOf(text); e != nil {
			return e.s
		}
		if len(text) >= minShared && d.within(text) {
			return unsafe.String(unsafe.SliceData(text), len(text))
		}
		return string(text)
	}
	// ReadValue accepted the literal; the only error left to report is
	// invalid UTF-8, which encoding/json (and so this codec) replaces with
	// U+FFFD, as AppendUnquote has done. The text is unquoted into a
	// buffer of its quoted size (escapes only shrink it; a replaced byte
	// grows it, and append then makes room) which becomes the string
	// itself: nothing else refers to it, so a long transcript is not
	// copied twice more.
	b, _ := jsontext.AppendUnquote(make([]byte, 0, len(raw)), raw)
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// within reports whether text lies in the shared input. jsontext reads a
// bytes.Buffer in place, so it does; the check keeps a copy in the
// decoder's own buffer from ever being aliased.
func (d *decoder) within(text []byte) bool {
	if len(d.shared) == 0 {
		return false
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(d.shared)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(text)))
	return p >= start && p+uintptr(len(text)) <= start+uintptr(len(d.shared))
}

// common holds the field names and frequent short values of vCon
// documents, as the decoder's table.
var common = func() map[string]string {
	m := map[string]string{}
	for _, s := range strings.Fields(`vcon uuid created_at updated_at subject redacted appended amended group meta must_support
		parties dialog analysis attachments
		tel mailto name role validation jCard gmlpos civicaddress timezone stir contact_list sip did
		type start duration parties originator mimetype mediatype filename body encoding url content_hash alg signature
		disposition party_history transferee transferor transfer_target original consultation target_dialog
		campaign interaction_type interaction_id skill application message_id session_id
		dialog vendor product schema purpose event time
		recording text transfer incomplete transcript summary tags none json base64url agent customer
		0.0.1 0.0.2 0.3.0 0.4.0`) {
		m[s] = s
	}
	return m
}()

// maxCommon is the length of the longest string in common.
var maxCommon = func() int {
	n := 0
	for s := range common {
		n = max(n, len(s))
	}
	return n
}()

// commonEntry is one of common's strings, and the same boxed as a value:
// a value decoded from it does not allocate its box.
type commonEntry struct {
	s     string
	boxed any
}

// commonByShape is common indexed by length and first byte: looking a
// name up there compares it with the one or two strings of its shape
// instead of hashing it, which every short string of a document costs.
var commonByShape = func() [][128][]commonEntry {
	t := make([][128][]commonEntry, maxCommon+1)
	for s := range common {
		t[len(s)][s[0]&0x7f] = append(t[len(s)][s[0]&0x7f], commonEntry{s: s, boxed: s})
	}
	return t
}()

// commonEntryOf is common's entry equal to text, or nil.
func commonEntryOf(text []byte) *commonEntry {
	if len(text) == 0 || len(text) > maxCommon || text[0] >= utf8.RuneSelf {
		return nil
	}
	entries := commonByShape[len(text)][text[0]]
	for i := range entries {
		if string(text) == entries[i].s {
			return &entries[i]
		}
	}
	return nil
}

// appendJSON appends x encoded as encoding/json encodes it with HTML
// escaping off. The types a decoded document holds are written here; any
// other value a link stored is handed to encoding/json.
func appendJSON(b []byte, x any) ([]byte, error) {
	switch t := x.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendString(b, t), nil
	case bool:
		return strconv.AppendBool(b, t), nil
	case json.Number:
		if t == "" {
			return append(b, '0'), nil // as encoding/json
		}
		if !validNumber(string(t)) {
			return nil, fmt.Errorf("json: invalid number literal %q", string(t))
		}
		return append(b, t...), nil
	case float64:
		return appendFloat(b, t)
	case int:
		return strconv.AppendInt(b, int64(t), 10), nil
	case int64:
		return strconv.AppendInt(b, t, 10), nil
	case map[string]any:
		if t == nil {
			return append(b, "null"...), nil
		}
		// Most objects of a document are small (a word of a transcript,
		// a party): their members are sorted on the stack rather than
		// in a slice allocated for each, by insertion, and taken with
		// their values, not looked up again once sorted.
		var small [16]member
		members := small[:0]
		if len(t) > len(small) {
			members = make([]member, 0, len(t))
		}
		for k, e := range t {
			members = append(members, member{k, e})
		}
		if len(members) > len(small) {
			slices.SortFunc(members, func(x, y member) int { return strings.Compare(x.name, y.name) })
		} else {
			for i := 1; i < len(members); i++ {
				for j := i; j > 0 && members[j].name < members[j-1].name; j-- {
					members[j], members[j-1] = members[j-1], members[j]
				}
			}
		}
		b = append(b, '{')
		for i, m := range members {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, m.name)
			b = append(b, ':')
			var err error
			if b, err = appendJSON(b, m.value); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case []string:
		return appendArray(b, t, func(b []byte, e string) ([]byte, error) { return appendString(b, e), nil })
	case []any:
		return appendArray(b, t, appendJSON)
	case rawJSON:
		return appendRaw(b, t), nil
	case rawText:
		return appendRaw(b, t), nil
	case *rawArray:
		return appendRaw(b, t.text), nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(x); err != nil {
		return nil, err
	}
	return append(b, bytes.TrimRight(buf.Bytes(), "\n")...), nil
}

// rawChunk is how much of a raw node appendRaw copies at once: less than
// the 1 MB from which the runtime's memmove (amd64) writes around the
// cache, which made copying a large vCon's dialog, kept raw whole, take
// twice as long as copying it in its bodies' pieces.
const rawChunk = 512 << 10

// appendRaw appends the bytes of a raw node.
func appendRaw(b, raw []byte) []byte {
	for len(raw) > rawChunk {
		b = append(b, raw[:rawChunk]...)
		raw = raw[rawChunk:]
	}
	return append(b, raw...)
}

// member is a member of an object, as appendJSON writes it.
type member struct {
	name  string
	value any
}

// encodedLen is the length of appendJSON's encoding of x: exact for the
// values Parse produces, an estimate for numbers a link stored as Go
// numbers and for other types (a short estimate only makes the append
// grow).
func encodedLen(x any) int {
	switch t := x.(type) {
	case nil:
		return len("null")
	case string:
		return quotedLen(t)
	case bool:
		if t {
			return len("true")
		}
		return len("false")
	case json.Number:
		return max(1, len(t))
	case float64, int, int64:
		return 24
	case map[string]any:
		n := 2 + max(0, len(t)-1) // braces and commas
		for k, e := range t {
			n += quotedLen(k) + 1 + encodedLen(e)
		}
		return n
	case []string:
		n := 2 + max(0, len(t)-1)
		for _, e := range t {
			n += quotedLen(e)
		}
		return n
	case []any:
		n := 2 + max(0, len(t)-1)
		for _, e := range t {
			n += encodedLen(e)
		}
		return n
	case rawJSON:
		return len(t)
	case rawText:
		return len(t)
	case *rawArray:
		return len(t.text)
	}
	return 64
}

// quotedLen is the length of appendString's quoting of s.
func quotedLen(s string) int {
	if plain(s) {
		return len(s) + 2
	}
	n := 2
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case byteClass[c] != escaped:
				n++
			case c == '\\' || c == '"' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t':
				n += 2
			default:
				n += len(`\u0000`)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			n += len(`\ufffd`)
		} else {
			n += size
		}
		i += size
	}
	return n
}

// appendArray writes items as a JSON array (null for a nil slice, as
// encoding/json), each by appendItem.
func appendArray[T any](b []byte, items []T, appendItem func([]byte, T) ([]byte, error)) ([]byte, error) {
	if items == nil {
		return append(b, "null"...), nil
	}
	b = append(b, '[')
	for i, e := range items {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendItem(b, e); err != nil {
			return nil, err
		}
	}
	return append(b, ']'), nil
}

// appendString quotes s. Strings that need no escaping (the usual case:
// printable, valid UTF-8) are copied; the others are escaped in place the
// way encoding/json escapes them with HTML escaping off (its
// appendString), which the differential tests check.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	if plain(s) {
		b = append(b, s...)
		return append(b, '"')
	}
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if byteClass[c] != escaped {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// plain reports whether encoding/json would write s between quotes
// unchanged.
func plain(s string) bool {
	// Eight bytes at a time while they are printable ASCII without quote
	// or backslash (the bulk of a transcript); the rest byte by byte.
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		if !plainWord(x) {
			break
		}
	}
	ascii := true
	for ; i < len(s); i++ {
		switch byteClass[s[i]] {
		case escaped:
			return false
		case nonASCII:
			ascii = false
		}
	}
	if ascii {
		return true
	}
	if !utf8.ValidString(s) {
		return false
	}
	return !strings.ContainsRune(s, '\u2028') && !strings.ContainsRune(s, '\u2029')
}

const (
	lo = 0x0101010101010101
	hi = 0x8080808080808080
)

// plainWord reports whether the eight bytes of x are printable ASCII
// other than quote and backslash, in one test: a byte's high bit is set
// in x (not ASCII), or in the byte minus 0x20 (a control character), or
// in its difference with a quote or a backslash minus one (that byte).
// Without the usual &^x of each term a byte at or over 0x80 can set its
// own bit in a term, but x's term has set it already; a borrow reaches a
// byte only from a lower one that matched.
func plainWord(x uint64) bool { return plainBits(x)&hi == 0 }

// plainBits is plainWord's test before its mask: the high bit of a byte
// that is not plain may be set, the high bits of eight plain bytes are
// not. Or-ed, the bits of several words test them all at once.
func plainBits(x uint64) uint64 {
	return x | (x - lo*0x20) | ((x ^ (lo * '"')) - lo) | ((x ^ (lo * '\\')) - lo)
}

const (
	printable = iota
	escaped   // control characters, quote and backslash
	nonASCII
)

// byteClass sorts bytes for plain, one table load per byte.
var byteClass = func() (t [256]byte) {
	for c := range t {
		switch {
		case c < 0x20 || c == '"' || c == '\\':
			t[c] = escaped
		case c >= utf8.RuneSelf:
			t[c] = nonASCII
		}
	}
	return t
}()

// appendFloat writes f as encoding/json does: the shortest representation,
// in exponent form only for very small or very large magnitudes.
func appendFloat(b []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, fmt.Errorf("json: unsupported value: %s", strconv.FormatFloat(f, 'g', -1, 64))
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// 1e-07 becomes 1e-7, as in encoding/json.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

// validNumber reports whether s is a JSON number literal (RFC 8259:
// -? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)?), with no
// surrounding whitespace, as encoding/json checks a json.Number. It runs
// on every number a document holds, so it reads s in place.
func validNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i == len(s) || !isDigit(s[i]) {
			return false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i == len(s) || !isDigit(s[i]) {
			return false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	return i == len(s)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
