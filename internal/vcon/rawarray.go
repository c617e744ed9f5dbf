package vcon

import (
	"bytes"
	"maps"
	"strconv"
	"unsafe"
)

// Decoded, the entries of the four arrays (every dialog, analysis and
// attachment entry, and the list of parties) were a map each, filled,
// then read by Validate and Normalize and sorted and written back by the
// encoder: on a small vCon, the larger part of the worker's CPU per
// document. Most documents the worker takes were written by a worker
// (Normalize) or by a producer that writes the encoder's form, so those
// entries are already what Validate accepts and what Normalize leaves
// alone, but for the legacy names some producers still write (a dialog's
// mimetype). Parse checks that, in the pass that reads the array, and
// keeps such an array as its bytes (rawArray): Validate has nothing to
// read in it, Normalize renames in the bytes, and the encoder copies it.
//
// The check only decides "valid, canonical and normal but for names";
// it never reports anything. Whatever it is not sure of (an error
// Validate would report, an object body Normalize turns into text, white
// space, an escaped name...) makes Parse decode the array as before, and
// Validate and Normalize then do what they always did, errors and all.

// rawArray is one of the document's arrays (parties, dialog, analysis,
// attachments) in its canonical encoding, of which Parse found that every
// entry is an object, that Validate finds nothing wrong in it but perhaps
// party indices the document has no parties for, and that Normalize
// changes nothing in it but perhaps legacy names, which it renames in the
// bytes (normalized). It is never changed: a reader that needs its
// entries decodes them (VCon.expandArray, or withoutRaw for a caller).
type rawArray struct {
	text  rawJSON
	items int
	// maxParty is the largest party index the entries of a dialog
	// refer to, or -1: Validate compares it with the document's parties,
	// which may change after Parse (or come after the dialog, as they
	// do in sorted order).
	maxParty int64
	// renames says that entries have legacy names Normalize renames
	// (normalized does it here): producers that predate the renames
	// write a dialog's mimetype.
	renames bool
	// mayHoldTags says that an entry has a purpose or type "tags":
	// without one, an array of attachments holds no tags attachment
	// (isTagsAttachment), and AddTag appends one to the bytes
	// (withTagsAttachment).
	mayHoldTags bool
}

// entries is the array decoded as Parse decodes one of the document's
// member key that it does not keep raw: entries decoded, their members
// raw where they may be.
func (a *rawArray) entries(key string) any {
	policy, _ := topLevel.child(key)
	x, _, err := decodeWith(a.text, true, policy) // a.text is never changed: shared
	if err != nil {
		// Parse made a.text of an array it read.
		panic("vcon: a raw array does not decode: " + err.Error())
	}
	return x
}

// expandArray replaces the document's member key, when it is a rawArray,
// by its entries (rawArray.entries), and returns the document's object.
// As openArray, it replaces the object rather than changing it, for the
// storages that may be encoding the document meanwhile.
func (v *VCon) expandArray(key string) map[string]any {
	if !v.lazy.Load() {
		return v.doc
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	a, ok := v.doc[key].(*rawArray)
	if !ok {
		return v.doc
	}
	doc := maps.Clone(v.doc)
	doc[key] = a.entries(key)
	v.doc = doc
	return doc
}

// withTagsAttachment is the array of attachments a with a tags
// attachment holding the one tag appended, as AddTag writes it when the
// document has none: a holds none (!a.mayHoldTags). The entry is
// written as the encoder writes it, so the result is canonical too, and
// valid and normal.
func (a *rawArray) withTagsAttachment(tag string) *rawArray {
	// The body is compactJSON([]string{tag}), written here.
	var small [128]byte
	list := append(small[:0], '[')
	list = append(appendString(list, tag), ']')
	body := unsafe.String(unsafe.SliceData(list), len(list))
	entry := []byte(`{"body":`)
	const rest = `,"encoding":"json","purpose":"` + TagsPurpose + `"}`
	text := make([]byte, 0, len(a.text)+len(entry)+quotedLen(body)+len(rest)+1)
	text = append(text, a.text[:len(a.text)-1]...)
	if a.items > 0 {
		text = append(text, ',')
	}
	text = append(text, entry...)
	text = appendString(text, body)
	text = append(text, rest...)
	text = append(text, ']')
	return &rawArray{text: text, items: a.items + 1, maxParty: a.maxParty, renames: a.renames, mayHoldTags: true}
}

// appendRawTagsAttachment appends the tags attachment AddTag makes for
// tag to the attachments when Parse kept them raw and they hold no tags
// attachment, and reports whether it did. AddTag changes the document:
// no reader reads it meanwhile.
func (v *VCon) appendRawTagsAttachment(tag string) bool {
	if !v.lazy.Load() {
		return false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	a, raw := v.doc[Attachments].(*rawArray)
	if !raw || a.mayHoldTags {
		return false
	}
	v.doc[Attachments] = a.withTagsAttachment(tag)
	return true
}

// writableArray is expandArray for a caller that changes the document
// (AddTag, Append), which no reader may read meanwhile: the member is
// replaced in the document's object, not in a copy of it.
func (v *VCon) writableArray(key string) map[string]any {
	if !v.lazy.Load() {
		return v.doc
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if a, ok := v.doc[key].(*rawArray); ok {
		v.doc[key] = a.entries(key)
	}
	return v.doc
}

// isTopArray says whether the document's member name is one of the
// arrays Parse may keep as a rawArray.
func isTopArray(name string) bool {
	switch name {
	case Parties, Dialog, Analysis, Attachments:
		return true
	}
	return false
}

// topArray reads the document's member name, an array: as a rawArray
// when normalArray finds it may be one, decoded under below otherwise.
// The decoding reads the array again, but not the long values the check
// has read already (remember).
func (d *fastDecoder) topArray(name string, below lazyPolicy) (any, bool) {
	start, depth := d.i, d.depth
	d.memos, d.nextMemo = 0, 0
	if a, ok := d.normalArray(name); ok {
		text := d.data[start:d.i]
		a.text = rawJSON(text[:len(text):len(text)])
		if !d.shared {
			a.text = bytes.Clone(text)
		}
		d.raws++
		return d.newRawArray(a), true
	}
	d.i, d.depth = start, depth
	v, ok := d.value(below)
	d.memos, d.nextMemo = 0, 0
	return v, ok
}

// newRawArray is a, in the document's block of them: one allocation for
// the four arrays of a vCon rather than one each.
func (d *fastDecoder) newRawArray(a rawArray) *rawArray {
	if d.arrays == nil || d.nArrays == len(d.arrays) {
		d.arrays, d.nArrays = new([4]rawArray), 0
	}
	p := &d.arrays[d.nArrays]
	d.nArrays++
	*p = a
	return p
}

// memoSpan is what the check of an array found of one long value it
// read where a raw node may be: where it ends, and what scanString found
// in it (a string) or that it is canonical (an object or array; only
// canonical ones are noted).
type memoSpan struct {
	start, end int
	flags      uint8
}

// minMemo is the length from which normalArray notes a value for the
// decoding that may follow: shorter ones cost less read again than
// looked up.
const minMemo = 256

// remember notes the value at data[start:d.i] for the decoding of the
// array, when normalArray's check fails after it.
func (d *fastDecoder) remember(start int, flags uint8) {
	if d.i-start >= minMemo && d.memos < len(d.memo) {
		d.memo[d.memos] = memoSpan{start: start, end: d.i, flags: flags}
		d.memos++
	}
}

// remembered is the note of the value at the read position, if any.
func (d *fastDecoder) remembered() (memoSpan, bool) {
	for d.nextMemo < d.memos && d.memo[d.nextMemo].start < d.i {
		d.nextMemo++
	}
	if d.nextMemo < d.memos && d.memo[d.nextMemo].start == d.i {
		d.nextMemo++
		return d.memo[d.nextMemo-1], true
	}
	return memoSpan{}, false
}

// normalArray reads the array at the read position, the document's
// member name, and reports whether it may be kept as a rawArray: it is
// canonical (as canonical defines it), each entry is an object, Validate
// finds nothing wrong in any entry but perhaps its party indices (noted
// in maxParty), and Normalize would change nothing in it but legacy
// names (noted in renames). false may also mean a syntax error, which
// the decoding that follows then finds.
func (d *fastDecoder) normalArray(name string) (rawArray, bool) {
	a := rawArray{maxParty: -1}
	canon := true
	empty, ok := d.open(']', -1, &canon)
	if !ok || !canon {
		return a, false
	}
	for more := !empty; more; {
		if d.peek() != '{' {
			return a, false // Validate: not an object
		}
		if name == Parties {
			// Validate and Normalize read nothing of a party: it
			// only has to be canonical, as a raw party is now.
			start := d.i
			if !d.skip(0, &canon) || !canon {
				return a, false
			}
			d.remember(start, 0)
		} else if !d.normalEntry(name, &a) {
			return a, false
		}
		a.items++
		if more, ok = d.next(']', &canon); !ok || !canon {
			return a, false
		}
	}
	return a, true
}

// The members of an entry that Normalize renames, by the names it
// renames them from and to, as bits.
const (
	hasType uint8 = 1 << iota
	hasPurpose
	hasMimetype
	hasMediatype
	hasSchemaVersion
	hasSchema
	hasMustSupport
	hasCritical
)

// renameBit is the bit of the member name, or 0.
func renameBit(name []byte) uint8 {
	switch string(name) { // does not allocate
	case "type":
		return hasType
	case "purpose":
		return hasPurpose
	case "mimetype":
		return hasMimetype
	case "mediatype":
		return hasMediatype
	case "schema_version":
		return hasSchemaVersion
	case "schema":
		return hasSchema
	case "must_support":
		return hasMustSupport
	case "critical":
		return hasCritical
	}
	return 0
}

// normalEntry reads an entry of the array name (dialog, analysis,
// attachments), an object, and reports whether it is canonical, valid
// and normal, as normalArray asks.
func (d *fastDecoder) normalEntry(array string, a *rawArray) bool {
	canon := true
	empty, ok := d.open('}', -1, &canon)
	if !ok || !canon {
		return false
	}
	var names uint8
	prevStart, prevEnd := 0, 0
	for more := !empty; more; {
		if d.peek() != '"' {
			return false
		}
		start := d.i + 1
		end, flags, ok := scanString(d.data, start)
		if !ok || flags != 0 {
			return false // an escaped name: canonical does not compare those
		}
		if prevEnd > 0 && bytes.Compare(d.data[prevStart:prevEnd], d.data[start:end]) >= 0 {
			return false // out of order, or a duplicate
		}
		prevStart, prevEnd = start, end
		d.i = end + 1
		if d.peek() != ':' {
			return false
		}
		d.i++
		member := d.data[start:end]
		checked := false        // by the reading of what Validate reads
		switch string(member) { // does not allocate
		case "body":
			if c := d.peek(); c == '{' || c == '[' {
				return false // Normalize turns it into text (encodeBody)
			}
		case "parties":
			if array == Dialog {
				if !d.partyRefs(a) {
					return false
				}
				checked = true
			}
		case "duration":
			if array == Dialog {
				if !d.duration() {
					return false
				}
				checked = true
			}
		}
		if !checked {
			bit := renameBit(member)
			names |= bit
			if bit&(hasType|hasPurpose) != 0 && bytes.HasPrefix(d.data[d.i:], []byte(`"tags"`)) {
				a.mayHoldTags = true
			}
			if !d.normalValue() {
				return false
			}
		}
		if more, ok = d.next('}', &canon); !ok || !canon {
			return false
		}
	}
	if renames(array, names) != 0 {
		a.renames = true
	}
	return true
}

// entryRenames are the renames of an entry's members, the one list that
// Normalize (and conserver's read) and ToVersion001 (backwards) apply and
// that normalArray keeps raw arrays by: each renames a legacy name when
// the current one is absent (rename), type only in attachments; the bits
// are the names' in a raw entry (renameBit).
var entryRenames = []struct {
	from, to       string
	toBytes        []byte
	fromBit, toBit uint8
	attachments    bool
}{
	{"type", "purpose", []byte("purpose"), hasType, hasPurpose, true},
	{"mimetype", "mediatype", []byte("mediatype"), hasMimetype, hasMediatype, false},
	{"schema_version", "schema", []byte("schema"), hasSchemaVersion, hasSchema, false},
	{"must_support", "critical", []byte("critical"), hasMustSupport, hasCritical, false},
}

// renameEntry applies entryRenames to e, an entry of array, forwards
// (Normalize) or backwards (ToVersion001).
func renameEntry(e map[string]any, array string, backwards bool) {
	for _, r := range entryRenames {
		if r.attachments && array != Attachments {
			continue
		}
		if backwards {
			rename(e, r.to, r.from)
		} else {
			rename(e, r.from, r.to)
		}
	}
}

// renames is the bits of the names Normalize renames in an entry of
// array that has the names of the bits names.
func renames(array string, names uint8) uint8 {
	var out uint8
	for _, r := range entryRenames {
		if names&r.fromBit != 0 && names&r.toBit == 0 && (!r.attachments || array == Attachments) {
			out |= r.fromBit
		}
	}
	return out
}

// renamed is the name Normalize gives a member name, of the bit bit,
// in an entry whose renamed names are the bits renamed.
func renamed(name []byte, bit, renamed uint8) []byte {
	if bit&renamed != 0 {
		for _, r := range entryRenames {
			if r.fromBit == bit {
				return r.toBytes
			}
		}
	}
	return name
}

// normalized is the array, one of the document's array, as Normalize
// leaves it: its entries' legacy names renamed (a.renames), which is all
// Normalize changes in a rawArray. It reads the entries' members in
// place and writes them sorted by their new names, which is what the
// encoder writes for the renamed entries: the array is canonical, so
// each member's value is already its encoding.
func (a *rawArray) normalized(array string) *rawArray {
	type member struct {
		name       []byte
		bit        uint8 // renameBit
		value, end int
	}
	var (
		// Room for the longer names: type becomes purpose.
		out     = make([]byte, 0, len(a.text)+a.items*len("purposemediatype"))
		d       = fastDecoder{data: a.text, i: 1}
		members []member
		small   [16]member
	)
	out = append(out, '[')
	for d.peek() == '{' {
		d.i++
		members = small[:0]
		var names uint8
		for d.peek() == '"' {
			end, _, _ := scanString(d.data, d.i+1)
			m := member{name: d.data[d.i+1 : end], value: end + 2}
			m.bit = renameBit(m.name)
			names |= m.bit
			d.i = m.value
			var canon bool // known: the array is canonical
			d.skip(0, &canon)
			m.end = d.i
			members = append(members, m)
			if d.peek() == ',' {
				d.i++
			}
		}
		d.i++ // the entry's closing brace
		bits := renames(array, names)
		// In the encoder's order of the new names: an insertion sort,
		// as an entry has a few members and a rename seldom moves one.
		for i := range members {
			m := members[i]
			m.name = renamed(m.name, m.bit, bits)
			j := i
			for ; j > 0 && bytes.Compare(members[j-1].name, m.name) > 0; j-- {
				members[j] = members[j-1]
			}
			members[j] = m
		}
		out = append(out, '{')
		for i, m := range members {
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, '"')
			out = append(out, m.name...)
			out = append(out, '"', ':')
			out = append(out, a.text[m.value:m.end]...)
		}
		out = append(out, '}')
		if d.peek() == ',' {
			out = append(out, ',')
			d.i++
		}
	}
	out = append(out, ']')
	renamed := *a // what else Parse noted holds: names only changed
	renamed.text, renamed.renames = out, false
	return &renamed
}

// normalValue reads a member of an entry that neither Validate nor
// Normalize reads into, and reports whether it is canonical. A long one
// is noted for the decoding that follows a failed check.
func (d *fastDecoder) normalValue() bool {
	start := d.i
	if d.peek() == '"' {
		_, flags, ok := d.quoted()
		if !ok || flags&strNotCanonical != 0 {
			return false
		}
		d.remember(start, flags)
		return true
	}
	canon := true
	if !d.skip(0, &canon) || !canon {
		return false
	}
	d.remember(start, 0)
	return true
}

// partyRefs reads a dialog entry's parties and reports whether
// checkPartyRefs accepts them given parties enough (a null, an index, a
// list of indices and lists of indices, without white space), noting the
// largest index in a.maxParty.
func (d *fastDecoder) partyRefs(a *rawArray) bool {
	switch d.peek() {
	case 'n':
		return d.literal("null") // Validate skips a null
	case '[':
	default:
		return d.partyIndex(a)
	}
	canon := true
	empty, ok := d.open(']', -1, &canon)
	if !ok || !canon {
		return false
	}
	for more := !empty; more; {
		if d.peek() == '[' {
			empty, ok := d.open(']', -1, &canon)
			if !ok || !canon {
				return false
			}
			for inner := !empty; inner; {
				if !d.partyIndex(a) {
					return false
				}
				if inner, ok = d.next(']', &canon); !ok || !canon {
					return false
				}
			}
		} else if !d.partyIndex(a) {
			return false
		}
		if more, ok = d.next(']', &canon); !ok || !canon {
			return false
		}
	}
	return true
}

// partyIndex reads a number that checkPartyRefs takes for a party index
// (json.Number.Int64 reads it, and it is not negative).
func (d *fastDecoder) partyIndex(a *rawArray) bool {
	start := d.i
	if !d.number() {
		return false
	}
	idx, err := strconv.ParseInt(d.unsafeString(start), 10, 64)
	if err != nil || idx < 0 {
		return false
	}
	a.maxParty = max(a.maxParty, idx)
	return true
}

// duration reads a dialog entry's duration and reports whether Validate
// accepts it: null, or a number json.Number.Float64 reads, not negative.
func (d *fastDecoder) duration() bool {
	if d.peek() == 'n' {
		return d.literal("null")
	}
	start := d.i
	if !d.number() {
		return false
	}
	f, err := strconv.ParseFloat(d.unsafeString(start), 64)
	return err == nil && f >= 0
}

// unsafeString is data[start:d.i] as a string, for reading it in place.
func (d *fastDecoder) unsafeString(start int) string {
	return unsafe.String(&d.data[start], d.i-start)
}
