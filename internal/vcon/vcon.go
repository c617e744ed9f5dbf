// Package vcon holds the vCon document: the IETF "virtual conversation" JSON
// container. A document is kept as its decoded JSON object so that fields this
// code does not know survive every rewrite; typed helpers read and change the
// parts the pipeline cares about. The parts nothing has asked for yet stay
// as the JSON text they were parsed from (raw.go), so that a chain that
// reads little of a large vCon pays little for it.
package vcon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
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
	// lazy is set while doc may hold raw nodes (see rawJSON), parts of
	// the input kept undecoded. Doc and List decode the parts they hand
	// out, under mu, into new containers that replace doc's (opened
	// says which of the arrays are done): a document is read by several
	// storages at once, and one that encodes it must not see the tree
	// change under it. Once lazy is clear, doc holds no raw node and is
	// never replaced but by a caller that changes the document.
	lazy   atomic.Bool
	mu     sync.Mutex
	opened uint8 // bits of arrayBits

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
	x, raws, err := decodeLazy(data, shared)
	if err != nil {
		// Reading a subtree whole (jsontext.ReadValue) words some
		// syntax errors otherwise than reading it token by token; the
		// error is what a dead letter's reason and the API's answer
		// quote, so it is the one the eager decoder gives.
		if x, err = decodeFrom(data, shared); err != nil {
			return nil, fmt.Errorf("vcon: invalid JSON: %w", err)
		}
		raws = 0
	}
	doc, ok := x.(map[string]any)
	if !ok {
		return nil, ErrNotObject
	}
	v := &VCon{doc: doc, size: len(data)}
	v.lazy.Store(raws > 0)
	if FormOf(doc) != Unsigned {
		// The headers of the forms lie deeper than the policy keeps
		// decoded; signed and encrypted documents are few and small.
		v.Doc()
		v.secured = data
		if !shared {
			v.secured = bytes.Clone(data)
		}
	}
	return v, nil
}

// parseEager is parse as it was before raw nodes: every value decoded.
// The tests compare the two.
func parseEager(data []byte, shared bool) (*VCon, error) {
	x, err := decodeFrom(data, shared)
	if err != nil {
		return nil, fmt.Errorf("vcon: invalid JSON: %w", err)
	}
	doc, ok := x.(map[string]any)
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

// Doc returns the document's JSON object, all of it decoded. It is the
// document's own: changing it changes the vCon. A link that reads only
// some arrays is cheaper with List: the parts of a parsed document that
// nothing asked for are kept as their JSON text until Doc decodes them.
func (v *VCon) Doc() map[string]any {
	if !v.lazy.Load() {
		return v.doc
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.lazy.Load() {
		o, _ := withoutRaw(v.doc)
		v.doc = o.(map[string]any)
		v.opened = allArrays
		v.lazy.Store(false)
	}
	return v.doc
}

// tree is the document's object as it is, raw nodes and all, for the
// code of this package that reads through them.
func (v *VCon) tree() map[string]any {
	if !v.lazy.Load() {
		return v.doc
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.doc
}

// The arrays List decodes on demand, as bits of VCon.opened.
var arrayBits = map[string]uint8{Parties: 1, Dialog: 2, Analysis: 4, Attachments: 8}

const allArrays = 15

// openArray decodes the raw nodes of the document's member key and
// returns the document's object.
func (v *VCon) openArray(key string) map[string]any {
	if !v.lazy.Load() {
		return v.doc
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	bit := arrayBits[key]
	if bit == 0 || v.opened&bit == 0 {
		if o, changed := withoutRaw(v.doc[key]); changed {
			doc := maps.Clone(v.doc)
			doc[key] = o
			v.doc = doc
		}
		v.opened |= bit
	}
	return v.doc
}

// Replace makes v the document w is, as a link that receives a whole new
// vCon for the one it was given does. w is not to be used after.
func (v *VCon) Replace(w *VCon) {
	doc, opened, lazy := w.state()
	v.mu.Lock()
	defer v.mu.Unlock()
	v.doc, v.opened, v.size, v.secured = doc, opened, w.size, w.secured
	v.lazy.Store(lazy)
}

// state is what Clone and the copies of normalize.go carry over.
func (v *VCon) state() (doc map[string]any, opened uint8, lazy bool) {
	if !v.lazy.Load() {
		return v.doc, allArrays, false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.doc, v.opened, v.lazy.Load()
}

// derived is a document made from v's: doc with v's raw nodes in it.
func derived(doc map[string]any, opened uint8, lazy bool) *VCon {
	w := &VCon{doc: doc, opened: opened}
	w.lazy.Store(lazy)
	return w
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
	return appendJSON(slices.Grow(dst, v.size+v.size/8+256), v.tree())
}

// Canonical is the document encoded as Marshal encodes one it decoded
// (sorted keys, no white space), also for a signed or encrypted document,
// whose bytes as parsed it ignores. A database that keeps JSON as a value
// (PostgreSQL's jsonb, BSON) gives a document back in its own layout;
// links.sign writes the signed form in this encoding, so that such a
// storage gives back the very bytes it was given.
func Canonical(v *VCon) ([]byte, error) {
	return appendJSON(make([]byte, 0, v.size+256), v.tree())
}

// UUID returns the document's uuid, or "" when it has none. A signed or
// encrypted document's is the one its headers carry (the draft's uuid
// header parameter): the vCon inside is not readable without a key.
func (v *VCon) UUID() string {
	doc := v.tree()
	if FormOf(doc) != Unsigned {
		return securedUUID(doc)
	}
	s, _ := doc["uuid"].(string)
	return s
}

// String returns the string field key, or "" when absent or not a string.
func (v *VCon) String(key string) string {
	s, _ := v.tree()[key].(string)
	return s
}

// List returns the objects of one of the document's arrays (Parties, Dialog,
// Analysis, Attachments). Entries that are not objects are skipped; the
// returned maps are the document's own, so changing them changes the vCon.
// The array is decoded all through; the rest of the document is not.
func (v *VCon) List(key string) []map[string]any {
	return objects(v.openArray(key), key)
}

// objects is the objects of doc's array key. Inside this package, they
// may hold raw nodes; an array kept whole (rawArray) has none here: a
// reader of its entries expands it first (expandArray), and Normalize
// has nothing to do in it but the renames it makes in its bytes.
func objects(doc map[string]any, key string) []map[string]any {
	items, _ := doc[key].([]any)
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
	doc := v.writableArray(key)
	items, _ := doc[key].([]any)
	doc[key] = append(items, item)
}

// Clone returns a deep copy, for links that must not share state.
func (v *VCon) Clone() *VCon {
	doc, opened, lazy := v.state()
	w := derived(cloneValue(doc).(map[string]any), opened, lazy) // raw nodes are never changed: shared
	w.size, w.secured = v.size, v.secured
	return w
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
