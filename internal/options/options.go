// Package options is the one reader of a module's options, for every link
// and storage, so that a user never learns that "true" is a boolean for one
// module and not for another. A Reader collects every bad key instead of
// stopping at the first, and the module's constructor returns them all, so
// a broken config is refused at load time with everything that is wrong.
//
// # Shapes
//
// Options arrive as internal/config decodes them: map[string]any, []any,
// string, bool, int64, float64 or nil (plain yes/no/on/off are already
// booleans there, as PyYAML reads them). Options built in Go (tests) may
// also hold int. No other shape is produced, so none is accepted.
//
// # Rules
//
//   - An absent key and a null take the default. Unknown keys are ignored,
//     as conserver ignores them.
//   - Booleans: true and false; since conserver configs are read by Python,
//     also 0 and 1 (`forward_original: 0`), and the text "true", "false",
//     "1" or "0" in any case (a quoted "false" is false, not Python's truthy
//     non-empty string).
//     Nothing else: "yes" in quotes or 2 are errors, not guesses.
//   - Numbers: any number, or a number written as text ("8080": conserver
//     configs often quote ports). Whole numbers must be whole.
//   - Durations: a number of seconds (30, 0.5), the same as text ("30"), or
//     a Go duration ("30s", "1m30s"); always greater than zero.
//   - Text: String keeps it as written (prompts, filters, paths). Name,
//     First, URL and Secret trim surrounding white space, because in a name,
//     a URL or a credential it is always a paste slip (a Secret file's
//     trailing newline is the usual one).
//   - Lists of strings: a list, or one string standing for a list of one.
//
// # Errors
//
// Each problem reads `option "KEY": want WHAT, got VALUE`, for example
// `option "timeout": want a duration such as 30s or 30 (seconds), got
// "abc"`. Nested keys are dotted ("only_if.section"). The value is quoted
// only when it cannot be a secret: for credential keys
// (secrets.IsCredentialKey), URLs and header values only its kind is named
// ("got a number").
package options

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/secrets"
)

// Reader reads one module's options. Its zero value is not usable; call
// New.
type Reader struct {
	raw    map[string]any
	prefix string   // "only_if." for a nested map
	errs   *[]error // shared with nested readers, so Err sees theirs
}

// New reads raw (nil is no options).
func New(raw map[string]any) *Reader {
	return &Reader{raw: raw, errs: new([]error)}
}

// Err is every problem found so far, joined in the order they were read,
// or nil.
func (r *Reader) Err() error { return errors.Join(*r.errs...) }

// Problems is how many problems were found so far. A module that requires
// a key compares it before and after reading the key, and reports the key
// missing only when the read itself found nothing wrong.
func (r *Reader) Problems() int { return len(*r.errs) }

// Has says whether key is set to something other than null.
func (r *Reader) Has(key string) bool {
	v, ok := r.raw[key]
	return ok && v != nil
}

// Raw is the value of key as decoded, for the few options whose shape is
// the module's own (a seed that may be text or a number, query values).
func (r *Reader) Raw(key string) any { return r.raw[key] }

// Keys are the keys set, sorted.
func (r *Reader) Keys() []string {
	keys := make([]string, 0, len(r.raw))
	for k, v := range r.raw {
		if v != nil {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// Path is how errors name key: dotted under a nested map.
func (r *Reader) Path(key string) string { return r.prefix + key }

// Fail records that key holds the wrong thing: want says what is
// expected; the value is described by the package's rules.
func (r *Reader) Fail(key, want string) {
	r.Failf(key, "want %s, got %s", want, describe(key, r.raw[key]))
}

// Failf records a problem with key in the module's own words.
func (r *Reader) Failf(key, format string, args ...any) {
	*r.errs = append(*r.errs, fmt.Errorf("option %q: %s", r.Path(key), fmt.Sprintf(format, args...)))
}

// Errorf records a problem that is not one key's (a missing credential
// that any of several keys could give, two keys that exclude each other).
func (r *Reader) Errorf(format string, args ...any) {
	err := fmt.Errorf(format, args...)
	if r.prefix != "" {
		err = fmt.Errorf("%s: %w", strings.TrimSuffix(r.prefix, "."), err)
	}
	*r.errs = append(*r.errs, err)
}

// Values is the map read, nil when there are no options; callers must not
// change it.
func (r *Reader) Values() map[string]any { return r.raw }

// describe names a value for an error, quoting it only when key is not a
// credential.
func describe(key string, v any) string {
	return describeValue(v, !secrets.IsCredentialKey(key))
}

// kind names only what kind of value v is, for values that may be secrets.
func kind(v any) string { return describeValue(v, false) }

func describeValue(v any, quote bool) string {
	switch t := v.(type) {
	case nil:
		return "null"
	case string:
		if quote {
			return strconv.Quote(Truncate(t, 64))
		}
		return "a string"
	case bool:
		if quote {
			return strconv.FormatBool(t)
		}
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "a map"
	}
	if f, ok := number(v); ok {
		if !quote {
			return "a number"
		}
		if math.Abs(f) >= 1e21 {
			return strconv.FormatFloat(f, 'g', -1, 64)
		}
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return fmt.Sprintf("a %T", v)
}

// number reads the numbers internal/config produces, and int.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case float64:
		return n, !math.IsNaN(n) && !math.IsInf(n, 0)
	case int:
		return float64(n), true
	}
	return 0, false
}

// numberOrText is number, or a number written as text.
func numberOrText(v any) (float64, bool) {
	if s, ok := v.(string); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
	}
	return number(v)
}

// String reads text as written; def when absent.
func (r *Reader) String(key, def string) string {
	if !r.Has(key) {
		return def
	}
	s, ok := r.raw[key].(string)
	if !ok {
		r.Fail(key, "a string")
		return def
	}
	return s
}

// Name reads text that names something (a bucket, a channel, a model),
// trimmed; def when absent.
func (r *Reader) Name(key, def string) string {
	return strings.TrimSpace(r.String(key, def))
}

// First is conserver's `opts.get(a) or opts.get(b)`: the first of keys
// that is set to non-blank text, trimmed; "" when none is.
func (r *Reader) First(keys ...string) string {
	for _, k := range keys {
		if s := r.Name(k, ""); s != "" {
			return s
		}
	}
	return ""
}

// Required reads text that must be set and not blank. Whole numbers are
// taken as their text: YAML turns an unquoted password, database name or
// port such as 1234 into a number.
func (r *Reader) Required(key string) string {
	if !r.Has(key) {
		r.Failf(key, "required, missing")
		return ""
	}
	var s string
	switch v := r.raw[key].(type) {
	case string:
		s = v
	default:
		f, ok := number(v)
		if !ok || f != math.Trunc(f) {
			r.Fail(key, "a string")
			return ""
		}
		s = strconv.FormatFloat(f, 'f', -1, 64)
	}
	if strings.TrimSpace(s) == "" {
		r.Failf(key, "required, empty")
	}
	return s
}

// Bool reads a boolean by the package's rules; def when absent.
func (r *Reader) Bool(key string, def bool) bool {
	if !r.Has(key) {
		return def
	}
	switch v := r.raw[key].(type) {
	case bool:
		return v
	case string:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true", "1":
			return true
		case "false", "0":
			return false
		}
	default:
		if f, ok := number(v); ok && (f == 0 || f == 1) {
			return f == 1
		}
	}
	r.Fail(key, "true or false (or 1 or 0)")
	return def
}

// Float reads any number; def when absent.
func (r *Reader) Float(key string, def float64) float64 {
	if !r.Has(key) {
		return def
	}
	f, ok := numberOrText(r.raw[key])
	if !ok {
		r.Fail(key, "a number")
		return def
	}
	return f
}

// Int reads a whole number; def when absent.
func (r *Reader) Int(key string, def int64) int64 {
	if !r.Has(key) {
		return def
	}
	f, ok := numberOrText(r.raw[key])
	if !ok || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		r.Fail(key, "a whole number")
		return def
	}
	return int64(f)
}

// IntRange reads a whole number from lo to hi; def when absent.
func (r *Reader) IntRange(key string, def, lo, hi int) int {
	if !r.Has(key) {
		return def
	}
	f, ok := numberOrText(r.raw[key])
	if !ok || f != math.Trunc(f) || f < float64(lo) || f > float64(hi) {
		r.Fail(key, fmt.Sprintf("a whole number from %d to %d", lo, hi))
		return def
	}
	return int(f)
}

// maxDuration keeps a number of seconds from overflowing time.Duration.
const maxDuration = 365 * 24 * time.Hour

// Duration reads a number of seconds or a Go duration, greater than zero;
// def when absent.
func (r *Reader) Duration(key string, def time.Duration) time.Duration {
	if !r.Has(key) {
		return def
	}
	var d time.Duration
	if f, ok := numberOrText(r.raw[key]); ok {
		if f > maxDuration.Seconds() {
			f = -1
		}
		d = time.Duration(f * float64(time.Second))
	} else if s, isText := r.raw[key].(string); isText {
		var err error
		if d, err = time.ParseDuration(strings.TrimSpace(s)); err != nil {
			d = -1
		}
	} else {
		d = -1
	}
	if d <= 0 {
		r.Fail(key, "a duration such as 30s or 30 (seconds)")
		return def
	}
	return d
}

// Strings reads a list of strings, or one string as a list of one; nil
// when absent.
func (r *Reader) Strings(key string) []string {
	if !r.Has(key) {
		return nil
	}
	switch v := r.raw[key].(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		bad := false
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				r.Failf(key, "item %d: want a string, got %s", i, describe(key, e))
				bad = true
				continue
			}
			out = append(out, s)
		}
		if bad {
			return nil
		}
		return out
	}
	r.Fail(key, "a list of strings")
	return nil
}

// Map reads a nested map; its problems are named "key.inner" and land in
// r's Err. An absent key is an empty map.
func (r *Reader) Map(key string) *Reader {
	nested := &Reader{prefix: r.Path(key) + ".", errs: r.errs}
	if !r.Has(key) {
		return nested
	}
	m, ok := r.raw[key].(map[string]any)
	if !ok {
		r.Fail(key, "a map")
		return nested
	}
	nested.raw = m
	return nested
}

// Empty says whether the reader has no key set.
func (r *Reader) Empty() bool { return len(r.Keys()) == 0 }

// URL reads an absolute http:// or https:// URL, trimmed; def when absent.
// The value is never quoted: it may carry a token.
func (r *Reader) URL(key, def string) string {
	if !r.Has(key) {
		return CheckURL(r, key, def)
	}
	s, ok := r.raw[key].(string)
	if !ok {
		r.Failf(key, "want an absolute http:// or https:// URL, got %s", kind(r.raw[key]))
		return ""
	}
	return CheckURL(r, key, strings.TrimSpace(s))
}

// URLs reads a list of absolute http(s) URLs (or one, as Strings), each
// trimmed; nil when absent. The URLs are never quoted.
func (r *Reader) URLs(key string) []string {
	var out []string
	for i, s := range r.Strings(key) {
		s = strings.TrimSpace(s)
		if !isHTTPURL(s) {
			r.Failf(key, "item %d: want an absolute http:// or https:// URL", i)
			continue
		}
		out = append(out, s)
	}
	return out
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// CheckURL records a problem with key unless s is "" or an absolute
// http(s) URL, for URLs a module assembles (a default, one of several
// keys); it returns s.
func CheckURL(r *Reader, key, s string) string {
	if s == "" {
		return s
	}
	if !isHTTPURL(s) {
		r.Failf(key, "want an absolute http:// or https:// URL")
		return ""
	}
	return s
}

// unexpanded finds a ${NAME} the config loader left in place: the
// environment variable (usually mounted from a Secret) was not set.
var unexpanded = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// Secret reads a credential from the first of keys set to non-blank text,
// trimmed; "" when none is. A value still holding ${NAME} is refused:
// sending it would only earn a 401 per vCon. Errors name the variable,
// never the value.
func (r *Reader) Secret(keys ...string) string {
	for _, k := range keys {
		if !r.Has(k) {
			continue
		}
		s, ok := r.raw[k].(string)
		if !ok {
			r.Fail(k, "a string")
			return ""
		}
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if m := unexpanded.FindStringSubmatch(s); m != nil {
			r.Failf(k, "refers to ${%s}, which is not set in the environment (is the Secret mounted?)", m[1])
			return ""
		}
		return s
	}
	return ""
}

// Headers reads a map of header names to values; numbers and booleans
// become text (YAML reads `X-Retry: 3` as a number). Names are
// canonicalised. A value still holding ${NAME} is refused, as by Secret.
// Values are never quoted in errors: they are usually secrets.
func (r *Reader) Headers(key string) map[string]string {
	if !r.Has(key) {
		return nil
	}
	m, ok := r.raw[key].(map[string]any)
	if !ok {
		r.Fail(key, "a map of header names to values")
		return nil
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
			f, ok := number(e)
			if !ok {
				r.Failf(key, "value of %q: want a string, got %s", k, kind(e))
				continue
			}
			s = strconv.FormatFloat(f, 'f', -1, 64)
		}
		switch {
		case !validHeaderName(k):
			r.Failf(key, "%q is not a valid header name", k)
		case strings.ContainsAny(s, "\r\n\x00"):
			r.Failf(key, "value of %q contains a line break", k)
		case unexpanded.MatchString(s):
			r.Failf(key, "value of %q still holds %s: that environment variable is not set (is the Secret mounted?)", k, unexpanded.FindString(s))
		default:
			out[http.CanonicalHeaderKey(k)] = s
		}
	}
	return out
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

// FileMode reads permission bits; def when absent. PyYAML reads 0644 as
// octal (420), but a YAML 1.2 parser reads it as decimal 644; a number
// above 0777 written only with the digits 0-7 can only have meant octal,
// so it is read as such. Text is always octal ("0644", "644", "0o644").
func (r *Reader) FileMode(key string, def os.FileMode) os.FileMode {
	if !r.Has(key) {
		return def
	}
	var n int64
	switch v := r.raw[key].(type) {
	case string:
		m, err := strconv.ParseInt(strings.TrimPrefix(strings.TrimSpace(v), "0o"), 8, 64)
		if err != nil {
			r.Fail(key, `octal permissions such as "0644"`)
			return def
		}
		n = m
	default:
		f, ok := number(v)
		if !ok || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			r.Fail(key, "octal permissions such as 0644")
			return def
		}
		n = int64(f)
		if n > 0o777 {
			if asOctal, err := strconv.ParseInt(strconv.FormatInt(n, 10), 8, 64); err == nil {
				n = asOctal
			}
		}
	}
	if n < 0 || n > 0o777 {
		r.Fail(key, "permissions between 0000 and 0777")
		return def
	}
	return os.FileMode(n)
}

// Truncate shortens s to n bytes with an ellipsis, for text quoted in an
// error.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
