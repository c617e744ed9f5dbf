// Package vcon holds the vCon document: the IETF "virtual conversation" JSON
// container. A document is kept as its decoded JSON object so that fields this
// code does not know survive every rewrite; typed helpers read and change the
// parts the pipeline cares about.
package vcon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// The arrays of a vCon, by their JSON names.
const (
	Parties     = "parties"
	Dialog      = "dialog"
	Analysis    = "analysis"
	Attachments = "attachments"
)

// VCon is one decoded vCon document: a JSON object, decoded with
// json.Number for numbers so that integers and decimals round-trip as
// written. Doc hands the whole object out; code that changes a document
// goes through the helpers where one exists, so that the conserver
// conventions (tags, normalisation) stay in one place.
type VCon struct {
	doc map[string]any

	size int // of the parsed JSON: a hint for Marshal
	// secured is the bytes a signed or encrypted document was parsed
	// from, which Marshal writes as they are (see Secured). Doc is their
	// decoded form, for reading the headers; it is never changed in place:
	// a link that signs, verifies, encrypts or decrypts replaces the whole
	// VCon.
	secured []byte
}

// ErrNotObject is returned by Parse for JSON that is not an object.
var ErrNotObject = errors.New("vcon: document is not a JSON object")

// Parse decodes a vCon document. It checks only that the input is one JSON
// object; Validate says whether it is a usable vCon.
func Parse(data []byte) (*VCon, error) { return parse(data, false) }

// ParseReadOnly is Parse for input that nothing changes while the
// document is in use, such as a Redis reply (vconstore.Body.Data): the
// document's long strings are the input's own bytes instead of copies, so
// a large vCon is held once, not twice. The input stays in memory as long
// as the document does, and changing it changes the document.
func ParseReadOnly(data []byte) (*VCon, error) { return parse(data, true) }

func parse(data []byte, shared bool) (*VCon, error) {
	raw, err := decodeFrom(data, shared)
	if err != nil {
		return nil, fmt.Errorf("vcon: invalid JSON: %w", err)
	}
	doc, ok := raw.(map[string]any)
	if !ok {
		return nil, ErrNotObject
	}
	v := &VCon{doc: doc, size: len(data)}
	if FormOf(doc) != Unsigned {
		v.secured = data
		if !shared {
			v.secured = bytes.Clone(data)
		}
	}
	return v, nil
}

// FromDoc returns the document doc, a JSON object as Parse decodes one
// (or built of the same types), which it takes over: changing doc changes
// the VCon.
func FromDoc(doc map[string]any) *VCon { return &VCon{doc: doc} }

// Doc returns the document's JSON object. It is the document's own:
// changing it changes the vCon.
func (v *VCon) Doc() map[string]any { return v.doc }

// Replace makes v the document w is, as a link that receives a whole new
// vCon for the one it was given does. w is not to be used after.
func (v *VCon) Replace(w *VCon) {
	v.doc, v.size, v.secured = w.doc, w.size, w.secured
}

// New returns an empty document with the given uuid.
func New(uuid string) *VCon {
	return &VCon{doc: map[string]any{"uuid": uuid}}
}

// Marshal encodes the document. HTML characters are not escaped: a vCon is
// data, not markup, and escaping would change bytes other systems hash.
func (v *VCon) Marshal() ([]byte, error) {
	return v.AppendMarshal(nil)
}

// AppendMarshal appends the encoded document to dst, as Marshal encodes
// it, so that a caller can reuse one buffer for many documents. When dst
// has less room than the document's parsed size and a margin (most
// rewrites change a document little), it is grown to that once first:
// grown by append from a small pooled buffer, a 44 MB document allocated
// four times its size in buffers that were copied and dropped.
func (v *VCon) AppendMarshal(dst []byte) ([]byte, error) {
	if v.secured != nil && v.Secured() {
		return append(dst, v.secured...), nil
	}
	return appendJSON(slices.Grow(dst, v.size+v.size/8+256), v.doc)
}

// Canonical is the document encoded as Marshal encodes one it decoded
// (sorted keys, no white space), also for a signed or encrypted document,
// whose bytes as parsed it ignores. A database that keeps JSON as a value
// (PostgreSQL's jsonb, BSON) gives a document back in its own layout;
// links.sign writes the signed form in this encoding, so that such a
// storage gives back the very bytes it was given.
func Canonical(v *VCon) ([]byte, error) {
	return appendJSON(make([]byte, 0, v.size+256), v.doc)
}

// UUID returns the document's uuid, or "" when it has none. A signed or
// encrypted document's is the one its headers carry (the draft's uuid
// header parameter): the vCon inside is not readable without a key.
func (v *VCon) UUID() string {
	if v.Secured() {
		return securedUUID(v.doc)
	}
	s, _ := v.doc["uuid"].(string)
	return s
}

// String returns the string field key, or "" when absent or not a string.
func (v *VCon) String(key string) string {
	s, _ := v.doc[key].(string)
	return s
}

// List returns the objects of one of the document's arrays (Parties, Dialog,
// Analysis, Attachments). Entries that are not objects are skipped; the
// returned maps are the document's own, so changing them changes the vCon.
func (v *VCon) List(key string) []map[string]any {
	items, _ := v.doc[key].([]any)
	out := make([]map[string]any, 0, len(items))
	for _, it := range items {
		if m, ok := it.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// Append adds an object to one of the document's arrays, creating it.
func (v *VCon) Append(key string, item map[string]any) {
	items, _ := v.doc[key].([]any)
	v.doc[key] = append(items, item)
}

// Clone returns a deep copy, for links that must not share state.
func (v *VCon) Clone() *VCon {
	return &VCon{doc: cloneValue(v.doc).(map[string]any), size: v.size, secured: v.secured}
}

func cloneValue(x any) any {
	switch t := x.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[k] = cloneValue(e)
		}
		return m
	case []any:
		s := make([]any, len(t))
		for i, e := range t {
			s[i] = cloneValue(e)
		}
		return s
	default:
		return x
	}
}

// Number reads a number of the document: a json.Number as Parse leaves
// it, or a Go number a link wrote. ok is false for anything else.
func Number(v any) (float64, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	case float64:
		return n, true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	}
	return 0, false
}
