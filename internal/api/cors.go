package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// conserver's app adds Starlette's CORSMiddleware with allow_origins=["*"],
// allow_credentials=True, allow_methods=["*"] and allow_headers=["*"]
// (api/api.py, app.add_middleware(CORSMiddleware, ...)). corsPolicy
// answers as that middleware does, outside routing and authentication, so
// a browser's preflight needs no token; only the allowed origins can be
// changed (Options.CORSAllowedOrigins).
type corsPolicy struct {
	anyOrigin bool
	origins   map[string]bool
}

// DefaultCORSAllowedOrigins is conserver's: every origin.
var DefaultCORSAllowedOrigins = []string{"*"}

// corsMethods is Starlette's ALL_METHODS, which allow_methods=["*"] means.
const corsMethods = "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"

// corsMaxAge is Starlette's default max_age, in seconds.
const corsMaxAge = "600"

// newCORSPolicy builds the policy for the allowed origins: "*" for any, or
// origins as browsers send them (scheme://host[:port], no path; "null" for
// documents without an origin). A mistyped origin would silently never
// match, so it is refused.
func newCORSPolicy(origins []string) (corsPolicy, error) {
	p := corsPolicy{origins: map[string]bool{}}
	var errs []error
	for _, o := range origins {
		switch {
		case o == "*":
			p.anyOrigin = true
		case o == "null" || validOrigin(o):
			p.origins[o] = true
		default:
			errs = append(errs, fmt.Errorf("CORS allowed origin %q: want * or an origin as a browser sends it, scheme://host[:port] without a path or a trailing slash (e.g. https://app.example.com)", o))
		}
	}
	return p, errors.Join(errs...)
}

func validOrigin(o string) bool {
	u, err := url.Parse(o)
	return err == nil && u.Scheme != "" && originHost.MatchString(u.Host) && u.User == nil && u.Path == "" &&
		u.RawQuery == "" && !u.ForceQuery && u.Fragment == "" && !strings.HasSuffix(o, "/")
}

// originHost is a host name or IP literal with an optional port (no
// wildcards: Starlette compares origins exactly).
var originHost = regexp.MustCompile(`^([A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$`)

func (p corsPolicy) allowed(origin string) bool { return p.anyOrigin || p.origins[origin] }

// isPreflight: Starlette answers OPTIONS with an Origin and an
// Access-Control-Request-Method itself, whatever the path.
func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" &&
		r.Header.Get("Access-Control-Request-Method") != ""
}

// preflight answers a preflight request as Starlette's
// CORSMiddleware.preflight_response does with credentials allowed: the
// origin echoed when allowed, every method, the requested headers echoed,
// 200 "OK"; 400 "Disallowed CORS origin" (or method) otherwise.
func (p corsPolicy) preflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	origin := r.Header.Get("Origin")
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Allow-Methods", corsMethods)
	h.Set("Access-Control-Max-Age", corsMaxAge)
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
		h.Set("Access-Control-Allow-Headers", req)
	}
	h.Set("Access-Control-Allow-Credentials", "true")
	var failures []string
	if p.allowed(origin) {
		h.Set("Access-Control-Allow-Origin", origin)
	} else {
		failures = append(failures, "origin")
	}
	if !slices.Contains(strings.Split(corsMethods, ", "), r.Header.Get("Access-Control-Request-Method")) {
		failures = append(failures, "method")
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	if len(failures) > 0 {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte("Disallowed CORS " + strings.Join(failures, ", ")))
		return
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("OK"))
}

// simple sets the headers Starlette's CORSMiddleware adds to the answer of
// a request with an Origin: with any origin allowed, "*" (the origin
// itself when the request has cookies); otherwise the origin when it is
// allowed, and nothing for others. Credentials are always allowed, as in
// conserver.
func (p corsPolicy) simple(h http.Header, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	h.Set("Access-Control-Allow-Credentials", "true")
	switch {
	case p.anyOrigin && r.Header.Get("Cookie") == "":
		h.Set("Access-Control-Allow-Origin", "*")
	case p.allowed(origin):
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
	}
}

// ParseCORSOrigins reads a comma-separated list of allowed origins, as
// --cors-allowed-origins takes it. An empty value allows no origin.
func ParseCORSOrigins(s string) []string {
	out := []string{}
	for _, o := range strings.Split(s, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}
