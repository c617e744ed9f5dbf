package api

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// ErrNoToken: no API token is configured and open access was not asked for.
var ErrNoToken = errors.New("no API token configured: set CONSERVER_API_TOKEN or CONSERVER_API_TOKEN_FILE, or start with --insecure-no-auth to run without authentication")

// tokenSet holds the sha256 of each accepted token. Comparing digests of
// equal length in constant time keeps both the token's content and its
// length out of the response timing.
type tokenSet [][sha256.Size]byte

// LoadTokens reads the accepted tokens: token (CONSERVER_API_TOKEN) and the
// lines of file (CONSERVER_API_TOKEN_FILE), each trimmed; blank lines are
// ignored (in conserver a blank line made the empty string a valid key).
func LoadTokens(token, file string) ([]string, error) {
	var out []string
	if t := strings.TrimSpace(token); t != "" {
		out = append(out, t)
	}
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read CONSERVER_API_TOKEN_FILE: %w", err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 0, 4096), 1<<20)
		for sc.Scan() {
			if t := strings.TrimSpace(sc.Text()); t != "" {
				out = append(out, t)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("read CONSERVER_API_TOKEN_FILE: %w", err)
		}
	}
	return out, nil
}

func newTokenSet(tokens []string) tokenSet {
	set := make(tokenSet, 0, len(tokens))
	for _, t := range tokens {
		if t != "" {
			set = append(set, sha256.Sum256([]byte(t)))
		}
	}
	return set
}

// match compares against every token, without stopping at the first
// match, so the time taken does not tell which one matched.
func (s tokenSet) match(presented string) bool {
	got := sha256.Sum256([]byte(presented))
	found := 0
	for i := range s {
		found |= subtle.ConstantTimeCompare(got[:], s[i][:])
	}
	return found == 1
}

// presentedToken returns the one token header of the request; a missing,
// empty or repeated header gives false.
func presentedToken(r *http.Request, header string) (string, bool) {
	vs := r.Header.Values(header)
	if len(vs) != 1 || vs[0] == "" {
		return "", false
	}
	return vs[0], true
}

// requireToken wraps a handler with the API token check. A nil set means
// authentication was turned off on purpose (--insecure-no-auth).
func (s *Server) requireToken(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.tokens != nil {
			t, ok := presentedToken(r, s.opts.HeaderName)
			if !ok || !s.tokens.match(t) {
				writeDetail(w, http.StatusForbidden, "Invalid API Key")
				return
			}
		}
		next(w, r)
	}
}
