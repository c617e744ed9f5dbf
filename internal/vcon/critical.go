package vcon

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// DefaultSupportedExtensions are the extensions the worker and the API
// accept in a vCon's critical list when none are configured. CC
// (draft-ietf-vcon-cc-extension) is Compatible and should never be listed
// there, but a writer that lists it anyway names parameters that are only
// labels, which every step here passes through unchanged.
var DefaultSupportedExtensions = []string{"CC"}

var extensionName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ParseExtensions reads a comma-separated list of extension names
// (--supported-extensions, VCON_SUPPORTED_EXTENSIONS). "none" (or "") is
// the empty list: no critical extension is supported.
func ParseExtensions(s string) ([]string, error) {
	out := []string{}
	if strings.TrimSpace(s) == "none" {
		return out, nil
	}
	for _, e := range strings.Split(s, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if !extensionName.MatchString(e) {
			return nil, fmt.Errorf("extension name %q: use letters, digits, '.', '_' or '-'", e)
		}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out, nil
}

// Critical returns the extension names a vCon lists as critical
// (draft-ietf-vcon-vcon-core, critical), read from the legacy
// must_support as well: a body in Redis may not have been normalised yet.
// A value that is not a string is returned as its JSON text, so it is
// refused like any name that is not supported.
func Critical(v *VCon) []string {
	var out []string
	for _, key := range []string{"critical", "must_support"} {
		switch x := v.tree()[key].(type) {
		case nil:
		case []any:
			for _, e := range x {
				s, ok := e.(string)
				if !ok {
					s = fmt.Sprint(e)
				}
				if !slices.Contains(out, s) {
					out = append(out, s)
				}
			}
		case string:
			// One name where a list is due: read it, do not ignore it.
			if !slices.Contains(out, x) {
				out = append(out, x)
			}
		default:
			out = append(out, fmt.Sprint(x))
		}
	}
	return out
}

// UnsupportedCritical returns the critical extensions of v that are not in
// supported, in the order v lists them. The draft says an implementation
// that does not support one of them must not process the vCon except to
// reject it. Names compare exactly, as the extensions registry holds
// them.
func UnsupportedCritical(v *VCon, supported []string) []string {
	var out []string
	for _, e := range Critical(v) {
		if !slices.Contains(supported, e) {
			out = append(out, e)
		}
	}
	return out
}

// CriticalErrors are the API's 422 entries for the unsupported critical
// extensions of v, each at the index of its name in the list.
func CriticalErrors(v *VCon, supported []string) []FieldError {
	var errs []FieldError
	list := "none"
	if len(supported) > 0 {
		list = strings.Join(supported, ", ")
	}
	for _, key := range []string{"critical", "must_support"} {
		doc := v.tree()
		items, isList := doc[key].([]any)
		if !isList {
			if x, ok := doc[key]; ok && x != nil {
				items = []any{x}
			}
		}
		for i, e := range items {
			s, ok := e.(string)
			if !ok {
				s = fmt.Sprint(e)
			}
			if slices.Contains(supported, s) {
				continue
			}
			path := []any{key, i}
			if !isList {
				path = []any{key}
			}
			errs = append(errs, FieldError{Path: path, Type: "unsupported_critical",
				Msg: fmt.Sprintf("Extension %q is listed as critical and is not supported here (supported: %s); the vCon must not be processed", s, list)})
		}
	}
	return errs
}
