package api

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vcon-operator/vcon-operator/internal/apiwire"
	"github.com/vcon-operator/vcon-operator/internal/storage"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// writeConfig writes a conserver config with a file storage and ingress
// keys, returning its path and the storage directory.
func writeConfig(t *testing.T) (string, string) {
	t.Helper()
	t.Setenv("SECRET_VALUE", "do-not-show")
	dir := t.TempDir()
	store := filepath.Join(dir, "vcons")
	cfg := filepath.Join(dir, "config.yml")
	data := "storages:\n  files:\n    module: storage.file\n    options:\n      path: " + store + "\n" +
		"ingress_auth:\n  partner: [key-a, key-b]\n  solo: only-key\n" +
		"chains:\n  main:\n    links: []\n    storages: [files]\n    ingress_lists: [partner]\n    password: ${NOT_RESOLVED}\n"
	if err := os.WriteFile(cfg, []byte(strings.Replace(data, "    password: ${NOT_RESOLVED}\n", "", 1)+"links: {}\nextra: ${SECRET_VALUE}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg, store
}

func TestReadThroughAndDeleteUseTheConfiguredStorages(t *testing.T) {
	cfg, dir := writeConfig(t)
	h := newHarness(t, func(o *Options) { o.ConfigFile = cfg })
	ctx := context.Background()

	files, err := storage.New(ctx, "files", "storage.file", map[string]any{"path": dir}, storage.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := vcon.Parse([]byte(testVcon(u1)))
	if err != nil {
		t.Fatal(err)
	}
	v.Doc()["appended"] = map[string]any{"by": "legacy"}
	if err := files.Save(ctx, v); err != nil {
		t.Fatal(err)
	}

	rec := h.doJSON("GET", "/api/vcon/"+u1, "")
	mustStatus(t, rec, http.StatusOK)
	got := decode[map[string]any](t, rec)
	if got["uuid"] != u1 || got["vcon"] != vcon.CurrentVersion || got["amended"] == nil {
		t.Errorf("read-through answer not normalised: %s", rec.Body.String())
	}
	if ttl := h.rdb.TTL(ctx, "vcon:"+u1).Val(); ttl <= 0 {
		t.Errorf("re-cached body has no TTL (%v)", ttl)
	}
	if _, err := h.rdb.ZScore(ctx, "vcons", "vcon:"+u1).Result(); err != nil {
		t.Errorf("re-cached vCon not listed: %v", err)
	}

	// Multi-get and re-ingress read through too.
	h.rdb.Del(ctx, "vcon:"+u1)
	rec = h.doJSON("GET", "/api/vcons?vcon_uuids="+u1+"&vcon_uuids="+u2, "")
	mustStatus(t, rec, http.StatusOK)
	if !strings.HasPrefix(rec.Body.String(), `[{`) || !strings.HasSuffix(rec.Body.String(), `,null]`) {
		t.Errorf("multi-get %s", rec.Body.String())
	}
	h.rdb.Del(ctx, "vcon:"+u1)
	mustStatus(t, h.doJSON("POST", "/api/vcon/ingress?ingress_list=again", `["`+u1+`"]`), http.StatusNoContent)
	if got := h.rdb.LRange(ctx, "again", 0, -1).Val(); len(got) != 1 {
		t.Errorf("re-ingress of a stored vCon: %v", got)
	}

	mustStatus(t, h.doJSON("DELETE", "/api/vcon/"+u1, ""), http.StatusNoContent)
	if _, err := files.(storage.Getter).Get(ctx, u1); err == nil {
		t.Error("DELETE left the vCon in the file storage")
	}
	mustStatus(t, h.doJSON("GET", "/api/vcon/"+u1, ""), http.StatusNotFound)

	t.Run("config is shown with references unresolved", func(t *testing.T) {
		rec := h.doJSON("GET", "/api/config", "")
		mustStatus(t, rec, http.StatusOK)
		if strings.Contains(rec.Body.String(), "do-not-show") || !strings.Contains(rec.Body.String(), "${SECRET_VALUE}") {
			t.Errorf("config answer %s", rec.Body.String())
		}
	})
}

// TestReadThroughFollowsTheFileOrder: with the vCon in two storages, the
// API reads it back from the one the config file lists first, as
// conserver iterates its storages: section, whatever the names' order.
func TestReadThroughFollowsTheFileOrder(t *testing.T) {
	for _, tc := range []struct {
		name  string
		order []string
	}{
		{"name order", []string{"alpha", "zulu"}},
		{"against name order", []string{"zulu", "alpha"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ctx := context.Background()
			var data strings.Builder
			data.WriteString("storages:\n")
			for _, name := range tc.order {
				path := filepath.Join(dir, name)
				data.WriteString("  " + name + ": {module: storage.file, options: {path: " + path + "}}\n")
				files, err := storage.New(ctx, name, "storage.file", map[string]any{"path": path}, storage.Deps{})
				if err != nil {
					t.Fatal(err)
				}
				v, err := vcon.Parse([]byte(testVcon(u1)))
				if err != nil {
					t.Fatal(err)
				}
				v.Doc()["subject"] = "kept in " + name
				if err := files.Save(ctx, v); err != nil {
					t.Fatal(err)
				}
			}
			cfg := filepath.Join(dir, "config.yml")
			if err := os.WriteFile(cfg, []byte(data.String()), 0o600); err != nil {
				t.Fatal(err)
			}
			h := newHarness(t, func(o *Options) { o.ConfigFile = cfg })
			rec := h.doJSON("GET", "/api/vcon/"+u1, "")
			mustStatus(t, rec, http.StatusOK)
			if got, want := decode[map[string]any](t, rec)["subject"], "kept in "+tc.order[0]; got != want {
				t.Errorf("subject = %v, want %q (read from the storage listed first)", got, want)
			}
		})
	}
}

func TestExternalIngress(t *testing.T) {
	cfg, _ := writeConfig(t)
	h := newHarness(t, func(o *Options) { o.ConfigFile = cfg })
	ctx := context.Background()
	cases := []struct {
		name, list, key string
		code            int
		detail          string
	}{
		{"first key of a list", "partner", "key-a", 204, ""},
		{"second key of a list", "partner", "key-b", 204, ""},
		{"single-string key", "solo", "only-key", 204, ""},
		{"key of another list", "solo", "key-a", 403, "Invalid API Key for ingress list 'solo'"},
		{"unconfigured list", "other", "key-a", 403, "Ingress list 'other' not configured"},
		{"no key", "partner", "", 403, "API Key required"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := []string{u1, u2, u3, u1, u2, u3}[i]
			opts := []reqOpt{noToken()}
			if tc.key != "" {
				opts = append(opts, withHeader(apiwire.DefaultHeaderName, tc.key))
			}
			before := h.rdb.LLen(ctx, tc.list).Val()
			rec := h.doJSON("POST", "/api/vcon/external-ingress?ingress_list="+tc.list, testVcon(u), opts...)
			mustStatus(t, rec, tc.code)
			after := h.rdb.LLen(ctx, tc.list).Val()
			if tc.code == 204 && after != before+1 {
				t.Errorf("%s not queued", u)
			}
			if tc.code == 403 {
				if after != before {
					t.Errorf("refused request queued something")
				}
				if !strings.Contains(rec.Body.String(), tc.detail) {
					t.Errorf("body %s, want %s", rec.Body.String(), tc.detail)
				}
			}
		})
	}
	if got := h.rdb.LRange(ctx, "partner", 0, -1).Val(); strings.Join(got, ",") != u1+","+u2 {
		t.Errorf("partner = %v", got)
	}
}

func TestPostConfigWhenAllowed(t *testing.T) {
	cfg, _ := writeConfig(t)
	h := newHarness(t, func(o *Options) { o.ConfigFile = cfg; o.AllowConfigWrite = true })
	mustStatus(t, h.doJSON("POST", "/api/config", `{"chains":{"c":{"links":"not-a-list"}}}`), http.StatusUnprocessableEntity)
	mustStatus(t, h.doJSON("POST", "/api/config", `{"ingress_auth":{"new":"k"},"chains":{}}`), http.StatusNoContent)
	rec := h.doJSON("GET", "/api/config", "")
	mustStatus(t, rec, http.StatusOK)
	// The ingress key written is masked in the answer (see TestGetConfigRedactsCredentials).
	if rec.Body.String() != `{"chains":{},"ingress_auth":{"new":"***"}}` {
		t.Errorf("config after write: %s", rec.Body.String())
	}
	// Posting back what GET answered would write the masks over the keys.
	before, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, masked := range []string{rec.Body.String(),
		`{"chains":{},"storages":{"r":{"module":"storage.redis_storage","options":{"redis_url":"redis://u:***@h"}}}}`} {
		got := h.doJSON("POST", "/api/config", masked)
		mustStatus(t, got, http.StatusUnprocessableEntity)
		if !strings.Contains(got.Body.String(), "masked credentials") {
			t.Errorf("answer %s", got.Body.String())
		}
	}
	if after, _ := os.ReadFile(cfg); string(after) != string(before) {
		t.Errorf("a refused write changed the file")
	}
	// The new ingress_auth applies without a restart.
	mustStatus(t, h.doJSON("POST", "/api/vcon/external-ingress?ingress_list=new", testVcon(u1), noToken(), withHeader(apiwire.DefaultHeaderName, "k")), http.StatusNoContent)
}

func TestEgressFormat001(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.EgressFormat = "0.0.1" })
	mustStatus(t, h.doJSON("POST", "/api/vcon", `{"vcon":"0.4.0","uuid":"`+u1+`","created_at":"2024-01-15T10:30:00Z","attachments":[{"purpose":"tags","body":"[]","encoding":"json"}]}`), http.StatusCreated)
	rec := h.doJSON("GET", "/api/vcon/"+u1, "")
	mustStatus(t, rec, http.StatusOK)
	got := decode[map[string]any](t, rec)
	att := got["attachments"].([]any)[0].(map[string]any)
	if got["vcon"] != "0.0.1" || att["type"] != "tags" {
		t.Errorf("answer not in the 0.0.1 shape: %s", rec.Body.String())
	}
}

// TestGetConfigRedactsCredentials: a config holding every kind of
// credential conserver users write answers none of them by default, and
// all of them, as written, with ShowConfigSecrets.
func TestGetConfigRedactsCredentials(t *testing.T) {
	secretValues := []string{
		"pg-password-1", "AKIAEXAMPLEKEYID", "s3-secret-2", "sk-openai-3", "azure-key-4", "litellm-master-5",
		"deepgram-6", "xoxb-slack-7", "bearer-8", "x-api-9", "redis-pw-10", "hook-token-11",
		"partner-key-12", "partner-key-13", "solo-key-14", "nested-cred-15", "default-pw-16", "cookie-17",
	}
	data := `storages:
  pg:
    module: storage.postgres
    options: {host: db, port: 5432, user: vcon, password: pg-password-1, database: vcons, table_name: vcons}
  s3:
    module: storage.s3
    options: {aws_access_key_id: AKIAEXAMPLEKEYID, aws_secret_access_key: s3-secret-2, aws_bucket: b}
  cache:
    module: storage.redis_storage
    options: {redis_url: "redis://default:redis-pw-10@redis:6379/0", prefix: vcon_storage}
links:
  summarize:
    module: links.analyze
    options:
      OPENAI_API_KEY: sk-openai-3
      AZURE_OPENAI_API_KEY: azure-key-4
      LITELLM_MASTER_KEY: litellm-master-5
      LITELLM_PROXY_URL: https://litellm.example.com
      max_tokens: 400
      prompt: Summarize
  transcribe:
    module: links.deepgram_link
    options: {DEEPGRAM_KEY: deepgram-6, minimum_duration: 60}
  slack:
    module: links.post_analysis_to_slack
    options: {token: xoxb-slack-7, default_channel_name: alerts}
  hook:
    module: links.webhook
    options:
      webhook-urls: ["https://hooks.example.com/in?token=hook-token-11&team=t1"]
      headers: {Authorization: Bearer bearer-8, x-api-key: x-api-9, Cookie: cookie-17, Content-Type: application/json}
  vendor:
    module: links.custom
    options:
      credentials: {client_id: nested-cred-15, scopes: [read]}
      password: ${VENDOR_PASSWORD:-default-pw-16}
      api_key: ${VENDOR_API_KEY}
ingress_auth:
  partner: [partner-key-12, partner-key-13]
  solo: solo-key-14
chains:
  main:
    links: [summarize]
    storages: [pg]
    ingress_lists: [partner]
`
	cfg := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(cfg, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	// The storages are not reachable; GET /api/config reads the file
	// itself, so the Server is built on a config without them and the
	// file swapped in afterwards.
	for _, show := range []bool{false, true} {
		t.Run(map[bool]string{false: "default", true: "show secrets"}[show], func(t *testing.T) {
			h := newHarness(t, func(o *Options) { o.ShowConfigSecrets = show })
			h.srv.opts.ConfigFile = cfg
			rec := h.doJSON("GET", "/api/config", "")
			mustStatus(t, rec, http.StatusOK)
			body := rec.Body.String()
			for _, v := range secretValues {
				if strings.Contains(body, v) != show {
					t.Errorf("secret %q shown = %v, want %v", v, !show, show)
				}
			}
			// What is not a credential is shown either way.
			for _, v := range []string{`"max_tokens":400`, `"table_name":"vcons"`, `"host":"db"`, `"${VENDOR_API_KEY}"`,
				`"Content-Type":"application/json"`, `"https://litellm.example.com"`, `"prompt":"Summarize"`, `team=t1`, `redis:6379/0`} {
				if !strings.Contains(body, v) {
					t.Errorf("answer lacks %s", v)
				}
			}
			if !show {
				for _, v := range []string{`"partner":["***","***"]`, `"solo":"***"`, `redis://default:***@redis:6379/0`, `token=***\u0026team=t1`} {
					if !strings.Contains(body, v) {
						t.Errorf("answer lacks %s: %s", v, body)
					}
				}
			}
		})
	}
}

func TestOptionsFromEnvLimitsAndSecrets(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	o, err := OptionsFromEnv(env(map[string]string{"VCON_MAX_BODY_BYTES": "2048", "VCON_CONFIG_SHOW_SECRETS": "true"}))
	if err != nil || o.MaxBodyBytes != 2048 || !o.ShowConfigSecrets {
		t.Errorf("got %d %v %v", o.MaxBodyBytes, o.ShowConfigSecrets, err)
	}
	o, err = OptionsFromEnv(env(nil))
	if err != nil || o.MaxBodyBytes != 0 || o.ShowConfigSecrets {
		t.Errorf("unset: got %d %v %v (0 means DefaultMaxBodyBytes)", o.MaxBodyBytes, o.ShowConfigSecrets, err)
	}
	for _, bad := range []map[string]string{{"VCON_MAX_BODY_BYTES": "0"}, {"VCON_MAX_BODY_BYTES": "10MiB"}, {"VCON_CONFIG_SHOW_SECRETS": "maybe"}} {
		if _, err := OptionsFromEnv(env(bad)); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
