package plugin

import (
	"strings"
	"unicode"

	"github.com/vcon-operator/vcon-operator/internal/config"
)

// SecretPlaceholder is the value every key of a Secret template holds: the
// import never copies a credential out of the conserver file.
const SecretPlaceholder = "REPLACE_ME"

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
