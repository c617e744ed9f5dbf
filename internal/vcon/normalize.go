package vcon

import (
	"maps"
	"unsafe"
)

// Versions written by Normalize and ToVersion001.
const (
	CurrentVersion = "0.4.0"
	Version001     = "0.0.1"
)

// Normalize rewrites the document the way every conserver worker write does,
// so that consumers reading what we store see what conserver would have
// stored: the version stamped CurrentVersion, legacy names renamed
// (appended→amended, must_support→critical at the top and in entries,
// attachment type→purpose, mimetype→mediatype, schema_version→schema, as
// conserver's common/lib/vcon_compat.py does on read), object and array
// bodies turned into JSON strings with encoding "json", and empty
// group/redacted (and a null amended, which the 0.0.1 shape writes) dropped. A rename never overwrites: when both the legacy
// and the current name are present, both are kept, because dropping either
// would lose data. Unknown fields are kept. Normalize is idempotent. A
// signed or encrypted document is left as it is: it is its signer's.
func Normalize(v *VCon) {
	if v.Secured() {
		return
	}
	doc := v.tree()
	doc["vcon"] = CurrentVersion
	rename(doc, "appended", "amended")
	rename(doc, "must_support", "critical")
	for _, key := range []string{"group", "redacted"} {
		if x, ok := doc[key]; ok && isEmpty(x) {
			delete(doc, key)
		}
	}
	if x, ok := doc["amended"]; ok && x == nil {
		delete(doc, "amended")
	}
	for _, key := range []string{Dialog, Attachments, Analysis} {
		if a, raw := doc[key].(*rawArray); raw && a.renames {
			// Nothing to do in an array Parse kept raw but the
			// renames (normalArray); objects skips it.
			doc[key] = a.normalized(key)
		}
		for _, e := range objects(doc, key) {
			renameEntry(e, key, false)
			encodeBody(e)
		}
	}
}

// Normalized returns the document as Normalize would leave it, without
// changing v and without a deep copy: only what Normalize rewrites is new
// (the top-level object, the dialog, attachments and analysis arrays and
// their entries, the JSON text of object bodies); every other value
// (strings, parties, nested objects) is v's own. It is for reading, as
// the jq link and the webhook do: a copy of a large vCon's tree cost
// several times the document's size. Change the result and v changes.
func Normalized(v *VCon) *VCon {
	if v.Secured() {
		return v
	}
	out := shallowCopy(v)
	Normalize(out)
	return out
}

// shallowCopy copies the document down to the entries of its arrays, the
// depth Normalize and ToVersion001 change, and shares everything below.
func shallowCopy(v *VCon) *VCon {
	src, opened, lazy := v.state()
	doc := maps.Clone(src)
	for _, key := range []string{Parties, Dialog, Analysis, Attachments} {
		items, ok := doc[key].([]any)
		if !ok {
			continue
		}
		c := make([]any, len(items))
		for i, it := range items {
			if m, ok := it.(map[string]any); ok {
				it = maps.Clone(m)
			}
			c[i] = it
		}
		doc[key] = c
	}
	out := derived(doc, opened, lazy) // raw nodes are never changed: shared
	out.size = v.size
	return out
}

// ToVersion001 returns the document in the 0.0.1 shape that conserver's
// EGRESS_FORMAT_VERSION=0.0.1 produces for consumers that predate the
// renames. The receiver is not changed; as with Normalized, what the
// renames do not touch is shared with it, so the result is for reading.
func ToVersion001(v *VCon) *VCon {
	if v.Secured() {
		return v // the vCon inside keeps the shape it was signed in
	}
	out := shallowCopy(v)
	doc := out.doc // out is this function's own
	doc["vcon"] = Version001
	rename(doc, "amended", "appended")
	rename(doc, "critical", "must_support")
	for _, key := range []string{Dialog, Attachments, Analysis} {
		if a, raw := doc[key].(*rawArray); raw {
			doc[key] = a.entries(key) // its entries are renamed below
		}
		for _, e := range objects(doc, key) {
			renameEntry(e, key, true)
			if key != Dialog {
				inflateBody(e)
			}
		}
	}
	// The 0.0.1 shape always carries these keys (conserver's
	// vcon_egress_compat.to_legacy sets them).
	for key, empty := range map[string]any{"group": []any{}, "redacted": map[string]any{}, "appended": nil} {
		if _, ok := doc[key]; !ok {
			doc[key] = empty
		}
	}
	return out
}

// inflateBody is encodeBody undone, as the 0.0.1 shape carries structured
// bodies: a body that is JSON text with encoding "json" becomes the value
// with encoding "none". A body that does not parse is left as it is.
func inflateBody(e map[string]any) {
	s, ok := text(e["body"])
	if enc, _ := text(e["encoding"]); !ok || enc != "json" {
		return
	}
	doc, err := decodeFrom([]byte(s), false)
	if err != nil {
		return
	}
	e["body"], e["encoding"] = doc, "none"
}

func rename(m map[string]any, from, to string) {
	x, ok := m[from]
	if !ok {
		return
	}
	if _, taken := m[to]; taken {
		return
	}
	m[to] = x
	delete(m, from)
}

func isEmpty(x any) bool {
	switch t := x.(type) {
	case nil:
		return true
	case map[string]any:
		return len(t) == 0
	case []any:
		return len(t) == 0
	case string:
		return t == ""
	}
	return false
}

// encodeBody turns an object or array body into its JSON text, which is how
// conserver stores structured bodies (links such as jq filters and the tag
// reader expect a string there).
func encodeBody(e map[string]any) {
	switch b := e["body"].(type) {
	case map[string]any, []any:
	case rawJSON:
		// Already the text compactJSON would write: the text itself,
		// not a copy (raw nodes are never changed).
		e["body"] = unsafe.String(unsafe.SliceData(b), len(b))
		e["encoding"] = "json"
		return
	default:
		return
	}
	text, err := compactJSON(e["body"])
	if err != nil {
		// Values decoded by Parse always encode; a caller that put something
		// unencodable in the document keeps it as it is.
		return
	}
	e["body"] = text
	e["encoding"] = "json"
}

// compactJSON is x's JSON text. It is written into a buffer of its size,
// measured first, which becomes the string without a copy: an object body
// of a large vCon (a transcript's words) would otherwise cost the buffer's
// growth and a copy, several times its size, while the decoded objects it
// replaces are still live.
func compactJSON(x any) (string, error) {
	b, err := appendJSON(make([]byte, 0, encodedLen(x)), x)
	if err != nil {
		return "", err
	}
	return unsafe.String(unsafe.SliceData(b), len(b)), nil
}
