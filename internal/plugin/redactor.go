package plugin

import (
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/vcon-operator/vcon-operator/internal/secrets"
)

// redactor keeps credentials out of a diagnostics bundle. Every string
// that goes into one passes through it: objects key by key (redactValue),
// logs and events as text (redactText).
type redactor struct {
	// known are secret values this run learned (the API token, the
	// passwords of Redis URLs); they are masked wherever they appear.
	known []string
}

// learn adds a secret value; a URL adds its password.
func (r *redactor) learn(v string) {
	v = strings.TrimSpace(v)
	if strings.Contains(v, "://") {
		if u, err := url.Parse(v); err == nil && u.User != nil {
			if p, ok := u.User.Password(); ok {
				v = p
			}
		}
	}
	// Short values would mask ordinary words.
	if len(v) >= 6 {
		r.known = append(r.known, v)
		// Longest first, so that a value containing another is masked whole.
		sort.Slice(r.known, func(i, j int) bool { return len(r.known[i]) > len(r.known[j]) })
	}
}

// keyValueSecret is "password=x", "token: x", `"api_key": "x"`, ... in
// free text (logs, event messages), whatever the quoting.
var keyValueSecret = regexp.MustCompile(`(?i)((?:[a-z0-9_-]*(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|authorization|credentials?))["']?\s*[=:]\s*["']?)([^\s"'&,;}]+)`)

// bearer is an Authorization header value.
var bearer = regexp.MustCompile(`(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}`)

// redactText masks credentials in free text.
func (r *redactor) redactText(s string) string {
	for _, k := range r.known {
		s = strings.ReplaceAll(s, k, secrets.Mask)
	}
	s = secrets.RedactURLs(s)
	s = bearer.ReplaceAllString(s, "$1 "+secrets.Mask)
	s = keyValueSecret.ReplaceAllStringFunc(s, func(m string) string {
		sub := keyValueSecret.FindStringSubmatch(m)
		// max_tokens=4096 and token_limit: 10 are settings, not secrets.
		name := strings.Trim(strings.TrimRight(strings.TrimSpace(strings.TrimRight(sub[1], "=: \t\"'")), "\"'"), "\"' ")
		v := sub[2]
		// A ${VAR} names where a credential comes from; "Bearer" is
		// masked with its credential by the rule above.
		if !secrets.IsCredentialKey(name) || v == secrets.Mask || strings.HasPrefix(v, "${") || strings.EqualFold(v, "bearer") || strings.EqualFold(v, "basic") {
			return m
		}
		return sub[1] + secrets.Mask
	})
	return s
}

// isSecretRef says whether a key holds a reference to a Secret (its name
// and key), which a bundle keeps: it says where a credential is, not what.
func isSecretRef(key string) bool {
	k := strings.ToLower(key)
	return strings.HasSuffix(k, "secretref") || strings.HasSuffix(k, "secretkeyref") || k == "secretname"
}

// redactValue masks a decoded object (from JSON): every scalar under a key
// that names a credential, except a bare ${VAR} reference and Secret
// references, and every string through redactText.
func (r *redactor) redactValue(v any, secret bool) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			if isSecretRef(k) {
				out[k] = e
				continue
			}
			out[k] = r.redactValue(e, secret || secrets.IsCredentialKey(k))
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = r.redactValue(e, secret)
		}
		return out
	case string:
		if secret && t != "" && !(strings.HasPrefix(t, "${") && strings.HasSuffix(t, "}")) {
			return secrets.Mask
		}
		return r.redactText(t)
	case nil, bool:
		return t
	default:
		if secret {
			return secrets.Mask
		}
		return t
	}
}
