package vcon

import (
	"encoding/json"
	"fmt"
	"strings"
)

// FieldError is one reason a document is not a usable vCon. Path locates the
// offending value inside the document, e.g. ["dialog", 0, "parties"]; the
// HTTP API prefixes "body" to it to answer 422 the way conserver (FastAPI)
// does. Type is a pydantic-style error type ("missing", "string_type", ...),
// so that clients written against conserver keep matching on it.
type FieldError struct {
	Path []any  `json:"path"`
	Msg  string `json:"msg"`
	Type string `json:"type"`
}

func (e FieldError) Error() string {
	parts := make([]string, len(e.Path))
	for i, p := range e.Path {
		parts[i] = fmt.Sprint(p)
	}
	return strings.Join(parts, ".") + ": " + e.Msg
}

// Detail is one entry of a FastAPI 422 answer: {"detail": [Detail, ...]}.
type Detail struct {
	Loc  []any  `json:"loc"`
	Msg  string `json:"msg"`
	Type string `json:"type"`
}

// Details turns validation errors into FastAPI's 422 entries, with loc
// starting at "body" as FastAPI reports errors in a request body.
func Details(errs []FieldError) []Detail {
	out := make([]Detail, len(errs))
	for i, e := range errs {
		loc := make([]any, 0, len(e.Path)+1)
		loc = append(loc, "body")
		loc = append(loc, e.Path...)
		out[i] = Detail{Loc: loc, Msg: e.Msg, Type: e.Type}
	}
	return out
}

// Error types, named as pydantic names them.
const (
	errMissing    = "missing"
	errString     = "string_type"
	errList       = "list_type"
	errDict       = "dict_type"
	errUUID       = "uuid_parsing"
	errDatetime   = "datetime_parsing"
	errNumber     = "float_type"
	errInt        = "int_type"
	errGreaterEq  = "greater_than_equal"
	errValue      = "value_error"
	errDictOrList = "dict_or_list_type"
)

// ParseAndValidate parses a document and validates it. A parse error is
// returned as err; a parsed but invalid document as errs.
func ParseAndValidate(data []byte) (v *VCon, errs []FieldError, err error) {
	v, err = Parse(data)
	if err != nil {
		return nil, nil, err
	}
	return v, Validate(v), nil
}

// Validate reports why a document is not a vCon conserver's API would
// accept; nil means it is. It checks the top level and the fixed shapes
// below it only, never walking arbitrary nesting, so its cost is bounded by
// the size of the arrays, not the depth of the document.
func Validate(v *VCon) []FieldError {
	var errs []FieldError
	add := func(typ, msg string, path ...any) {
		errs = append(errs, FieldError{Path: path, Msg: msg, Type: typ})
	}
	doc := v.tree()
	if a, ok := doc[Dialog].(*rawArray); ok && a.maxParty >= int64(partyCount(doc)) {
		// A dialog kept raw refers to a party the document does not
		// have: decoded, it is checked below as any other, so that the
		// errors are the ones it always gave.
		doc = v.expandArray(Dialog)
	}

	switch u, present := doc["uuid"]; {
	case !present:
		add(errMissing, "Field required", "uuid")
	default:
		s, ok := u.(string)
		switch {
		case !ok:
			add(errString, "Input should be a valid string", "uuid")
		case !ValidUUID(s):
			add(errUUID, "Input should be a valid UUID, e.g. 018e5a2c-6b1f-7c3a-9d4e-2f1a3b4c5d6e", "uuid")
		}
	}

	switch c, present := doc["created_at"]; {
	case !present:
		add(errMissing, "Field required", "created_at")
	default:
		s, ok := c.(string)
		switch {
		case !ok:
			add(errString, "Input should be a valid string (an ISO 8601 datetime)", "created_at")
		default:
			if _, ok := ParseTime(s); !ok {
				add(errDatetime, "Input should be a valid datetime, e.g. 2024-01-15T10:30:00Z", "created_at")
			}
		}
	}

	if x, present := doc["vcon"]; present {
		if _, ok := x.(string); !ok {
			add(errString, "Input should be a valid string", "vcon")
		}
	}

	var dialog []any
	for _, key := range []string{Parties, Dialog, Analysis, Attachments} {
		x, present := doc[key]
		if !present || x == nil {
			continue
		}
		if _, raw := x.(*rawArray); raw {
			continue // Parse found nothing here to report (but the parties, above)
		}
		items, ok := x.([]any)
		if !ok {
			add(errList, "Input should be a valid list of objects", key)
			continue
		}
		if key == Dialog {
			dialog = items
		}
		for i, it := range items {
			if !isObject(it) { // a party may be raw
				add(errDict, "Input should be a valid dictionary (object)", key, i)
			}
		}
	}

	for _, key := range []string{"redacted", "amended", "appended", "group"} {
		x, present := doc[key]
		if !present || x == nil {
			continue
		}
		switch x.(type) {
		case map[string]any, []any:
		default:
			add(errDictOrList, "Input should be a valid dictionary (object) or list", key)
		}
	}

	nParties := partyCount(doc)
	for i, it := range dialog {
		d, ok := it.(map[string]any)
		if !ok {
			continue
		}
		if p, present := d["parties"]; present && p != nil {
			for _, e := range checkPartyRefs(p, nParties) {
				add(e.Type, e.Msg, append([]any{Dialog, i, "parties"}, e.Path...)...)
			}
		}
		if dur, present := d["duration"]; present && dur != nil {
			n, ok := dur.(json.Number)
			if !ok {
				add(errNumber, "Input should be a valid number", Dialog, i, "duration")
			} else if f, err := n.Float64(); err != nil || f < 0 {
				add(errGreaterEq, "Input should be greater than or equal to 0", Dialog, i, "duration")
			}
		}
	}
	return errs
}

// partyCount is the number of parties a dialog's indices may refer to:
// the items of the parties when they are a list, none otherwise.
func partyCount(doc map[string]any) int {
	switch p := doc[Parties].(type) {
	case []any:
		return len(p)
	case *rawArray:
		return p.items
	}
	return 0
}

// checkPartyRefs checks a dialog's parties: an index, or a list whose items
// are indices or (for one channel shared by several parties, as the vCon
// draft allows) lists of indices. Paths are relative to the parties value.
func checkPartyRefs(p any, nParties int) []FieldError {
	var errs []FieldError
	check := func(x any, path ...any) {
		n, ok := x.(json.Number)
		if !ok {
			errs = append(errs, FieldError{Path: path, Msg: "Input should be a valid integer (a party index)", Type: errInt})
			return
		}
		idx, err := n.Int64()
		if err != nil {
			errs = append(errs, FieldError{Path: path, Msg: "Input should be a valid integer (a party index)", Type: errInt})
			return
		}
		if idx < 0 || idx >= int64(nParties) {
			errs = append(errs, FieldError{Path: path, Type: errValue,
				Msg: fmt.Sprintf("Value error, party index %d does not exist (the vCon has %d parties)", idx, nParties)})
		}
	}
	list, ok := p.([]any)
	if !ok {
		check(p)
		return errs
	}
	for i, x := range list {
		inner, ok := x.([]any)
		if !ok {
			check(x, i)
			continue
		}
		for j, y := range inner {
			check(y, i, j)
		}
	}
	return errs
}

// ValidUUID says whether s is a UUID in its canonical 8-4-4-4-12 hex form,
// any version and either case, which is what conserver's API accepts.
func ValidUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}
