package links

// Option decoding shared by the external-service links (the LLM links,
// transcription, Slack). Options arrive as the YAML value the user wrote,
// after the config loader interpolated ${VAR} references, so numbers may be
// any Go number type and maps may be map[any]any. Every helper names the
// offending key in its error and never quotes a value: values are often
// secrets.

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

type vendorOpts map[string]any

func vendorOptError(key, want string, got any) error {
	return fmt.Errorf("option %q must be %s, got %T", key, want, got)
}

func (o vendorOpts) set(key string) bool {
	v, ok := o[key]
	return ok && v != nil
}

// str reads a string option; absent or null gives def.
func (o vendorOpts) str(key, def string) (string, error) {
	v, ok := o[key]
	if !ok || v == nil {
		return def, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", vendorOptError(key, "a string", v)
	}
	return s, nil
}

// firstStr returns the first non-empty string among keys, conserver's
// `opts.get(a) or opts.get(b)`.
func (o vendorOpts) firstStr(keys ...string) (string, error) {
	for _, k := range keys {
		s, err := o.str(k, "")
		if err != nil {
			return "", err
		}
		if s = strings.TrimSpace(s); s != "" {
			return s, nil
		}
	}
	return "", nil
}

// unexpandedVar finds a ${NAME} the config loader left in place: the
// environment variable (usually mounted from a Secret) was not set.
var unexpandedVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// secret reads a credential from the first non-empty key. A value that still
// holds ${NAME} is refused at load time: sending it would only earn a 401 per
// vCon. The error names the variable, never the value.
func (o vendorOpts) secret(keys ...string) (string, error) {
	for _, k := range keys {
		s, err := o.str(k, "")
		if err != nil {
			return "", err
		}
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if m := unexpandedVar.FindStringSubmatch(s); m != nil {
			return "", fmt.Errorf("option %q refers to ${%s}, which is not set in the environment", k, m[1])
		}
		return s, nil
	}
	return "", nil
}

func vendorNumber(v any) (float64, bool) {
	switch t := v.(type) {
	case int:
		return float64(t), true
	case int8:
		return float64(t), true
	case int16:
		return float64(t), true
	case int32:
		return float64(t), true
	case int64:
		return float64(t), true
	case uint:
		return float64(t), true
	case uint8:
		return float64(t), true
	case uint16:
		return float64(t), true
	case uint32:
		return float64(t), true
	case uint64:
		return float64(t), true
	case float32:
		return float64(t), true
	case float64:
		return t, true
	case json.Number:
		f, err := t.Float64()
		return f, err == nil
	}
	return 0, false
}

func (o vendorOpts) float(key string, def float64) (float64, error) {
	v, ok := o[key]
	if !ok || v == nil {
		return def, nil
	}
	f, ok := vendorNumber(v)
	if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, vendorOptError(key, "a number", v)
	}
	return f, nil
}

// optFloat is float for options whose absence matters (temperature is not
// sent at all unless configured, for models that reject it).
func (o vendorOpts) optFloat(key string, def *float64) (*float64, error) {
	if !o.set(key) {
		return def, nil
	}
	f, err := o.float(key, 0)
	if err != nil {
		return nil, err
	}
	return &f, nil
}

func (o vendorOpts) nonNegInt(key string, def int) (int, error) {
	if !o.set(key) {
		return def, nil
	}
	f, err := o.float(key, 0)
	if err != nil {
		return 0, err
	}
	if f < 0 || f != math.Trunc(f) || f > math.MaxInt32 {
		return 0, vendorOptError(key, "a whole number >= 0", o[key])
	}
	return int(f), nil
}

func (o vendorOpts) boolean(key string, def bool) (bool, error) {
	v, ok := o[key]
	if !ok || v == nil {
		return def, nil
	}
	switch t := v.(type) {
	case bool:
		return t, nil
	case string:
		if b, err := strconv.ParseBool(t); err == nil {
			return b, nil
		}
	}
	return false, vendorOptError(key, "true or false", v)
}

// duration reads seconds (a number) or a Go duration string ("90s").
func (o vendorOpts) duration(key string, def time.Duration) (time.Duration, error) {
	v, ok := o[key]
	if !ok || v == nil {
		return def, nil
	}
	if s, isStr := v.(string); isStr {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return 0, vendorOptError(key, `a positive number of seconds or a duration like "90s"`, v)
		}
		return d, nil
	}
	f, isNum := vendorNumber(v)
	if !isNum || f <= 0 || f > 86400*365 {
		return 0, vendorOptError(key, "a positive number of seconds", v)
	}
	return time.Duration(f * float64(time.Second)), nil
}

// mapping reads a nested map; YAML decoders may hand over map[any]any.
func (o vendorOpts) mapping(key string) (vendorOpts, error) {
	v, ok := o[key]
	if !ok || v == nil {
		return nil, nil
	}
	m, ok := asOptionMap(v)
	if !ok {
		return nil, vendorOptError(key, "a mapping", v)
	}
	return m, nil
}

func asOptionMap(v any) (vendorOpts, bool) {
	switch t := v.(type) {
	case map[string]any:
		return vendorOpts(t), true
	case vendorOpts:
		return t, true
	case map[any]any:
		m := make(vendorOpts, len(t))
		for k, e := range t {
			m[fmt.Sprint(k)] = e
		}
		return m, true
	}
	return nil, false
}
