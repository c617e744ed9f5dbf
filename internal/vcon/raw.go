package vcon

import (
	"bytes"
	"maps"
	"slices"
	"unsafe"

	"github.com/go-json-experiment/json/jsontext"
)

// Most of a large vCon is parts no link of the worker's usual chains reads:
// a transcript's words, a party's details, a vendor's nested metadata.
// Decoded, a transcript of many small objects costs several times its JSON
// size; kept as its bytes it costs nothing more than the bytes Redis
// handed us. So Parse keeps such a part (an object, array or long string
// below the top level, away from the few fields Validate and Normalize
// read) as a raw node, its JSON text, when that text is already what the
// encoder writes for it (canonical): the encoder then writes the bytes as
// they are, and the document's encoding is byte for byte what it was when
// everything was decoded.
//
// A caller never sees a raw node: Doc, List and FindAnalysis decode the
// raw nodes of what they hand out first. Inside this package, code that
// reads the tree treats a raw node as the value it stands for.

// rawJSON is a JSON object or array in its canonical encoding, standing
// for its decoded value. Its bytes are never changed: they are the
// input's (ParseReadOnly) or a copy of them (Parse).
type rawJSON []byte

// rawText is a long string in the same places, quotes and all, kept as
// written: a summary's or a JSON body's text needs escapes, and decoded
// it would be a copy of itself that the encoder escapes again. text
// reads one.
type rawText []byte

// minRawText is the length from which a string may be kept as rawText:
// a short one costs less decoded. The tests lower it.
var minRawText = 64

// text reads a string of the document, decoded or raw.
func text(x any) (string, bool) {
	switch t := x.(type) {
	case string:
		return t, true
	case rawText:
		return decodeRawText(t), true
	}
	return "", false
}

// decodeRawText is the string t stands for: t's own bytes when it has no
// escapes (t is never changed), unquoted otherwise.
func decodeRawText(t rawText) string {
	s := t[1 : len(t)-1]
	if bytes.IndexByte(s, '\\') < 0 {
		return unsafe.String(unsafe.SliceData(s), len(s))
	}
	b, _ := jsontext.AppendUnquote(make([]byte, 0, len(t)), t) // canonical: valid
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// Where the decoder may keep raw nodes: how a value's members or items
// are decoded, by where the value is in the document.
type lazyPolicy uint8

const (
	// eager decodes everything below.
	eager lazyPolicy = iota
	// topLevel is the document: its members are decoded (UUID, Validate,
	// Normalize and the forms read them), what is below them as child
	// says.
	topLevel
	// rawBelow keeps every member or item raw that can be: an object,
	// an array, a long string.
	rawBelow
	// entries are the items of dialog, analysis and attachments, decoded
	// objects whose members are raw (Normalize renames an entry's fields
	// and turns its body into text; the tags helpers read attachments).
	entries
	// dialogEntries are entries whose parties Validate reads.
	dialogEntries
	// dialogEntry is the members of a dialog entry.
	dialogEntry
)

// child is the policy for the member name (or an item, name "") of a
// value decoded under p, and whether that member may be a raw node.
func (p lazyPolicy) child(name string) (lazyPolicy, bool) {
	switch p {
	case topLevel:
		switch name {
		case Dialog:
			return dialogEntries, false
		case Analysis, Attachments:
			return entries, false
		case "critical", "must_support":
			// Critical reads their items, which may be of any type.
			return eager, false
		}
		return rawBelow, false
	case rawBelow:
		return eager, true
	case entries:
		return rawBelow, false
	case dialogEntries:
		return dialogEntry, false
	case dialogEntry:
		if name == "parties" {
			return eager, false
		}
		return eager, true
	}
	return eager, false
}

// canonical reports whether b, one JSON value as jsontext accepts it, is
// exactly what appendJSON writes for its decoded value: no white space,
// object names in sorted order and unique, strings written as appendString
// writes them, numbers as written (appendJSON writes a json.Number as it
// came). It is the fast decoder's skip, which makes that test as it reads
// (the jsontext decoder asks it of what it keeps raw); a value nested more
// deeply than maxCanonicalDepth is reported as not canonical, and so
// decoded.
func canonical(b []byte) bool {
	d := fastDecoder{data: b}
	canon := true
	return d.skip(0, &canon) && canon && d.i == len(b)
}

// canonicalString reports whether the string text starting at b[i] (after
// its opening quote) is what appendString writes for its decoded value,
// and where its closing quote is.
func canonicalString(b []byte, i int) (int, bool) {
	end, flags, ok := scanString(b, i)
	return end, ok && flags&strNotCanonical == 0
}

// canonicalEscape reports whether \u followed by the four bytes h is how
// appendString writes the character: control characters without a short
// escape as \u00xx (lower-case hex), and the line and paragraph
// separators.
func canonicalEscape(h []byte) bool {
	switch string(h) {
	case "2028", "2029":
		return true
	}
	if h[0] != '0' || h[1] != '0' || (h[2] != '0' && h[2] != '1') {
		return false
	}
	d := h[3]
	if !('0' <= d && d <= '9' || 'a' <= d && d <= 'f') {
		return false
	}
	switch string(h) {
	case "0008", "0009", "000a", "000c", "000d":
		return false // written \b, \t, \n, \f, \r
	}
	return true
}

// isObject reports whether x is a JSON object, decoded or raw.
func isObject(x any) bool {
	switch t := x.(type) {
	case map[string]any:
		return true
	case rawJSON:
		return t[0] == '{'
	}
	return false
}

// decodeRaw is the value r stands for. Its long strings are r's bytes:
// r is never changed.
func decodeRaw(r rawJSON) any {
	x, err := decodeFrom(r, true)
	if err != nil {
		// Parse made r of a value jsontext accepted.
		panic("vcon: a raw node does not decode: " + err.Error())
	}
	return x
}

// withoutRaw returns x with every raw node in it decoded, and whether
// that is a new value: a container that holds raw nodes is copied, not
// changed, so that whoever still reads x (a storage encoding the
// document while another reads it through Doc) reads what it read
// before. A container without raw nodes is x's own, never copied: the
// maps List and Doc handed out stay the document's.
func withoutRaw(x any) (any, bool) {
	switch t := x.(type) {
	case rawJSON:
		return decodeRaw(t), true
	case rawText:
		return decodeRawText(t), true
	case *rawArray:
		return decodeRaw(t.text), true
	case map[string]any:
		var c map[string]any
		for k, e := range t {
			if o, changed := withoutRaw(e); changed {
				if c == nil {
					c = maps.Clone(t)
				}
				c[k] = o
			}
		}
		if c == nil {
			return x, false
		}
		return c, true
	case []any:
		var c []any
		for i, e := range t {
			if o, changed := withoutRaw(e); changed {
				if c == nil {
					c = slices.Clone(t)
				}
				c[i] = o
			}
		}
		if c == nil {
			return x, false
		}
		return c, true
	}
	return x, false
}
