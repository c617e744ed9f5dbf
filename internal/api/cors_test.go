package api

import (
	"net/http"
	"strings"
	"testing"
)

// conserver's app: CORSMiddleware(allow_origins=["*"], allow_credentials=True,
// allow_methods=["*"], allow_headers=["*"]), Starlette's. The expected
// headers are what that middleware answers.

func preflightReq(origin, method, headers string) []reqOpt {
	opts := []reqOpt{noToken(), withHeader("Origin", origin), withHeader("Access-Control-Request-Method", method)}
	if headers != "" {
		opts = append(opts, withHeader("Access-Control-Request-Headers", headers))
	}
	return opts
}

func TestCORSPreflight(t *testing.T) {
	const app = "https://app.example.com"
	cases := []struct {
		name    string
		allowed []string // nil: the default
		origin  string
		method  string
		code    int
		body    string
		acao    string
	}{
		{"default allows any origin", nil, "https://anything.example", "POST", 200, "OK", "https://anything.example"},
		{"default, DELETE", nil, app, "DELETE", 200, "OK", app},
		{"default refuses a method outside Starlette's list", nil, app, "TRACE", 400, "Disallowed CORS method", app},
		{"listed origin", []string{app}, app, "POST", 200, "OK", app},
		{"unlisted origin", []string{app}, "https://evil.example", "POST", 400, "Disallowed CORS origin", ""},
		{"unlisted origin and method", []string{app}, "https://evil.example", "TRACE", 400, "Disallowed CORS origin, method", ""},
		{"origins differ by scheme", []string{app}, "http://app.example.com", "GET", 400, "Disallowed CORS origin", ""},
		{"none allowed", []string{}, app, "GET", 400, "Disallowed CORS origin", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(o *Options) { o.CORSAllowedOrigins = tc.allowed })
			for _, path := range []string{"/api/vcon?ingress_lists=work", "/vcon", "/api/vcon/" + u1, "/api/vcon/external-ingress?ingress_list=x", "/no/such/path"} {
				before := dump(t, h.rdb)
				rec := h.doJSON("OPTIONS", path, "", preflightReq(tc.origin, tc.method, "x-conserver-api-token, content-type")...)
				if rec.Code != tc.code || rec.Body.String() != tc.body {
					t.Errorf("%s: %d %q, want %d %q", path, rec.Code, rec.Body.String(), tc.code, tc.body)
				}
				want := map[string]string{
					"Access-Control-Allow-Origin":      tc.acao,
					"Access-Control-Allow-Methods":     "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT",
					"Access-Control-Allow-Headers":     "x-conserver-api-token, content-type",
					"Access-Control-Allow-Credentials": "true",
					"Access-Control-Max-Age":           "600",
					"Vary":                             "Origin",
					HeaderVersion:                      rec.Header().Get(HeaderVersion),
				}
				for k, v := range want {
					if got := rec.Header().Get(k); got != v {
						t.Errorf("%s: %s = %q, want %q", path, k, got, v)
					}
				}
				if rec.Header().Get(HeaderVersion) == "" {
					t.Errorf("%s: no %s", path, HeaderVersion)
				}
				if d := diffDumps(before, dump(t, h.rdb)); d != "" {
					t.Errorf("%s: a preflight changed Redis: %s", path, d)
				}
			}
		})
	}
}

func TestCORSSimpleRequests(t *testing.T) {
	const app = "https://app.example.com"
	cases := []struct {
		name    string
		allowed []string
		origin  string
		cookie  bool
		acao    string
		vary    bool
	}{
		{"default: any origin", nil, "https://anything.example", false, "*", false},
		{"default with a cookie: the origin", nil, "https://anything.example", true, "https://anything.example", true},
		{"listed origin", []string{app, "http://localhost:3000"}, "http://localhost:3000", false, "http://localhost:3000", true},
		{"unlisted origin: served, without CORS consent", []string{app}, "https://evil.example", false, "", false},
		{"no origin: no CORS headers", nil, "", false, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(o *Options) { o.CORSAllowedOrigins = tc.allowed })
			for _, rq := range []struct{ method, path, body string }{
				{"GET", "/api/version", ""},
				{"POST", "/vcon", testVcon(u1)},
				{"GET", "/api/vcon/" + u2, ""}, // 404: error answers carry the headers too
			} {
				var opts []reqOpt
				if tc.origin != "" {
					opts = append(opts, withHeader("Origin", tc.origin))
				}
				if tc.cookie {
					opts = append(opts, withHeader("Cookie", "session=1"))
				}
				rec := h.doJSON(rq.method, rq.path, rq.body, opts...)
				if rec.Code >= 500 || rec.Code == http.StatusForbidden {
					t.Fatalf("%s %s: %d %s", rq.method, rq.path, rec.Code, rec.Body.String())
				}
				if got := rec.Header().Get("Access-Control-Allow-Origin"); got != tc.acao {
					t.Errorf("%s %s: Access-Control-Allow-Origin %q, want %q", rq.method, rq.path, got, tc.acao)
				}
				wantCred := ""
				if tc.origin != "" {
					wantCred = "true"
				}
				if got := rec.Header().Get("Access-Control-Allow-Credentials"); got != wantCred {
					t.Errorf("%s %s: Access-Control-Allow-Credentials %q, want %q", rq.method, rq.path, got, wantCred)
				}
				if got := strings.Contains(strings.Join(rec.Header().Values("Vary"), ","), "Origin"); got != tc.vary {
					t.Errorf("%s %s: Vary %q, want Origin %v", rq.method, rq.path, rec.Header().Values("Vary"), tc.vary)
				}
			}
		})
	}
}

// TestCORSPreflightNeedsNoToken: a browser sends no credentials with a
// preflight, so it is answered before authentication; the real request
// still needs its token.
func TestCORSPreflightNeedsNoToken(t *testing.T) {
	h := newHarness(t, nil)
	rec := h.doJSON("OPTIONS", "/api/vcon", "", preflightReq("https://app.example.com", "POST", "x-conserver-api-token")...)
	mustStatus(t, rec, http.StatusOK)
	rec = h.doJSON("POST", "/api/vcon", testVcon(u1), noToken(), withHeader("Origin", "https://app.example.com"))
	mustStatus(t, rec, http.StatusForbidden)
	if got := rec.Header().Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("403 without CORS headers (%q): the browser could not read the error", got)
	}
	// OPTIONS that is not a preflight is an ordinary request: 405.
	rec = h.doJSON("OPTIONS", "/api/vcon", "", noToken())
	mustStatus(t, rec, http.StatusMethodNotAllowed)
}

func TestCORSOriginsAreChecked(t *testing.T) {
	for _, bad := range []string{"https://app.example.com/", "app.example.com", "https://app.example.com/path", "https://user@app.example.com", "https://*.example.com"} {
		if _, err := newCORSPolicy([]string{bad}); err == nil {
			t.Errorf("origin %q accepted", bad)
		}
	}
	for _, good := range []string{"*", "https://app.example.com", "http://localhost:3000", "null"} {
		if _, err := newCORSPolicy([]string{good}); err != nil {
			t.Errorf("origin %q refused: %v", good, err)
		}
	}
	r := newHarness(t, nil)
	if _, err := New(r.rdb, Options{Tokens: []string{testToken}, CORSAllowedOrigins: []string{"https://app.example.com/"}}); err == nil ||
		!strings.Contains(err.Error(), "trailing slash") {
		t.Errorf("New with a bad origin: %v, want an error naming it", err)
	}
}
