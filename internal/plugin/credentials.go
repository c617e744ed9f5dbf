package plugin

import (
	"net/url"
	"strings"
	"unicode"

	"github.com/vcon-operator/vcon-operator/internal/config"
)

// SecretPlaceholder is the value every key of a Secret template holds: the
// import never copies a credential out of the conserver file.
const SecretPlaceholder = "REPLACE_ME"

// secretWords are option key words that name a credential wherever they
// appear in the key ("db_password", "client_secret", "Authorization").
var secretWords = []string{"password", "passwd", "secret", "authorization", "credential", "cookie"}

// IsSecretKey says whether an option key names a credential: it contains
// password, secret, authorization, credential, cookie, api_key or apikey;
// or one of its words is "key" or ends in "key" (DEEPGRAM_KEY, accessKey,
// aws_access_key_id); or its last word is or ends in "token" (so
// "bearer_token" and "X-Auth-Token" are, "max_tokens" and "token_limit"
// are not).
func IsSecretKey(key string) bool {
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
	for _, w := range words {
		if strings.HasSuffix(w, "key") {
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

// hasURLPassword says whether s is a URL carrying a password
// (postgres://user:pass@host/db): the whole URL is then a credential.
func hasURLPassword(s string) bool {
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

// envRef is one ${NAME} or ${NAME:-default} in a string.
type envRef struct {
	name       string
	hasDefault bool
}

// envRefs finds the ${...} references of s as config.Parse reads them
// ($${ is a literal ${, not a reference).
func envRefs(s string) []envRef {
	var refs []envRef
	segs, _ := config.Segments(s)
	for _, seg := range segs {
		if seg.Ref {
			refs = append(refs, envRef{name: seg.Name, hasDefault: seg.HasDefault})
		}
	}
	return refs
}

// stripDefaults rewrites ${NAME:-default} to ${NAME}: under a credential
// key the default may itself be a credential.
func stripDefaults(s string) string {
	var b strings.Builder
	segs, _ := config.Segments(s)
	for _, seg := range segs {
		if seg.Ref {
			b.WriteString("${" + seg.Name + "}")
		} else {
			b.WriteString(seg.Raw)
		}
	}
	return b.String()
}

// envVarName turns words into an environment variable name:
// upper case, non-alphanumerics as _, not starting with a digit.
func envVarName(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		if p == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('_')
		}
		for _, r := range strings.ToUpper(p) {
			if r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
				b.WriteRune(r)
			} else {
				b.WriteByte('_')
			}
		}
	}
	s := b.String()
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		s = "V_" + s
	}
	return s
}
