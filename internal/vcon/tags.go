package vcon

import (
	"encoding/json"
	"slices"
	"strings"
)

// TagsPurpose is the purpose (legacy: type) of the attachment that holds a
// vCon's tags, as conserver's links.tag writes it.
const TagsPurpose = "tags"

// Tags returns the document's tags as "name:value" strings, in order, from
// every tags attachment. It reads conserver's form (body a JSON string of a
// list) and the legacy ones (type instead of purpose, body a list).
func Tags(v *VCon) []string {
	var out []string
	for _, a := range objects(v.expandArray(Attachments), Attachments) {
		if isTagsAttachment(a) {
			out = append(out, tagList(a["body"])...)
		}
	}
	return out
}

// RoutingTags returns what conserver's links.tag_router routes on, in
// order of the attachments: the tags of Tags, and the keys of a tags
// attachment whose body is an object (or the JSON text of one), a shape
// other writers use and conserver's router reads as tag names. The keys
// of one object come sorted: a decoded object keeps no order.
func RoutingTags(v *VCon) []string {
	var out []string
	for _, a := range objects(v.expandArray(Attachments), Attachments) {
		if !isTagsAttachment(a) {
			continue
		}
		body := a["body"]
		if s, ok := text(body); ok {
			if doc, err := decode([]byte(s)); err == nil {
				body = doc
			}
		} else if r, ok := body.(rawJSON); ok {
			body = decodeRaw(r)
		}
		if m, ok := body.(map[string]any); ok {
			keys := make([]string, 0, len(m))
			for k := range m {
				if k != "" {
					keys = append(keys, k)
				}
			}
			slices.Sort(keys)
			out = append(out, keys...)
			continue
		}
		out = append(out, tagList(a["body"])...)
	}
	return out
}

// Tag returns the value of the first tag called name.
func Tag(v *VCon, name string) (string, bool) {
	for _, t := range Tags(v) {
		n, val, ok := strings.Cut(t, ":")
		if ok && n == name {
			return val, true
		}
	}
	return "", false
}

// AddTag adds the tag name:value to the document's tags attachment, creating
// the attachment when there is none. The attachment is rewritten in
// conserver's form (purpose "tags", body a JSON string, encoding "json").
// A tag already present is not added again. Callers turn a bare tag t into
// AddTag(v, t, t), the way links.tag does.
func AddTag(v *VCon, name, value string) {
	tag := name + ":" + value
	if v.appendRawTagsAttachment(tag) {
		return
	}
	var att map[string]any
	for _, a := range objects(v.writableArray(Attachments), Attachments) {
		if isTagsAttachment(a) {
			att = a
			break
		}
	}
	if att == nil {
		att = map[string]any{"purpose": TagsPurpose}
		v.Append(Attachments, att)
	}
	tags := tagList(att["body"])
	for _, t := range tags {
		if t == tag {
			return
		}
	}
	tags = append(tags, tag)
	text, _ := compactJSON(tags) // a []string always encodes
	att["body"] = text
	att["encoding"] = "json"
	if _, ok := att["purpose"]; !ok {
		att["purpose"] = TagsPurpose
		delete(att, "type")
	}
}

func isTagsAttachment(a map[string]any) bool {
	if p, ok := text(a["purpose"]); ok {
		return p == TagsPurpose
	}
	t, _ := text(a["type"])
	return t == TagsPurpose
}

// tagList reads a tags body: a JSON string holding a list, or a list.
// Items that are not strings are skipped.
func tagList(body any) []string {
	var items []any
	switch b := body.(type) {
	case []any:
		items = b
	case rawJSON:
		items, _ = decodeRaw(b).([]any)
	case string, rawText:
		s, _ := text(b)
		v, err := decode([]byte(s))
		if err != nil {
			return nil
		}
		items, _ = v.([]any)
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		if s, ok := it.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// FindAnalysis returns the first analysis entry of the given type made for
// the dialog at dialogIndex (its "dialog" is that index or a list holding
// it), or nil. The map is the document's own.
func FindAnalysis(v *VCon, dialogIndex int, analysisType string) map[string]any {
	for _, a := range v.List(Analysis) {
		if t, _ := a["type"].(string); t != analysisType {
			continue
		}
		if refersTo(a["dialog"], dialogIndex) {
			return a
		}
	}
	return nil
}

func refersTo(x any, idx int) bool {
	switch t := x.(type) {
	case json.Number:
		n, err := t.Int64()
		return err == nil && n == int64(idx)
	case float64:
		return t == float64(idx)
	case int:
		return t == idx
	case []any:
		for _, e := range t {
			if _, nested := e.([]any); !nested && refersTo(e, idx) {
				return true
			}
		}
	}
	return false
}
