package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
)

// options decodes a storage's options as they arrive from YAML (ints,
// float64, json.Number, strings, bools) and remembers every bad key, so one
// error names all that is wrong with an entry. A missing key or an explicit
// null takes conserver's default.
type options struct {
	raw  map[string]any
	errs []string
}

func newOptions(raw map[string]any) *options { return &options{raw: raw} }

func (o *options) fail(key, format string, args ...any) {
	o.errs = append(o.errs, fmt.Sprintf("option %q: %s", key, fmt.Sprintf(format, args...)))
}

func (o *options) lookup(key string) (any, bool) {
	v, ok := o.raw[key]
	return v, ok && v != nil
}

// err reports every bad key, in key order, or nil.
func (o *options) err() error {
	if len(o.errs) == 0 {
		return nil
	}
	sort.Strings(o.errs)
	return errors.New(strings.Join(o.errs, "; "))
}

func (o *options) string(key, def string) string {
	v, ok := o.lookup(key)
	if !ok {
		return def
	}
	s, isString := v.(string)
	if !isString {
		o.fail(key, "want a string, got %T", v)
		return def
	}
	return s
}

// required is a string that must be present and non-empty. Numbers are
// accepted too, because YAML turns an unquoted password or database name
// such as 1234 into one.
func (o *options) required(key string) string {
	v, ok := o.lookup(key)
	if !ok {
		o.fail(key, "required, missing")
		return ""
	}
	var s string
	switch t := v.(type) {
	case string:
		s = t
	case int, int64, json.Number:
		s = fmt.Sprint(t)
	case float64:
		if t != math.Trunc(t) {
			o.fail(key, "want a string, got %v", t)
			return ""
		}
		s = strconv.FormatFloat(t, 'f', -1, 64)
	default:
		o.fail(key, "want a string, got %T", v)
		return ""
	}
	if s == "" {
		o.fail(key, "required, empty")
	}
	return s
}

func (o *options) bool(key string, def bool) bool {
	v, ok := o.lookup(key)
	if !ok {
		return def
	}
	switch t := v.(type) {
	case bool:
		return t
	case string:
		// Python would take any non-empty string as true, "false" included;
		// honouring what the user wrote is the better reading.
		b, err := strconv.ParseBool(t)
		if err != nil {
			o.fail(key, "want true or false, got %q", t)
			return def
		}
		return b
	}
	n, isInt := toInt(v)
	if !isInt || (n != 0 && n != 1) {
		o.fail(key, "want true or false, got %v", v)
		return def
	}
	return n == 1
}

// int accepts whole numbers in any YAML/JSON representation, and numeric
// strings (a quoted port is common in conserver configs).
func (o *options) int(key string, def int64) int64 {
	v, ok := o.lookup(key)
	if !ok {
		return def
	}
	if s, isString := v.(string); isString {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			o.fail(key, "want a whole number, got %q", s)
			return def
		}
		return n
	}
	n, isInt := toInt(v)
	if !isInt {
		o.fail(key, "want a whole number, got %v (%T)", v, v)
		return def
	}
	return n
}

// fileMode reads permission bits. PyYAML reads 0644 as octal (420), but a
// YAML 1.2 parser reads it as decimal 644; a number above 0777 written only
// with the digits 0-7 can only have meant octal, so it is read as such.
// Strings are always octal ("0644", "644", "0o644").
func (o *options) fileMode(key string, def os.FileMode) os.FileMode {
	v, ok := o.lookup(key)
	if !ok {
		return def
	}
	var n int64
	if s, isString := v.(string); isString {
		m, err := strconv.ParseInt(strings.TrimPrefix(strings.TrimSpace(s), "0o"), 8, 64)
		if err != nil {
			o.fail(key, "want octal permissions such as \"0644\", got %q", s)
			return def
		}
		n = m
	} else {
		m, isInt := toInt(v)
		if !isInt {
			o.fail(key, "want octal permissions such as 0644, got %v (%T)", v, v)
			return def
		}
		n = m
		if n > 0o777 {
			if asOctal, err := strconv.ParseInt(strconv.FormatInt(n, 10), 8, 64); err == nil {
				n = asOctal
			}
		}
	}
	if n < 0 || n > 0o777 {
		o.fail(key, "want permissions between 0000 and 0777, got %v", v)
		return def
	}
	return os.FileMode(n)
}

func toInt(v any) (int64, bool) {
	switch t := v.(type) {
	case int:
		return int64(t), true
	case int32:
		return int64(t), true
	case int64:
		return t, true
	case uint64:
		if t > math.MaxInt64 {
			return 0, false
		}
		return int64(t), true
	case float64:
		if t != math.Trunc(t) || math.Abs(t) > 1<<53 {
			return 0, false
		}
		return int64(t), true
	case json.Number:
		n, err := t.Int64()
		return n, err == nil
	}
	return 0, false
}
