package plugin

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/api"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

const (
	goodUUID1 = "018f3c1e-1111-7000-8000-000000000001"
	goodUUID2 = "018F3C1E-2222-7000-8000-000000000002" // upper case: stored lower case
)

func vconJSON(uuid, createdAt string) string {
	created := ""
	if createdAt != "" {
		created = `"created_at":"` + createdAt + `",`
	}
	return `{"vcon":"0.0.1","uuid":"` + uuid + `",` + created + `"parties":[{"tel":"+15551230001","name":"Alice Confidential"}],"dialog":[{"type":"text","start":"2026-02-01T10:00:00Z","parties":[0],"body":"my card number is 4111"}]}`
}

// vconDir writes two good files, two bad ones and a file push must ignore.
func vconDir(t *testing.T) (dir string, files map[string]string) {
	t.Helper()
	dir = t.TempDir()
	files = map[string]string{
		"a-good.json":     vconJSON(goodUUID1, "2026-02-01T10:00:00Z"),
		"b-good.json":     vconJSON(goodUUID2, "2026-02-01T11:00:00Z"),
		"c-no-date.json":  vconJSON("018f3c1e-3333-7000-8000-000000000003", ""),
		"d-not-json.json": `{"uuid": "018f3c1e-4444-7000-8000-000000000004", "parties": [`,
		"notes.txt":       "not a vCon",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir, files
}

type apiRequest struct {
	method, path string
	lists        []string
	token        string
	contentType  string
	body         string
}

// fakeAPI stands in for cmd/api's POST /api/vcon.
type fakeAPI struct {
	mu       sync.Mutex
	requests []apiRequest
	status   int
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.requests = append(f.requests, apiRequest{
		method: r.Method, path: r.URL.Path, lists: r.URL.Query()["ingress_lists"],
		token: r.Header.Get("x-conserver-api-token"), contentType: r.Header.Get("Content-Type"), body: string(body),
	})
	status := f.status
	f.mu.Unlock()
	if status == 0 {
		status = http.StatusCreated
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if status == http.StatusForbidden {
		_, _ = w.Write([]byte(`{"detail":"Invalid API Key"}`))
		return
	}
	_, _ = w.Write(body)
}

// TestPushAPI pushes through a stand-in for the API: the token header, the
// ingress list and the body the API receives, and the per-file verdicts.
func TestPushAPI(t *testing.T) {
	ns := namespace(t)
	createChain(t, ns, "main", vconv1.ChainSpec{IngressLists: []string{"default", "priority"}}, nil)
	dir, files := vconDir(t)
	single := filepath.Join(dir, "a-good.json")

	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		stdin     string
		status    int
		wantCode  int
		wantToken string
		wantList  string
		wantSent  []string // file names whose bytes must be sent, in order
		wantOut   string
		wantErr   []string
	}{
		{
			name: "directory with bad files", args: []string{dir, "--token", "tok-flag"},
			wantCode: 1, wantToken: "tok-flag", wantList: "default", wantSent: []string{"a-good.json", "b-good.json"},
			wantOut: "Pushed 2 of 4 vCons onto default (chain main) through the API.",
			wantErr: []string{
				filepath.Join(dir, "c-no-date.json") + ": not pushed: invalid vCon: created_at: Field required",
				filepath.Join(dir, "d-not-json.json") + ": not pushed: invalid JSON",
				"error: 2 of 4 files were not pushed (reasons above)",
			},
		},
		{
			name: "token from env, other ingress list", args: []string{single, "--ingress-list", "priority"}, env: map[string]string{"CONSERVER_API_TOKEN": "tok-env"},
			wantToken: "tok-env", wantList: "priority", wantSent: []string{"a-good.json"},
			wantOut: "Pushed 1 of 1 vCons onto priority (chain main) through the API.",
		},
		{
			name: "stdin", args: []string{"-", "--token", "t"}, stdin: files["b-good.json"],
			wantToken: "t", wantList: "default", wantSent: []string{"b-good.json"},
			wantOut: "stdin: pushed " + strings.ToLower(goodUUID2),
		},
		{
			name: "token refused", args: []string{dir, "--token", "wrong"}, status: http.StatusForbidden,
			wantCode: 1, wantToken: "wrong", wantList: "default", wantSent: []string{"a-good.json"},
			wantErr: []string{"error: the API answered 403 Forbidden: the token was refused; check it (0 pushed, 0 not pushed before it)"},
		},
		{
			name: "not an ingress list of the chain", args: []string{single, "--ingress-list", "other"},
			wantCode: 1, wantErr: []string{`error: "other" is not an ingress list of chain main`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			api := &fakeAPI{status: tc.status}
			srv := httptest.NewServer(api)
			defer srv.Close()
			inv := invocation{kubeconfig: admin(t), env: tc.env, stdin: tc.stdin}
			args := append([]string{"push", "main", "-n", ns, "--api-url", srv.URL + "/api"}, tc.args...)
			res := inv.run(t, args...)
			if res.code != tc.wantCode {
				t.Errorf("exit %d, want %d (stderr %q)", res.code, tc.wantCode, res.errOut)
			}
			if !strings.Contains(res.out, tc.wantOut) {
				t.Errorf("stdout %q lacks %q", res.out, tc.wantOut)
			}
			errLines := strings.Split(strings.TrimRight(res.errOut, "\n"), "\n")
			if tc.wantErr == nil && res.errOut != "" {
				t.Errorf("stderr %q, want nothing", res.errOut)
			}
			for i, want := range tc.wantErr {
				if i >= len(errLines) || !strings.HasPrefix(errLines[i], want) {
					t.Errorf("stderr line %d: want prefix %q, stderr:\n%s", i, want, res.errOut)
				}
			}
			// Never echo vCon content: the bad files' parties and bodies stay unprinted.
			for _, secret := range []string{"Alice Confidential", "4111"} {
				if strings.Contains(res.out+res.errOut, secret) {
					t.Errorf("vCon content %q was printed", secret)
				}
			}
			if len(api.requests) != len(tc.wantSent) {
				t.Fatalf("API got %d requests, want %d", len(api.requests), len(tc.wantSent))
			}
			for i, req := range api.requests {
				if req.method != http.MethodPost || req.path != "/api/vcon" || len(req.lists) != 1 || req.lists[0] != tc.wantList {
					t.Errorf("request %d: %s %s ingress_lists=%v, want POST /api/vcon ingress_lists=[%s]", i, req.method, req.path, req.lists, tc.wantList)
				}
				if req.token != tc.wantToken {
					t.Errorf("request %d: token header %q, want %q", i, req.token, tc.wantToken)
				}
				if req.contentType != "application/json" {
					t.Errorf("request %d: Content-Type %q", i, req.contentType)
				}
				if req.body != files[tc.wantSent[i]] {
					t.Errorf("request %d: body %q, want the bytes of %s", i, req.body, tc.wantSent[i])
				}
			}
		})
	}
}

// TestPushDirect writes straight to a real redis-server: the body through
// the vconstore codec, with the API's TTL and listing entry, and the uuid
// on the Chain's first ingress list.
func TestPushDirect(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	rdb := r.Client()
	ns := namespace(t)
	createChain(t, ns, "main", vconv1.ChainSpec{IngressLists: []string{"default"}, Redis: vconv1.RedisConnection{URL: r.URL()}}, nil)
	dir, _ := vconDir(t)
	inv := invocation{kubeconfig: admin(t)}

	res := inv.run(t, "push", "main", dir, "--direct", "-n", ns)
	if res.code != 1 || !strings.Contains(res.out, "Pushed 2 of 4 vCons onto default (chain main) straight to Redis.") {
		t.Fatalf("exit %d, stdout %q, stderr %q", res.code, res.out, res.errOut)
	}
	want := []string{goodUUID1, strings.ToLower(goodUUID2)}
	assertList(t, rdbLRange(t, r, "default"), want...)
	store := vconstore.New(rdb, vconstore.Options{})
	for _, u := range want {
		b, err := store.Get(ctx, u)
		if err != nil {
			t.Fatalf("body of %s: %v", u, err)
		}
		v, err := vcon.Parse(b.Data)
		if err != nil || v.UUID() != u {
			t.Errorf("body of %s: %v, uuid %q", u, err, v.UUID())
		}
		if b.PTTL <= 59*time.Minute || b.PTTL > time.Hour {
			t.Errorf("body of %s has TTL %v, want the API's 1h", u, b.PTTL)
		}
		if _, err := rdb.ZScore(ctx, "vcons", vconstore.Key(u)).Result(); err != nil {
			t.Errorf("%s is not in the listing index: %v", u, err)
		}
	}
	if n := rdb.Exists(ctx, vconstore.Key("018f3c1e-3333-7000-8000-000000000003")).Val(); n != 0 {
		t.Error("an invalid vCon was written")
	}

	t.Run("no ttl", func(t *testing.T) {
		doc := vconJSON("018f3c1e-5555-7000-8000-000000000005", "2026-02-02T10:00:00Z")
		res := invocation{kubeconfig: admin(t), stdin: doc}.run(t, "push", "main", "-", "--direct", "--ttl", "0", "-n", ns)
		if res.code != 0 {
			t.Fatalf("exit %d: %s", res.code, res.errOut)
		}
		if ttl := rdb.PTTL(ctx, vconstore.Key("018f3c1e-5555-7000-8000-000000000005")).Val(); ttl >= 0 {
			t.Errorf("TTL %v, want none", ttl)
		}
		var got map[string]any
		b, _ := store.Get(ctx, "018f3c1e-5555-7000-8000-000000000005")
		if err := json.Unmarshal(b.Data, &got); err != nil || got["created_at"] != "2026-02-02T10:00:00Z" {
			t.Errorf("stored body %s", b.Data)
		}
	})
	// What the API refuses with 422, --direct refuses too: a dialog url
	// conserver's validator rejects.
	t.Run("refused as the API refuses", func(t *testing.T) {
		const u = "018f3c1e-6666-7000-8000-000000000006"
		doc := `{"vcon":"0.0.1","uuid":"` + u + `","created_at":"2026-02-02T10:00:00Z","parties":[{"name":"a"}],` +
			`"dialog":[{"type":"recording","start":"2026-02-02T10:00:00Z","parties":[0],"url":"not a url"}]}`
		res := invocation{kubeconfig: admin(t), stdin: doc}.run(t, "push", "main", "-", "--direct", "-n", ns)
		if res.code == 0 || !strings.Contains(res.errOut, "not pushed: invalid vCon") || !strings.Contains(res.errOut, "url") {
			t.Errorf("exit %d, stderr %q: want the dialog url refused", res.code, res.errOut)
		}
		if n := rdb.Exists(ctx, vconstore.Key(u)).Val(); n != 0 {
			t.Error("a refused vCon was written")
		}
	})
}

// TestAgainstRealAPI runs push and status --check against the project's
// own API server (internal/api) on a real redis-server: the wire contract,
// not a stand-in's idea of it.
func TestAgainstRealAPI(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	rdb := r.Client()
	srv, err := api.New(rdb, api.Options{Tokens: []string{"real-token"}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	ns := namespace(t)
	createChain(t, ns, "main", vconv1.ChainSpec{IngressLists: []string{"default"}}, healthyStatus(0, 0))
	dir, _ := vconDir(t)
	inv := invocation{kubeconfig: admin(t), env: map[string]string{"API_URL": hs.URL + "/api", "CONSERVER_API_TOKEN": "real-token"}}

	res := inv.run(t, "push", "main", dir, "-n", ns)
	if res.code != 1 || !strings.Contains(res.out, "Pushed 2 of 4 vCons") {
		t.Fatalf("exit %d, stdout %q, stderr %q", res.code, res.out, res.errOut)
	}
	assertList(t, rdbLRange(t, r, "default"), goodUUID1, strings.ToLower(goodUUID2))
	if n := rdb.Exists(ctx, vconstore.Key(goodUUID1), vconstore.Key(strings.ToLower(goodUUID2))).Val(); n != 2 {
		t.Errorf("%d of 2 bodies stored", n)
	}

	res = invocation{kubeconfig: admin(t), env: map[string]string{"API_URL": hs.URL + "/api", "CONSERVER_API_TOKEN": "wrong"}}.run(t, "push", "main", dir, "-n", ns)
	if res.code != 1 || !strings.HasPrefix(res.errOut, "error: the API answered 403 Forbidden: the token was refused") {
		t.Errorf("wrong token: exit %d, stderr %q", res.code, res.errOut)
	}

	res = inv.run(t, "status", "main", "--check", "-n", ns)
	if res.code != 0 || res.out != "OK: All checks passed\n" {
		t.Errorf("check with a healthy API: exit %d, %q %q", res.code, res.out, res.errOut)
	}
	r.Stop() // the API's /health pings Redis
	res = inv.run(t, "status", "main", "--check", "-n", ns)
	if res.code != 2 || res.out != "CRITICAL: API health check failed\n" {
		t.Errorf("check with Redis down behind the API: exit %d, %q %q", res.code, res.out, res.errOut)
	}
}
