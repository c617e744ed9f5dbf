package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vcon-operator/vcon-operator/internal/apiwire"
)

// zeros is an endless body without a known length.
type zeros struct{ left int }

func (z *zeros) Read(p []byte) (int, error) {
	if z.left <= 0 {
		return 0, io.EOF
	}
	n := min(len(p), z.left)
	for i := range p[:n] {
		p[i] = ' '
	}
	z.left -= n
	return n, nil
}

func TestHostileRequestsChangeNothing(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte("ingress_auth:\n  partner: partner-key\nchains: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(o *Options) { o.ConfigFile = cfg; o.MaxBodyBytes = 1 << 20 })
	ctx := context.Background()
	h.seed(u1, u2)
	h.rdb.RPush(ctx, "work", u1)
	h.rdb.RPush(ctx, "DLQ:work", u2)
	h.rdb.RPush(ctx, "out", u1, u2)

	deep := `{"uuid":"` + u3 + `","created_at":"2024-01-15T10:30:00Z","x":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`
	big := bytes.Repeat([]byte(" "), 50<<20)
	long := strings.Repeat("q", 300)
	valid := testVcon(u3)

	type hostile struct {
		name    string
		method  string
		target  string
		body    io.Reader
		headers map[string]string
		noToken bool
		code    int
	}
	str := strings.NewReader
	cases := []hostile{
		{name: "truncated JSON", method: "POST", target: "/api/vcon", body: str(valid[:len(valid)/2]), code: 422},
		{name: "deeply nested JSON", method: "POST", target: "/api/vcon", body: str(deep), code: 422},
		{name: "50 MB body with length", method: "POST", target: "/api/vcon", body: bytes.NewReader(big), code: 413},
		{name: "50 MB body streamed", method: "POST", target: "/api/vcon", body: &zeros{left: 50 << 20}, code: 413},
		{name: "wrong content type", method: "POST", target: "/api/vcon", body: str(valid), headers: map[string]string{"Content-Type": "text/plain"}, code: 415},
		{name: "form content type", method: "POST", target: "/api/vcon", body: str("uuid=" + u3), headers: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, code: 415},
		{name: "not JSON", method: "POST", target: "/api/vcon", body: str("hello"), code: 422},
		{name: "JSON array", method: "POST", target: "/api/vcon", body: str("[" + valid + "]"), code: 422},
		{name: "JSON null", method: "POST", target: "/api/vcon", body: str("null"), code: 422},
		{name: "empty body", method: "POST", target: "/api/vcon", body: str(""), code: 422},
		{name: "two documents", method: "POST", target: "/api/vcon", body: str(valid + valid), code: 422},
		{name: "missing uuid", method: "POST", target: "/api/vcon", body: str(`{"created_at":"2024-01-15T10:30:00Z"}`), code: 422},
		{name: "path traversal uuid in body", method: "POST", target: "/api/vcon", body: str(`{"uuid":"../../etc/passwd","created_at":"2024-01-15T10:30:00Z"}`), code: 422},
		{name: "uuid as number", method: "POST", target: "/api/vcon", body: str(`{"uuid":12,"created_at":"2024-01-15T10:30:00Z"}`), code: 422},
		{name: "wrong types", method: "POST", target: "/api/vcon", body: str(`{"uuid":"` + u3 + `","created_at":123,"parties":"x"}`), code: 422},
		{name: "party index out of range", method: "POST", target: "/api/vcon", body: str(`{"uuid":"` + u3 + `","created_at":"2024-01-15T10:30:00Z","dialog":[{"parties":[5]}]}`), code: 422},
		{name: "negative duration", method: "POST", target: "/api/vcon", body: str(`{"uuid":"` + u3 + `","created_at":"2024-01-15T10:30:00Z","dialog":[{"duration":-1}]}`), code: 422},
		{name: "garbage created_at", method: "POST", target: "/api/vcon", body: str(`{"uuid":"` + u3 + `","created_at":"'; DROP TABLE vcons;--"}`), code: 422},
		{name: "unicode list name", method: "POST", target: "/api/vcon?ingress_lists=cola%C3%B1o", body: str(valid), code: 422},
		{name: "list name with space", method: "POST", target: "/api/vcon?ingress_lists=a%20b", body: str(valid), code: 422},
		{name: "list name with NUL", method: "POST", target: "/api/vcon?ingress_lists=a%00b", body: str(valid), code: 422},
		{name: "list name with newline", method: "POST", target: "/api/vcon?ingress_lists=a%0D%0ADEL%20vcons", body: str(valid), code: 422},
		{name: "over-long list name", method: "POST", target: "/api/vcon?ingress_lists=" + long, body: str(valid), code: 422},
		{name: "list name is the vCon index", method: "POST", target: "/api/vcon?ingress_lists=vcons", body: str(valid), code: 422},
		{name: "list name is a body key", method: "POST", target: "/api/vcon?ingress_lists=vcon:" + u1, body: str(valid), code: 422},
		{name: "one bad list among good ones", method: "POST", target: "/api/vcon?ingress_lists=work&ingress_lists=a%09b", body: str(valid), code: 422},
		{name: "SQL in search", method: "GET", target: "/api/vcons/search?tel=%27%20OR%201%3D1%3B--", code: 200},
		{name: "shell in search", method: "GET", target: "/api/vcons/search?name=%24%28rm%20-rf%20%2F%29%60id%60", code: 200},
		{name: "glob in search", method: "GET", target: "/api/vcons/search?mailto=*", code: 200},
		{name: "oversized search term", method: "GET", target: "/api/vcons/search?name=" + strings.Repeat("x", 5000), code: 422},
		{name: "path traversal in uuid", method: "GET", target: "/api/vcon/..%2F..%2Fetc%2Fpasswd", code: 422},
		{name: "path traversal delete", method: "DELETE", target: "/api/vcon/..%2Fvcons", code: 422},
		{name: "dot-dot path", method: "DELETE", target: "/api/vcon/../vcons", code: 404},
		{name: "glob uuid delete", method: "DELETE", target: "/api/vcon/*", code: 422},
		{name: "missing token", method: "POST", target: "/api/vcon", body: str(valid), noToken: true, code: 403},
		{name: "wrong token delete", method: "DELETE", target: "/api/vcon/" + u1, noToken: true, headers: map[string]string{apiwire.DefaultHeaderName: "guess"}, code: 403},
		{name: "oversized token", method: "POST", target: "/api/vcon", body: str(valid), noToken: true, headers: map[string]string{apiwire.DefaultHeaderName: strings.Repeat("t", 1<<20)}, code: 403},
		{name: "negative reprocess count", method: "POST", target: "/api/dlq/reprocess?ingress_list=work&count=-5", code: 422},
		{name: "non-numeric reprocess count", method: "POST", target: "/api/dlq/reprocess?ingress_list=work&count=1e9", code: 422},
		{name: "repeated ingress_list", method: "POST", target: "/api/dlq/reprocess?ingress_list=work&ingress_list=other", code: 422},
		{name: "negative egress limit", method: "GET", target: "/api/vcon/egress?egress_list=out&limit=-1", code: 422},
		{name: "huge egress limit", method: "GET", target: "/api/vcon/egress?egress_list=out&limit=9223372036854775807", code: 422},
		{name: "negative page", method: "GET", target: "/api/vcon?page=-1", code: 422},
		{name: "too many uuids", method: "GET", target: "/api/vcons?" + strings.Repeat("vcon_uuids="+u1+"&", 1001), code: 422},
		{name: "ingress of a bad uuid", method: "POST", target: "/api/vcon/ingress?ingress_list=work", body: str(`["` + u1 + `","*"]`), code: 422},
		{name: "external ingress wrong key", method: "POST", target: "/api/vcon/external-ingress?ingress_list=partner", body: str(valid), noToken: true, headers: map[string]string{apiwire.DefaultHeaderName: "nope"}, code: 403},
		{name: "external ingress main token is not a list key", method: "POST", target: "/api/vcon/external-ingress?ingress_list=partner", body: str(valid), code: 403},
		{name: "external ingress unconfigured list", method: "POST", target: "/api/vcon/external-ingress?ingress_list=work", body: str(valid), noToken: true, headers: map[string]string{apiwire.DefaultHeaderName: "partner-key"}, code: 403},
		{name: "external ingress bad vCon", method: "POST", target: "/api/vcon/external-ingress?ingress_list=partner", body: str(`{"uuid":"x"}`), noToken: true, headers: map[string]string{apiwire.DefaultHeaderName: "partner-key"}, code: 422},
		{name: "config write disabled", method: "POST", target: "/api/config", body: str(`{"chains":{}}`), code: 403},
	}
	if len(cases) < 25 {
		t.Fatalf("only %d hostile requests", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := dump(t, h.rdb)
			req, err := http.NewRequest(tc.method, "http://api.test"+tc.target, tc.body)
			if err != nil {
				// A target the client library refuses never reaches a server.
				t.Fatalf("build request: %v", err)
			}
			req.RequestURI = tc.target
			if !tc.noToken {
				req.Header.Set(apiwire.DefaultHeaderName, testToken)
			}
			if tc.body != nil {
				req.Header.Set("Content-Type", "application/json")
			}
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			rec := newRecorder()
			h.h.ServeHTTP(rec, req)
			if rec.Code != tc.code {
				t.Errorf("status %d, want %d; body %.300s", rec.Code, tc.code, rec.Body.String())
			}
			if !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
				t.Errorf("answer is not JSON: %q", rec.Header().Get("Content-Type"))
			}
			if d := diffDumps(before, dump(t, h.rdb)); d != "" {
				t.Errorf("Redis changed: %s", d)
			}
		})
	}
	// The seeded data is intact and nothing was queued for u3.
	if n := h.rdb.Exists(ctx, "vcon:"+u3).Val(); n != 0 {
		t.Errorf("a rejected vCon was stored")
	}
	if got := h.rdb.LRange(ctx, "work", 0, -1).Val(); fmt.Sprint(got) != fmt.Sprint([]string{u1}) {
		t.Errorf("work = %v", got)
	}
}

// countingBody is an endless request body that counts what was read of it.
type countingBody struct{ read int64 }

func (c *countingBody) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	c.read += int64(len(p))
	return len(p), nil
}

// TestBodyLimitStopsReading: over the limit the API answers 413 having
// read at most the limit and one buffer more of a streamed body, and
// nothing of a body whose Content-Length is already over it; the default
// is DefaultMaxBodyBytes.
func TestBodyLimitStopsReading(t *testing.T) {
	const limit = 1 << 20
	h := newHarness(t, func(o *Options) { o.MaxBodyBytes = limit })
	for _, declared := range []bool{false, true} {
		body := &countingBody{}
		req, err := http.NewRequest("POST", "http://api.test/api/vcon", body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(apiwire.DefaultHeaderName, testToken)
		req.Header.Set("Content-Type", "application/json")
		if declared {
			req.ContentLength = 1 << 40
		}
		rec := newRecorder()
		h.h.ServeHTTP(rec, req)
		mustStatus(t, rec, http.StatusRequestEntityTooLarge)
		switch {
		case declared && body.read != 0:
			t.Errorf("Content-Length over the limit: %d bytes read", body.read)
		case !declared && body.read > limit+64<<10:
			t.Errorf("streamed: %d bytes read for a limit of %d", body.read, limit)
		}
		if !strings.Contains(rec.Body.String(), "1048576") {
			t.Errorf("answer does not name the limit: %s", rec.Body.String())
		}
	}
	d := newHarness(t, nil)
	if d.srv.opts.MaxBodyBytes != DefaultMaxBodyBytes || DefaultMaxBodyBytes != 10<<20 {
		t.Errorf("default limit %d, documented as 10 MiB", d.srv.opts.MaxBodyBytes)
	}
}
