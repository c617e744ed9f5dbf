package redact

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// Finding is one span found in a vCon. It says where and what kind, never
// what: a Report can be logged, stored and shown to people who may not see
// the data.
type Finding struct {
	Type Type `json:"type"`
	// Path locates the text: "dialog[2].body", "subject",
	// "analysis[0].body.results.channels[0].alternatives[0].words". A body
	// that is JSON inside a string (encoding "json") is entered as if it
	// were decoded.
	Path string `json:"path"`
	// Start and End are byte offsets in the text at Path, before redaction.
	// For a words array the text is the words joined by single spaces.
	Start int `json:"start"`
	End   int `json:"end"`
	// Words is the range of the words array that held the span (indexes of
	// the array before redaction, Last inclusive).
	Words *IndexRange `json:"words,omitempty"`
	// Time is when the span was spoken, in seconds from the start of the
	// recording: the start of its first word to the end of its last, or
	// the bounds of its segment when there are no word timings.
	Time *TimeRange `json:"time,omitempty"`
	// Dialog is the index of the dialog the text belongs to, when known:
	// the recording that Time is measured in.
	Dialog *int `json:"dialog,omitempty"`
	// Group is shared by the findings of one span that continued across
	// segments ("4111 1111" in one segment, "1111 1111" in the next).
	Group int `json:"group"`
}

// IndexRange is an inclusive range of array indexes.
type IndexRange struct {
	First int `json:"first"`
	Last  int `json:"last"`
}

// TimeRange is a time interval in seconds.
type TimeRange struct {
	Start float64 `json:"start"`
	End   float64 `json:"end"`
}

// Skipped is a part of the vCon that may hold personal data but that this
// package cannot read: a recording, a binary or external body. The caller
// decides what to do with it (drop it, bleep it by the findings' times).
type Skipped struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// Report is what RedactDocument found and what it could not read.
type Report struct {
	Findings []Finding `json:"findings"`
	Skipped  []Skipped `json:"skipped,omitempty"`
	// Timed are the indexes of the dialogs for which a transcript with
	// timings (words or segments with a start) was read, sorted: a caller
	// muting a recording by the findings' times needs to know that the
	// recording was transcribed at all, since no finding is also what an
	// untranscribed recording gives.
	Timed []int `json:"timed,omitempty"`
}

// Counts returns the number of detections of each type; a span split over
// segments counts once.
func (rep *Report) Counts() map[Type]int {
	seen := map[int]bool{}
	out := map[Type]int{}
	for _, f := range rep.Findings {
		if !seen[f.Group] {
			seen[f.Group] = true
			out[f.Type]++
		}
	}
	return out
}

// RedactVCon is RedactDocument on a vcon.VCon.
func (r *Redactor) RedactVCon(ctx context.Context, v *vcon.VCon) (*Report, error) {
	return r.RedactDocument(ctx, v.Doc())
}

// RedactDocument finds and replaces personal data in the texts of a
// decoded vCon, in place: the subject, dialog of type "text", and the
// bodies of every analysis and attachment (text, or JSON in which every
// string is read, word arrays and timed segments as a whole so that a
// number split over words or segments is found). Parties are not changed:
// whether to keep a party's name, tel or mailto is the caller's policy,
// not a text search.
//
// When the External detector fails, nothing has been changed and the error
// is returned.
func (r *Redactor) RedactDocument(ctx context.Context, doc map[string]any) (*Report, error) {
	w := &walker{rep: &Report{Findings: []Finding{}}}
	w.collect(doc)
	spans := make([][]Span, len(w.units))
	for i, u := range w.units {
		spans[i] = r.local(u.text)
	}
	if r.external != nil && len(w.units) > 0 {
		texts := make([]string, len(w.units))
		for i, u := range w.units {
			texts[i] = u.text
		}
		ext, err := r.external.Detect(ctx, texts)
		if err != nil {
			return nil, err
		}
		if len(ext) != len(texts) {
			return nil, fmt.Errorf("redact: external detector returned %d results for %d texts", len(ext), len(texts))
		}
		for i := range ext {
			for _, s := range ext[i] {
				if s.Start < 0 || s.End > len(texts[i]) || s.Start >= s.End {
					return nil, fmt.Errorf("redact: external detector returned span [%d,%d) for a text of %d bytes", s.Start, s.End, len(texts[i]))
				}
			}
			spans[i] = append(spans[i], ext[i]...)
		}
	}
	for i, u := range w.units {
		if ss := merge(spans[i]); len(ss) > 0 {
			r.applyUnit(w, u, ss)
		}
	}
	for _, f := range w.finish {
		f()
	}
	for d := range w.timed {
		w.rep.Timed = append(w.rep.Timed, d)
	}
	sort.Ints(w.rep.Timed)
	sort.SliceStable(w.rep.Findings, func(i, j int) bool { return w.rep.Findings[i].Group < w.rep.Findings[j].Group })
	return w.rep, nil
}

type unitKind uint8

const (
	unitString unitKind = iota
	unitWords
	unitSegments
)

// unit is one text a detector reads: a string, or the words or segments of
// an array read as one text.
type unit struct {
	kind unitKind
	path string
	text string
	body *bodyState

	set func(string) // unitString

	// unitWords and unitSegments: the array, where each element's text
	// starts in text, and how to store a rewritten array.
	elems   []map[string]any
	offsets []int
	lengths []int
	textKey string // unitSegments
	setArr  func([]any)
}

// bodyState is one body: its dialog, for times, and, for a body decoded
// from a string, whether it must be encoded again.
type bodyState struct {
	dialog  *int
	base    time.Time // the dialog's start, for segments timed by date
	changed bool
}

type walker struct {
	units  []*unit
	finish []func()
	rep    *Report
	group  int
	dialog []any
	timed  map[int]bool
}

func (w *walker) skip(path, reason string) {
	w.rep.Skipped = append(w.rep.Skipped, Skipped{Path: path, Reason: reason})
}

func (w *walker) collect(doc map[string]any) {
	w.dialog, _ = doc[vcon.Dialog].([]any)
	if s, ok := doc["subject"].(string); ok {
		w.units = append(w.units, &unit{kind: unitString, path: "subject", text: s, body: &bodyState{}, set: func(v string) { doc["subject"] = v }})
	}
	for i, d := range w.dialog {
		e, ok := d.(map[string]any)
		if !ok {
			continue
		}
		path := fmt.Sprintf("dialog[%d]", i)
		idx := i
		switch e["type"] {
		case "text":
			w.body(e, path, &idx)
		case "recording", "video":
			if e["body"] != nil || e["url"] != nil {
				w.skip(path, "media: redact it by the findings' time ranges for this dialog")
			}
		}
	}
	for _, section := range []string{vcon.Analysis, vcon.Attachments} {
		list, _ := doc[section].([]any)
		for i, a := range list {
			if e, ok := a.(map[string]any); ok {
				w.body(e, fmt.Sprintf("%s[%d]", section, i), dialogRef(e["dialog"]))
			}
		}
	}
}

// dialogRef reads an entry's "dialog": an index, or a list of one.
func dialogRef(x any) *int {
	if l, ok := x.([]any); ok && len(l) == 1 {
		x = l[0]
	}
	f, ok := vcon.Number(x)
	if !ok || f < 0 || f != float64(int(f)) {
		return nil
	}
	i := int(f)
	return &i
}

// textMediatype reports whether a base64url body of this media type is
// text to read.
func textMediatype(mt string) bool {
	mt = strings.ToLower(strings.TrimSpace(strings.SplitN(mt, ";", 2)[0]))
	return mt == "" || strings.HasPrefix(mt, "text/") || mt == "application/json" || strings.HasSuffix(mt, "+json") ||
		mt == "message/rfc822" || mt == "application/xml" || strings.HasSuffix(mt, "+xml")
}

// body reads the body of a dialog, analysis or attachment entry.
func (w *walker) body(e map[string]any, path string, dialog *int) {
	bs := &bodyState{dialog: dialog}
	if dialog != nil && *dialog < len(w.dialog) {
		if d, ok := w.dialog[*dialog].(map[string]any); ok {
			if s, ok := d["start"].(string); ok {
				bs.base, _ = vcon.ParseTime(s)
			}
		}
	}
	path += ".body"
	switch b := e["body"].(type) {
	case nil:
		if e["url"] != nil {
			w.skip(path, "external: the body is referenced by url and not fetched")
		}
	case map[string]any, []any:
		w.walk(b, path, bs, func(v any) { e["body"] = v })
	case string:
		enc, _ := e["encoding"].(string)
		mt, _ := e["mediatype"].(string)
		if mt == "" {
			mt, _ = e["mimetype"].(string)
		}
		switch strings.ToLower(enc) {
		case "base64url", "base64":
			raw, enc64, ok := decodeBase64(b)
			switch {
			case !ok:
				w.skip(path, "base64url body that does not decode")
			case !textMediatype(mt) || !utf8.Valid(raw):
				w.skip(path, "binary body")
			default:
				w.stringBody(string(raw), path, bs, false, func(s string) { e["body"] = enc64.EncodeToString([]byte(s)) })
			}
		case "json":
			w.stringBody(b, path, bs, true, func(s string) { e["body"] = s })
		default:
			// Older writers stored JSON with encoding "none".
			t := strings.TrimSpace(b)
			w.stringBody(b, path, bs, strings.HasPrefix(t, "{") || strings.HasPrefix(t, "["), func(s string) { e["body"] = s })
		}
	}
}

// decodeBase64 decodes base64url as the draft defines it, and the padded
// and standard alphabets writers use by mistake, returning the encoding
// that read it so that the body is written back the same way.
func decodeBase64(s string) ([]byte, *base64.Encoding, bool) {
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.StdEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, enc, true
		}
	}
	return nil, nil, false
}

// stringBody reads a body held in a string: as JSON when it is JSON,
// written back compact when something in it changed, else as text.
func (w *walker) stringBody(s, path string, bs *bodyState, maybeJSON bool, set func(string)) {
	if maybeJSON {
		dec := json.NewDecoder(strings.NewReader(s))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err == nil && !dec.More() {
			if _, isStr := v.(string); !isStr {
				root := v
				w.walk(v, path, bs, func(nv any) { root = nv })
				w.finish = append(w.finish, func() {
					if !bs.changed {
						return
					}
					var buf bytes.Buffer
					enc := json.NewEncoder(&buf)
					enc.SetEscapeHTML(false)
					if err := enc.Encode(root); err == nil {
						set(strings.TrimRight(buf.String(), "\n"))
					}
				})
				return
			}
		}
	}
	w.units = append(w.units, &unit{kind: unitString, path: path, text: s, body: bs, set: set})
}

// metaKeys hold identifiers, hashes and timestamps in vendor answers, not
// conversation text; reading them would only find digits that look like
// numbers (a request id, a sha256).
var metaKeys = map[string]bool{
	"uuid": true, "request_id": true, "transaction_key": true, "sha256": true, "sha512": true,
	"content_hash": true, "created": true, "created_at": true, "updated_at": true, "start": true,
	"end": true, "model": true, "models": true, "model_info": true, "mediatype": true, "mimetype": true,
	"encoding": true, "schema": true, "vendor": true, "type": true, "id": true, "language": true,
	"detected_language": true,
}

var plainKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func keyPath(path, k string) string {
	if plainKey.MatchString(k) {
		return path + "." + k
	}
	return path + "[" + strconv.Quote(k) + "]"
}

func (w *walker) walk(v any, path string, bs *bodyState, set func(any)) {
	switch t := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if metaKeys[k] {
				continue
			}
			w.walk(t[k], keyPath(path, k), bs, func(nv any) { t[k] = nv })
		}
	case []any:
		if elems, ok := objects(t); ok {
			if isWords(elems) {
				w.words(elems, path, bs, func(a []any) { set(a) })
				return
			}
			if key := segmentKey(elems); key != "" {
				w.segments(elems, key, path, bs, func(a []any) { set(a) })
				for i, e := range elems {
					for _, k := range sortedKeys(e) {
						if k != key && !metaKeys[k] {
							w.walk(e[k], keyPath(fmt.Sprintf("%s[%d]", path, i), k), bs, func(nv any) { e[k] = nv })
						}
					}
				}
				return
			}
		}
		for i := range t {
			w.walk(t[i], fmt.Sprintf("%s[%d]", path, i), bs, func(nv any) { t[i] = nv })
		}
	case string:
		w.units = append(w.units, &unit{kind: unitString, path: path, text: t, body: bs, set: func(s string) { set(s) }})
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func objects(a []any) ([]map[string]any, bool) {
	if len(a) == 0 {
		return nil, false
	}
	out := make([]map[string]any, len(a))
	for i, x := range a {
		m, ok := x.(map[string]any)
		if !ok {
			return nil, false
		}
		out[i] = m
	}
	return out, true
}

// wordText is the text of one word: Deepgram's punctuated_word when it
// has one, else word (Whisper writes it with a leading space).
func wordText(e map[string]any) (string, bool) {
	if s, ok := e["punctuated_word"].(string); ok {
		return strings.TrimSpace(s), true
	}
	if s, ok := e["word"].(string); ok {
		return strings.TrimSpace(s), true
	}
	return "", false
}

func isWords(elems []map[string]any) bool {
	for _, e := range elems {
		if _, ok := wordText(e); !ok {
			return false
		}
	}
	return true
}

// segmentKey returns the text key of an array of timed segments (Whisper
// segments, Deepgram sentences and utterances, the draft's example
// transcript), or "".
func segmentKey(elems []map[string]any) string {
	for _, key := range []string{"text", "transcript"} {
		ok := true
		for _, e := range elems {
			_, isText := e[key].(string)
			_, timed := e["start"]
			if !isText || !timed {
				ok = false
				break
			}
		}
		if ok {
			return key
		}
	}
	return ""
}

func (w *walker) words(elems []map[string]any, path string, bs *bodyState, setArr func([]any)) {
	u := &unit{kind: unitWords, path: path, body: bs, elems: elems, setArr: setArr}
	w.join(u, func(e map[string]any) string { s, _ := wordText(e); return s })
}

func (w *walker) segments(elems []map[string]any, key, path string, bs *bodyState, setArr func([]any)) {
	u := &unit{kind: unitSegments, path: path, body: bs, elems: elems, textKey: key, setArr: setArr}
	w.join(u, func(e map[string]any) string { return e[key].(string) })
}

// join reads u's elements as one text, each element's text (textOf)
// separated by a space, so a number split across words or segments is
// found; it records where each element starts.
func (w *walker) join(u *unit, textOf func(map[string]any) string) {
	var b strings.Builder
	for i, e := range u.elems {
		s := textOf(e)
		if i > 0 {
			b.WriteByte(' ')
		}
		u.offsets = append(u.offsets, b.Len())
		u.lengths = append(u.lengths, len(s))
		b.WriteString(s)
	}
	u.text = b.String()
	w.units = append(w.units, u)
	if d := u.body.dialog; d != nil {
		if _, ok := u.body.timeOf(u.elems[0]["start"]); ok {
			if w.timed == nil {
				w.timed = map[int]bool{}
			}
			w.timed[*d] = true
		}
	}
}

// timeOf reads a word's or segment's time in seconds from the recording's
// start: a number, or a date measured from the dialog's start.
func (bs *bodyState) timeOf(x any) (float64, bool) {
	if f, ok := vcon.Number(x); ok {
		return f, true
	}
	if s, ok := x.(string); ok && !bs.base.IsZero() {
		if t, ok := vcon.ParseTime(s); ok {
			return t.Sub(bs.base).Seconds(), true
		}
	}
	return 0, false
}

func (bs *bodyState) elemTimes(e map[string]any) (start, end float64, ok bool) {
	start, ok = bs.timeOf(e["start"])
	if !ok {
		return 0, 0, false
	}
	if end, ok = bs.timeOf(e["end"]); ok {
		return start, end, true
	}
	if d, ok := vcon.Number(e["duration"]); ok {
		return start, start + d, true
	}
	return 0, 0, false
}

func (w *walker) add(f Finding, bs *bodyState) {
	f.Dialog = bs.dialog
	w.rep.Findings = append(w.rep.Findings, f)
}

func (r *Redactor) applyUnit(w *walker, u *unit, spans []Span) {
	u.body.changed = true
	switch u.kind {
	case unitString:
		for _, s := range spans {
			w.group++
			w.add(Finding{Type: s.Type, Path: u.path, Start: s.Start, End: s.End, Group: w.group}, u.body)
		}
		u.set(r.apply(u.text, spans))
	case unitWords:
		r.applyWords(w, u, spans)
	case unitSegments:
		r.applySegments(w, u, spans)
	}
}

// elemRange returns the elements a span touches.
func (u *unit) elemRange(s Span) (first, last int) {
	first = sort.Search(len(u.offsets), func(i int) bool { return u.offsets[i]+u.lengths[i] > s.Start })
	last = sort.Search(len(u.offsets), func(i int) bool { return u.offsets[i] >= s.End }) - 1
	return first, max(first, last)
}

// applyWords replaces the words a span touches by one word, the label,
// timed from the first word's start to the last one's end, so that the
// words still line up with the audio; in Remove mode they are dropped.
// A span that touches part of a word takes the whole word.
func (r *Redactor) applyWords(w *walker, u *unit, spans []Span) {
	type wr struct {
		t           Type
		first, last int
	}
	var ranges []wr
	for _, s := range spans {
		f, l := u.elemRange(s)
		if n := len(ranges); n > 0 && f <= ranges[n-1].last {
			if rank(s.Type) < rank(ranges[n-1].t) {
				ranges[n-1].t = s.Type
			}
			ranges[n-1].last = max(ranges[n-1].last, l)
			continue
		}
		ranges = append(ranges, wr{s.Type, f, l})
	}
	out := make([]any, 0, len(u.elems))
	next := 0
	for _, rg := range ranges {
		for ; next < rg.first; next++ {
			out = append(out, u.elems[next])
		}
		first, last := u.elems[rg.first], u.elems[rg.last]
		f := Finding{
			Type: rg.t, Path: u.path, Start: u.offsets[rg.first], End: u.offsets[rg.last] + u.lengths[rg.last],
			Words: &IndexRange{First: rg.first, Last: rg.last},
		}
		if s, ok := u.body.timeOf(first["start"]); ok {
			if e, ok := u.body.timeOf(last["end"]); ok {
				f.Time = &TimeRange{Start: s, End: e}
			}
		}
		w.group++
		f.Group = w.group
		w.add(f, u.body)
		if r.mode == Mask {
			label := make(map[string]any, len(first))
			for k, v := range first {
				label[k] = v
			}
			for _, k := range []string{"word", "punctuated_word"} {
				if _, ok := label[k]; ok {
					label[k] = r.Label(rg.t)
				}
			}
			if e, ok := last["end"]; ok {
				label["end"] = e
			}
			out = append(out, label)
		}
		next = rg.last + 1
	}
	for ; next < len(u.elems); next++ {
		out = append(out, u.elems[next])
	}
	u.setArr(out)
}

// applySegments replaces a span in each segment it touches: the label in
// the first, nothing in the ones it continues into, so a number split over
// two segments reads "[CARD]" once.
func (r *Redactor) applySegments(w *walker, u *unit, spans []Span) {
	local := make([][]Span, len(u.elems))
	reps := make([][]string, len(u.elems))
	for _, s := range spans {
		w.group++
		f, l := u.elemRange(s)
		for i := f; i <= l; i++ {
			start := max(s.Start, u.offsets[i]) - u.offsets[i]
			end := min(s.End, u.offsets[i]+u.lengths[i]) - u.offsets[i]
			start, end = trimSeparators(u.elems[i][u.textKey].(string), start, end)
			if start >= end {
				continue
			}
			rep := r.replacement(s.Type)
			if i > f {
				rep = ""
			}
			local[i] = append(local[i], Span{Type: s.Type, Start: start, End: end})
			reps[i] = append(reps[i], rep)
			fd := Finding{Type: s.Type, Path: fmt.Sprintf("%s[%d].%s", u.path, i, u.textKey), Start: start, End: end, Group: w.group}
			if st, en, ok := u.body.elemTimes(u.elems[i]); ok {
				fd.Time = &TimeRange{Start: st, End: en}
			}
			w.add(fd, u.body)
		}
	}
	for i, e := range u.elems {
		if len(local[i]) > 0 {
			e[u.textKey] = applyReps(e[u.textKey].(string), local[i], reps[i])
		}
	}
}

// trimSeparators narrows a piece of a span to what it holds besides the
// punctuation and spaces a number continued across: the full stop ending
// one segment is not part of the card.
func trimSeparators(text string, start, end int) (int, int) {
	sep := func(c byte) bool { return strings.IndexByte(" \t\n\r.,;-()", c) >= 0 }
	for start < end && sep(text[start]) {
		start++
	}
	for end > start && sep(text[end-1]) {
		end--
	}
	return start, end
}
