package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vcon-operator/vcon-operator/internal/api"
	"github.com/vcon-operator/vcon-operator/internal/apiwire"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// eraseAPI serves the real API on a redis-server with a file storage and,
// when down is set, a PostgreSQL storage nobody listens for.
func eraseAPI(t *testing.T, down bool) (url string, r *testenv.Redis, files string) {
	t.Helper()
	r = testenv.StartRedis(t)
	dir := t.TempDir()
	files = filepath.Join(dir, "vcons")
	cfg := "storages:\n  files:\n    module: storage.file\n    options: {path: " + files + "}\n"
	if down {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		cfg += fmt.Sprintf("  pg:\n    module: storage.postgres\n    options: {host: 127.0.0.1, port: %d, user: u, password: p, database: d}\n", port)
	}
	path := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(r.Client(), api.Options{Tokens: []string{"real-token"}, ConfigFile: path, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return hs.URL + "/api", r, files
}

// TestEraseThroughTheAPI runs `kubectl vcon erase` against the real API.
func TestEraseThroughTheAPI(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		down    bool
		args    []string
		code    int
		out     []string // each must appear in stdout
		errOut  string   // prefix of stderr
		erased  bool     // the vCon is gone from Redis
		jsonOut bool
	}{
		{name: "by uuid", args: []string{goodUUID1}, code: 0, erased: true,
			out: []string{goodUUID1 + " redis erased 3 index entries", goodUUID1 + " files absent"}},
		{name: "by tel", args: []string{"--tel", "+15551230001"}, code: 0, erased: true,
			out: []string{"redis party index searched 1 found", "files unsupported", goodUUID1 + " redis erased"}},
		{name: "by mailto, nobody", args: []string{"--mailto", "nobody@example.com"}, code: 0,
			out: []string{"no vCon of this party was found"}},
		{name: "report as JSON", args: []string{goodUUID1, "-o", "json"}, code: 0, erased: true, jsonOut: true},
		{name: "a storage down: exit 1 with what failed", down: true, args: []string{goodUUID1}, code: 1, erased: true,
			out: []string{goodUUID1 + " pg failed"}, errOut: "error: not everything could be erased"},
		{name: "uuid and party", args: []string{goodUUID1, "--tel", "+1"}, code: 1, errOut: "error: give a uuid or a party"},
		{name: "tel and mailto", args: []string{"--tel", "+1", "--mailto", "a@b"}, code: 1, errOut: "error: give one of --tel and --mailto"},
		{name: "not a uuid", args: []string{"../x"}, code: 1, errOut: `error: "../x" is not a vCon uuid`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			url, r, _ := eraseAPI(t, tc.down)
			inv := invocation{env: map[string]string{"API_URL": url, "CONSERVER_API_TOKEN": "real-token"}}
			// The vCon goes in through the API, so that its party is indexed.
			req, _ := http.NewRequest(http.MethodPost, url+"/vcon", strings.NewReader(vconJSON(goodUUID1, "2026-02-01T10:00:00Z")))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(apiwire.DefaultHeaderName, "real-token")
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != http.StatusCreated {
				t.Fatalf("seed: %v %v", resp, err)
			}
			resp.Body.Close()

			res := inv.run(t, append([]string{"erase"}, tc.args...)...)
			if res.code != tc.code || !strings.HasPrefix(res.errOut, tc.errOut) {
				t.Fatalf("exit %d, stderr %q; want %d, %q (stdout %q)", res.code, res.errOut, tc.code, tc.errOut, res.out)
			}
			table := strings.Join(strings.Fields(strings.ReplaceAll(res.out, "\n", " | ")), " ")
			for _, want := range tc.out {
				if !strings.Contains(table, want) {
					t.Errorf("stdout lacks %q:\n%s", want, res.out)
				}
			}
			if tc.jsonOut {
				var rep apiwire.ErasureReport
				if err := json.Unmarshal([]byte(res.out), &rep); err != nil || !rep.Complete || rep.UUID != goodUUID1 {
					t.Errorf("JSON output %q: %v", res.out, err)
				}
			}
			if gone := r.Client().Exists(ctx, vconstore.Key(goodUUID1)).Val() == 0; gone != tc.erased {
				t.Errorf("body gone = %v, want %v", gone, tc.erased)
			}
			if strings.Contains(res.errOut+res.out, "+15551230001") {
				t.Error("the output repeats the party identifier")
			}
		})
	}
}

// TestEraseWithoutReport: an API that answers 204 (conserver's) is taken at
// its word, and said to have given no report.
func TestEraseWithoutReport(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodDelete || r.URL.Path != "/api/vcon/"+goodUUID1 {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hs.Close()
	res := invocation{env: map[string]string{"API_URL": hs.URL + "/api"}}.run(t, "erase", goodUUID1)
	if res.code != 0 || !strings.Contains(res.out, "erased (the API gave no report)") {
		t.Errorf("exit %d, %q %q", res.code, res.out, res.errOut)
	}
	res = invocation{env: map[string]string{"API_URL": hs.URL + "/api"}}.run(t, "erase", "--tel", "+15551230001")
	if res.code != 1 || !strings.Contains(res.errOut, "does it erase by party?") {
		t.Errorf("party erasure on an API without it: exit %d, %q", res.code, res.errOut)
	}
}
