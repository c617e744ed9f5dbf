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
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"time"
)

type aiOpts map[string]any

func aiOptError(key, want string, got any) error {
	return fmt.Errorf("option %q must be %s, got %T", key, want, got)
}

func (o aiOpts) set(key string) bool {
	v, ok := o[key]
	return ok && v != nil
}

// str reads a string option; absent or null gives def.
func (o aiOpts) str(key, def string) (string, error) {
	v, ok := o[key]
	if !ok || v == nil {
		return def, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", aiOptError(key, "a string", v)
	}
	return s, nil
}

// firstStr returns the first non-empty string among keys, conserver's
// `opts.get(a) or opts.get(b)`.
func (o aiOpts) firstStr(keys ...string) (string, error) {
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

// aiUnexpanded finds a ${NAME} the config loader left in place: the
// environment variable (usually mounted from a Secret) was not set.
var aiUnexpanded = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// secret reads a credential from the first non-empty key. A value that still
// holds ${NAME} is refused at load time: sending it would only earn a 401 per
// vCon. The error names the variable, never the value.
func (o aiOpts) secret(keys ...string) (string, error) {
	for _, k := range keys {
		s, err := o.str(k, "")
		if err != nil {
			return "", err
		}
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if m := aiUnexpanded.FindStringSubmatch(s); m != nil {
			return "", fmt.Errorf("option %q refers to ${%s}, which is not set in the environment", k, m[1])
		}
		return s, nil
	}
	return "", nil
}

func aiNumber(v any) (float64, bool) {
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

func (o aiOpts) float(key string, def float64) (float64, error) {
	v, ok := o[key]
	if !ok || v == nil {
		return def, nil
	}
	f, ok := aiNumber(v)
	if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, aiOptError(key, "a number", v)
	}
	return f, nil
}

// optFloat is float for options whose absence matters (temperature is not
// sent at all unless configured, for models that reject it).
func (o aiOpts) optFloat(key string, def *float64) (*float64, error) {
	if !o.set(key) {
		return def, nil
	}
	f, err := o.float(key, 0)
	if err != nil {
		return nil, err
	}
	return &f, nil
}

func (o aiOpts) nonNegInt(key string, def int) (int, error) {
	if !o.set(key) {
		return def, nil
	}
	f, err := o.float(key, 0)
	if err != nil {
		return 0, err
	}
	if f < 0 || f != math.Trunc(f) || f > math.MaxInt32 {
		return 0, aiOptError(key, "a whole number >= 0", o[key])
	}
	return int(f), nil
}

func (o aiOpts) boolean(key string, def bool) (bool, error) {
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
	return false, aiOptError(key, "true or false", v)
}

// duration reads seconds (a number) or a Go duration string ("90s").
func (o aiOpts) duration(key string, def time.Duration) (time.Duration, error) {
	v, ok := o[key]
	if !ok || v == nil {
		return def, nil
	}
	if s, isStr := v.(string); isStr {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return 0, aiOptError(key, `a positive number of seconds or a duration like "90s"`, v)
		}
		return d, nil
	}
	f, isNum := aiNumber(v)
	if !isNum || f <= 0 || f > 86400*365 {
		return 0, aiOptError(key, "a positive number of seconds", v)
	}
	return time.Duration(f * float64(time.Second)), nil
}

// mapping reads a nested map; YAML decoders may hand over map[any]any.
func (o aiOpts) mapping(key string) (aiOpts, error) {
	v, ok := o[key]
	if !ok || v == nil {
		return nil, nil
	}
	m, ok := aiAsMap(v)
	if !ok {
		return nil, aiOptError(key, "a mapping", v)
	}
	return m, nil
}

func aiAsMap(v any) (aiOpts, bool) {
	switch t := v.(type) {
	case map[string]any:
		return aiOpts(t), true
	case aiOpts:
		return t, true
	case map[any]any:
		m := make(aiOpts, len(t))
		for k, e := range t {
			m[fmt.Sprint(k)] = e
		}
		return m, true
	}
	return nil, false
}

// aiSensitiveOption says whether an option must stay out of anything written
// into a vCon (vendor_schema) or a log: credentials, and endpoints, which may
// carry tokens in their paths.
func aiSensitiveOption(key string) bool {
	k := strings.ToLower(key)
	for _, s := range []string{"key", "token", "secret", "password", "url", "endpoint", "authorization"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// aiPublicOptions copies opts without sensitive keys, for vendor_schema.
func aiPublicOptions(opts aiOpts) map[string]any {
	out := make(map[string]any, len(opts))
	for k, v := range opts {
		if !aiSensitiveOption(k) {
			out[k] = v
		}
	}
	return out
}

// aiOnlyIf is conserver's vCon-level filter: run the link only when some
// entry of `section` (analysis or attachments) with type/purpose `target`
// has a string body containing `includes`; for tags, when the tag list holds
// `includes` exactly.
type aiOnlyIf struct {
	section, target, includes string
}

func aiParseOnlyIf(o aiOpts) (*aiOnlyIf, error) {
	m, err := o.mapping("only_if")
	if err != nil || len(m) == 0 {
		return nil, err
	}
	f := &aiOnlyIf{}
	if f.section, err = m.str("section", ""); err != nil {
		return nil, fmt.Errorf("only_if: %w", err)
	}
	if f.section != "analysis" && f.section != "attachments" {
		return nil, fmt.Errorf(`only_if: "section" must be "analysis" or "attachments"`)
	}
	if f.target, err = m.firstStr("purpose", "type"); err != nil {
		return nil, fmt.Errorf("only_if: %w", err)
	}
	if f.includes, err = m.str("includes", ""); err != nil {
		return nil, fmt.Errorf("only_if: %w", err)
	}
	if !m.set("includes") {
		return nil, fmt.Errorf(`only_if: "includes" is required`)
	}
	return f, nil
}

// aiSampler is conserver's sampling_rate: a rate in (0,1) runs the link on
// that fraction of vCons; 0 or absent (and 1) means always.
type aiSampler float64

// aiRandom is replaced by tests.
var aiRandom = rand.Float64

func aiParseSampling(o aiOpts) (aiSampler, error) {
	r, err := o.float("sampling_rate", 1)
	if err != nil {
		return 0, err
	}
	if r < 0 || r > 1 {
		return 0, aiOptError("sampling_rate", "a number between 0 and 1", o["sampling_rate"])
	}
	return aiSampler(r), nil
}

func (s aiSampler) pick() bool {
	return s == 0 || aiRandom() < float64(s)
}
