// Package secrets recognises credentials in configuration: which option
// keys name one, and where a URL carries one. It is the one classifier for
// every place that must keep credentials out of an answer, a log or a
// ConfigMap.
package secrets

import (
	"net/url"
	"regexp"
	"strings"
	"unicode"
)

// Mask replaces a credential's value.
const Mask = "***"

// secretWords are key words that name a credential wherever they appear in
// the key ("db_password", "client_secret", "Authorization").
var secretWords = []string{"password", "passwd", "secret", "authorization", "credential", "cookie"}

// IsCredentialKey says whether an option key names a credential: it
// contains password, passwd, secret, authorization, credential, cookie,
// api_key, api-key or apikey; or its last word (or the one before a
// final "id") is or ends in "key" (DEEPGRAM_KEY, accessKey,
// aws_access_key_id, LITELLM_MASTER_KEY, not key_points); or its
// last word is or ends in "token" (so "token", "bearer_token" and
// "X-Auth-Token" are, "max_tokens" and "token_limit" are not).
func IsCredentialKey(key string) bool {
	lower := strings.ToLower(key)
	for _, w := range secretWords {
		if strings.Contains(lower, w) {
			return true
		}
	}
	if strings.Contains(lower, "api_key") || strings.Contains(lower, "apikey") || strings.Contains(lower, "api-key") {
		return true
	}
	words := keyWords(key)
	for i, w := range words {
		// A key word names the credential itself when nothing but an "id"
		// follows it ("key", "accessKey", "aws_access_key_id"); "key_points"
		// or "key_phrases" name something else.
		if strings.HasSuffix(w, "key") && (i == len(words)-1 || (i == len(words)-2 && words[i+1] == "id")) {
			return true
		}
	}
	return len(words) > 0 && strings.HasSuffix(words[len(words)-1], "token")
}

// keyWords splits a key into lower-case words at non-alphanumerics and
// camelCase boundaries: "aws_secretAccessKey" -> aws, secret, access, key.
func keyWords(key string) []string {
	var words []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			words = append(words, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	rs := []rune(key)
	for i, r := range rs {
		switch {
		case !unicode.IsLetter(r) && !unicode.IsDigit(r):
			flush()
		case unicode.IsUpper(r) && i > 0 && unicode.IsLower(rs[i-1]):
			flush()
			cur = append(cur, r)
		default:
			cur = append(cur, r)
		}
	}
	flush()
	return words
}

// HasURLPassword says whether s is a URL carrying a password
// (postgres://user:pass@host/db).
func HasURLPassword(s string) bool {
	if !strings.Contains(s, "://") || !strings.Contains(s, "@") {
		return false
	}
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || u.User == nil {
		return false
	}
	p, ok := u.User.Password()
	return ok && p != ""
}

// urlInText finds URLs with a scheme inside any text.
var urlInText = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>]+`)

// RedactURLs masks the credentials of every URL in s: the password of its
// user information (redis://user:pw@host → redis://user:***@host) and the
// values of query parameters named like credentials (?token=…, ?api_key=…).
// The rest of the URL is kept as written.
func RedactURLs(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	return urlInText.ReplaceAllStringFunc(s, redactURL)
}

func redactURL(raw string) string {
	scheme, rest, _ := strings.Cut(raw, "://")
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		if user, _, ok := strings.Cut(authority[:at], ":"); ok {
			authority = user + ":" + Mask + authority[at:]
		}
	}
	path, query, hasQuery := strings.Cut(tail, "?")
	if hasQuery {
		query, fragment, hasFragment := strings.Cut(query, "#")
		params := strings.Split(query, "&")
		for i, p := range params {
			name, _, ok := strings.Cut(p, "=")
			if !ok {
				continue
			}
			if n, err := url.QueryUnescape(name); err == nil && IsCredentialKey(n) {
				params[i] = name + "=" + Mask
			}
		}
		tail = path + "?" + strings.Join(params, "&")
		if hasFragment {
			tail += "#" + fragment
		}
	}
	return scheme + "://" + authority + tail
}

// envReference is a value that only names an environment variable: it
// shows where a credential comes from, not the credential.
var envReference = regexp.MustCompile(`^\$\{[A-Za-z_][A-Za-z0-9_]*\}$`)

// Redact returns a copy of a decoded configuration (maps, lists and
// scalars, as from encoding/json or YAML) with its credentials masked:
// every scalar under a key IsCredentialKey names (at any depth below it),
// except a bare ${VAR} reference, and every URL credential (RedactURLs) in
// any string. Booleans and nulls are kept; they are never credentials.
func Redact(v any) any { return redact(v, false) }

func redact(v any, secret bool) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = redact(e, secret || IsCredentialKey(k))
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = redact(e, secret)
		}
		return out
	case string:
		if secret && t != "" && !envReference.MatchString(t) {
			return Mask
		}
		return RedactURLs(t)
	case nil, bool:
		return t
	default: // numbers
		if secret {
			return Mask
		}
		return t
	}
}
