// Package options holds the option readers that more than one kind of step
// needs (links and storages both send HTTP headers from their options).
// Options arrive as decoded YAML: numbers may be int, int64, float64 or
// json.Number, maps map[string]any or map[any]any.
package options

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Float reads any YAML or JSON number.
func Float(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case int32:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case interface{ Float64() (float64, error) }: // json.Number
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

// Headers reads the map of header names to values under key; numbers and
// booleans become text (YAML reads `X-Retry: 3` as a number). Names are
// canonicalised. Values are never quoted in errors: they are usually
// secrets.
func Headers(o map[string]any, key string) (map[string]string, error) {
	v, ok := o[key]
	if !ok || v == nil {
		return nil, nil
	}
	m := map[string]any{}
	switch t := v.(type) {
	case map[string]any:
		m = t
	case map[string]string:
		for k, e := range t {
			m[k] = e
		}
	case map[any]any:
		for k, e := range t {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("option %q: header names must be strings", key)
			}
			m[ks] = e
		}
	default:
		return nil, fmt.Errorf("option %q: want a map of header names to values, got %T", key, v)
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make(map[string]string, len(m))
	for _, k := range names {
		var s string
		switch e := m[k].(type) {
		case string:
			s = e
		case bool:
			s = strconv.FormatBool(e)
		default:
			f, ok := Float(e)
			if !ok {
				return nil, fmt.Errorf("option %q: value of %q: want a string", key, k)
			}
			s = strconv.FormatFloat(f, 'f', -1, 64)
		}
		if !validHeaderName(k) {
			return nil, fmt.Errorf("option %q: %q is not a valid header name", key, k)
		}
		if strings.ContainsAny(s, "\r\n\x00") {
			return nil, fmt.Errorf("option %q: value of %q contains a line break", key, k)
		}
		out[http.CanonicalHeaderKey(k)] = s
	}
	return out, nil
}

// validHeaderName: an RFC 9110 token.
func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for _, c := range k {
		if c <= ' ' || c >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, c) {
			return false
		}
	}
	return true
}

// String reads a string option, trimmed; "" when absent or null.
func String(o map[string]any, key string) (string, error) {
	v, ok := o[key]
	if !ok || v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("option %q: want a string, got %T", key, v)
	}
	return strings.TrimSpace(s), nil
}

// Duration reads a Go duration ("10s", "1m30s") or a number of seconds
// (conserver configs write `timeout: 30`), which must be positive; def when
// absent or null.
func Duration(o map[string]any, key string, def time.Duration) (time.Duration, error) {
	v, ok := o[key]
	if !ok || v == nil {
		return def, nil
	}
	var d time.Duration
	if s, ok := v.(string); ok {
		s = strings.TrimSpace(s)
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			d = time.Duration(f * float64(time.Second))
		} else if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("option %q: want a duration such as \"30s\" or a number of seconds, got %q", key, s)
		}
	} else {
		f, ok := Float(v)
		if !ok {
			return 0, fmt.Errorf("option %q: want a duration such as \"30s\" or a number of seconds, got %T", key, v)
		}
		d = time.Duration(f * float64(time.Second))
	}
	if d <= 0 {
		return 0, fmt.Errorf("option %q: must be greater than zero", key)
	}
	return d, nil
}

// Truncate shortens s to n bytes with an ellipsis, for a remote party's
// text quoted in an error.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
