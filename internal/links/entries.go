package links

// Reading and writing the parts of a vCon the external-service links need,
// with conserver's conventions: bodies that are JSON strings when encoding
// is "json", analysis entries shaped as conserver's add_analysis writes
// them. Tags and analysis lookup are the vcon package's (AddTag,
// FindAnalysis).

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// hasAnalysisType says whether any analysis has type typ.
func hasAnalysisType(v *vcon.VCon, typ string) bool {
	for _, a := range v.List(vcon.Analysis) {
		if a["type"] == typ {
			return true
		}
	}
	return false
}

// decodeJSON decodes with json.Number, the document's number convention.
func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, &json.SyntaxError{Offset: dec.InputOffset()}
	}
	return out, nil
}

// decodedBody is the entry's body as a value: parsed when it is a JSON
// string (encoding "json"), as written otherwise.
func decodedBody(entry map[string]any) any {
	body := entry["body"]
	if s, ok := body.(string); ok && entry["encoding"] == "json" {
		if v, err := decodeJSON([]byte(s)); err == nil {
			return v
		}
	}
	return body
}

// textAt follows a dotted path (conserver's pydash.get: map keys and list
// indices) into an analysis entry whose body is decoded first. A string body
// whose encoding is not "json" is still parsed when the path goes through
// it, because older writers stored JSON strings with encoding "none". A
// non-string result (an object) is returned as its JSON text.
func textAt(entry map[string]any, path string) string {
	var cur any = map[string]any(entry)
	for i, seg := range strings.Split(path, ".") {
		if s, ok := cur.(string); ok {
			v, err := decodeJSON([]byte(s))
			if err != nil {
				return ""
			}
			cur = v
		}
		switch t := cur.(type) {
		case map[string]any:
			if i == 0 && seg == "body" {
				cur = decodedBody(t)
			} else {
				cur = t[seg]
			}
		case []any:
			n, err := strconv.Atoi(seg)
			if err != nil || n < 0 || n >= len(t) {
				return ""
			}
			cur = t[n]
		default:
			return ""
		}
	}
	switch t := cur.(type) {
	case nil:
		return ""
	case string:
		return t
	default:
		b, err := json.Marshal(t)
		if err != nil {
			return ""
		}
		return string(b)
	}
}

// normalizeEntry round-trips a value through JSON so that what a link appends
// looks exactly like what Parse would have produced (json.Number numbers,
// map[string]any objects).
func normalizeEntry(v map[string]any) map[string]any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	out, err := decodeJSON(b)
	if err != nil {
		return v
	}
	m, _ := out.(map[string]any)
	return m
}

// addAnalysis appends an analysis entry the way conserver's add_analysis
// does: type, dialog, vendor, body, encoding, then the extra fields.
func addAnalysis(v *vcon.VCon, typ string, dialog int, vendor string, body string, encoding string, extra map[string]any) {
	entry := map[string]any{
		"type":     typ,
		"dialog":   dialog,
		"vendor":   vendor,
		"body":     body,
		"encoding": encoding,
	}
	for k, e := range extra {
		entry[k] = e
	}
	v.Append(vcon.Analysis, normalizeEntry(entry))
}

// jsonString encodes a body for encoding "json" without HTML escaping.
func jsonString(x any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(x); err != nil {
		return "null"
	}
	return strings.TrimRight(buf.String(), "\n")
}
