package links

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
)

// options reads a link's options as they come from YAML: numbers may be int,
// float64 or json.Number, maps map[string]any (or map[any]any from older YAML
// decoders), lists []any. Unknown keys are ignored, as conserver ignores them;
// a known key of the wrong type is an error that names the key, so that a
// broken config is refused when it is loaded.
type options map[string]any

func (o options) has(key string) bool {
	v, ok := o[key]
	return ok && v != nil
}

func optionError(key, want string, got any) error {
	return fmt.Errorf("option %q: want %s, got %s", key, want, typeName(got))
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any, map[any]any:
		return "a map"
	}
	if _, ok := toFloat(v); ok {
		return "a number"
	}
	return fmt.Sprintf("%T", v)
}

func (o options) str(key, def string) (string, error) {
	if !o.has(key) {
		return def, nil
	}
	s, ok := o[key].(string)
	if !ok {
		return "", optionError(key, "a string", o[key])
	}
	return s, nil
}

// boolean also takes 0 and 1 because conserver configs are read by Python,
// where `forward_original: 0` means false.
func (o options) boolean(key string, def bool) (bool, error) {
	if !o.has(key) {
		return def, nil
	}
	switch v := o[key].(type) {
	case bool:
		return v, nil
	default:
		if f, ok := toFloat(v); ok && (f == 0 || f == 1) {
			return f == 1, nil
		}
	}
	return false, optionError(key, "true or false", o[key])
}

func (o options) number(key string, def float64) (float64, error) {
	if !o.has(key) {
		return def, nil
	}
	f, ok := toFloat(o[key])
	if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, optionError(key, "a number", o[key])
	}
	return f, nil
}

func (o options) integer(key string, def int64) (int64, error) {
	if !o.has(key) {
		return def, nil
	}
	f, ok := toFloat(o[key])
	if !ok || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, optionError(key, "a whole number", o[key])
	}
	return int64(f), nil
}

// strings reads a list of strings; nil when absent.
func (o options) strings(key string) ([]string, error) {
	if !o.has(key) {
		return nil, nil
	}
	switch v := o[key].(type) {
	case []string:
		return v, nil
	case []any:
		out := make([]string, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("option %q: item %d: want a string, got %s", key, i, typeName(e))
			}
			out[i] = s
		}
		return out, nil
	}
	return nil, optionError(key, "a list of strings", o[key])
}

// mapping reads a map with string keys; nil when absent.
func (o options) mapping(key string) (map[string]any, error) {
	if !o.has(key) {
		return nil, nil
	}
	switch v := o[key].(type) {
	case map[string]any:
		return v, nil
	case map[string]string:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = e
		}
		return out, nil
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("option %q: keys must be strings, got %s", key, typeName(k))
			}
			out[ks] = e
		}
		return out, nil
	}
	return nil, optionError(key, "a map", o[key])
}

// stringMap reads a map of scalars as strings (HTTP headers): YAML turns
// `X-Retry: 3` into a number, which the user meant as the text "3".
func (o options) stringMap(key string) (map[string]string, error) {
	m, err := o.mapping(key)
	if err != nil || m == nil {
		return nil, err
	}
	out := make(map[string]string, len(m))
	for _, k := range sortedKeys(m) {
		switch e := m[k].(type) {
		case string:
			out[k] = e
		case bool:
			out[k] = strconv.FormatBool(e)
		default:
			f, ok := toFloat(e)
			if !ok {
				return nil, fmt.Errorf("option %q: value of %q: want a string, got %s", key, k, typeName(e))
			}
			out[k] = strconv.FormatFloat(f, 'f', -1, 64)
		}
	}
	return out, nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int8:
		return float64(n), true
	case int16:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint:
		return float64(n), true
	case uint8:
		return float64(n), true
	case uint16:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float32:
		return float64(n), true
	case float64:
		return n, true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}
