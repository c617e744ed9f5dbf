package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/config"
	"github.com/vcon-operator/vcon-operator/internal/modules"
	"github.com/vcon-operator/vcon-operator/internal/secrets"
	"github.com/vcon-operator/vcon-operator/internal/workload"
)

// conserverYAML is a configuration as conserver users write it, with
// credentials in it the import must never print.
const conserverYAML = `
links:
  tag:
    module: links.tag
    options:
      tags: [imported, "source:conserver"]
  jq_filter:
    module: links.jq_link
    options:
      filter: '.parties | length > 1'
      forward_matches: true
  notify_webhook:
    module: links.webhook
    options:
      webhook-urls: ["https://hooks.example.com/vcon"]
      headers:
        Authorization: "Bearer whk-LITERAL-token-9f8e7d"
        Content-Type: application/json
  openai_summary:
    module: links.analyze
    options:
      OPENAI_API_KEY: sk-proj-LITERAL-openai-4c3b2a
      prompt: Summarize this conversation
      analysis_type: summary
      model: gpt-4o-mini
      max_tokens: 500
  legacy_scorer:
    module: links.sentiment_scorer
    options:
      api_token: ${SCORER_TOKEN}
      endpoint: https://scorer.internal/score
storages:
  postgres:
    module: storage.postgres
    options:
      user: vcon
      password: pg-LITERAL-password-1a2b
      host: db.internal
      port: 5432
      database: vcons
  file:
    module: storage.file
    options:
      path: /data/vcons
      organize_by_date: true
chains:
  main_chain:
    links: [tag, jq_filter, notify_webhook, openai_summary]
    storages: [postgres, file]
    ingress_lists: [default]
    egress_lists: [processed]
    enabled: 1
    timeout: 90
  scoring:
    links: [legacy_scorer]
    storages: [file]
    ingress_lists: [to_score]
    enabled: 0
ingress_auth:
  default: ingress-LITERAL-key-5e6f
`

var literals = []string{"whk-LITERAL-token-9f8e7d", "sk-proj-LITERAL-openai-4c3b2a", "pg-LITERAL-password-1a2b", "ingress-LITERAL-key-5e6f"}

func writeConfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "conserver.yml")
	if err := os.WriteFile(path, []byte(conserverYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// decodeStream reads a YAML stream or a JSON List into objects.
func decodeStream(t *testing.T, out string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(out), 4096)
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("decode output: %v\n%s", err, out)
		}
		if m == nil {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetKind() == "List" {
			items, _, _ := unstructured.NestedSlice(m, "items")
			for _, it := range items {
				objs = append(objs, &unstructured.Unstructured{Object: it.(map[string]any)})
			}
			continue
		}
		objs = append(objs, u)
	}
	return objs
}

func byKindName(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	m := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		m[o.GetKind()+"/"+o.GetName()] = o
	}
	return m
}

// TestImport imports a realistic conserver config, checks what came out,
// and has the real API server (with our CRDs and their validation) accept
// every manifest.
func TestImport(t *testing.T) {
	path := writeConfig(t)
	for _, format := range []string{"yaml", "json"} {
		t.Run(format, func(t *testing.T) {
			res := invocation{}.run(t, "import", path, "-o", format)
			if res.code != 0 {
				t.Fatalf("exit %d: %s", res.code, res.errOut)
			}
			for _, lit := range literals {
				if strings.Contains(res.out+res.errOut, lit) {
					t.Errorf("credential %q reached the output", lit)
				}
			}
			if format == "yaml" {
				for _, want := range []string{
					`#   link "openai_summary" -> Link openai-summary`,
					`#   chain "main_chain" -> Chain main-chain`,
					"# WARNING: module links.sentiment_scorer is not built into the worker",
					"#   OPENAI_SUMMARY_OPENAI_API_KEY: options.OPENAI_API_KEY",
					"#   NOTIFY_WEBHOOK_AUTHORIZATION: options.headers.Authorization",
				} {
					if !strings.Contains(res.out, want) {
						t.Errorf("YAML lacks the comment %q", want)
					}
				}
			}
			for _, want := range []string{
				`warning: link "legacy_scorer": module links.sentiment_scorer is not built into the worker; kept as written`,
				"warning: ingress_auth (keys for 1 ingress lists) is not imported",
			} {
				if !strings.Contains(res.errOut, want) {
					t.Errorf("stderr lacks %q:\n%s", want, res.errOut)
				}
			}

			objs := byKindName(decodeStream(t, res.out))
			wantObjs := []string{
				"Secret/conserver-env", "Secret/notify-webhook-credentials", "Secret/openai-summary-credentials", "Secret/postgres-credentials",
				"Link/tag", "Link/jq-filter", "Link/notify-webhook", "Link/openai-summary", "Link/legacy-scorer",
				"Storage/postgres", "Storage/file", "Chain/main-chain", "Chain/scoring",
			}
			if len(objs) != len(wantObjs) {
				t.Errorf("got %d objects, want %d: %v", len(objs), len(wantObjs), keys(objs))
			}
			for _, k := range wantObjs {
				if objs[k] == nil {
					t.Errorf("missing %s", k)
				}
			}

			// Credentials: ${VAR} in the options, VAR from <step>-credentials.
			for _, c := range []struct {
				obj, secret, envName string
				optionPath           []string
			}{
				{"Link/openai-summary", "openai-summary-credentials", "OPENAI_SUMMARY_OPENAI_API_KEY", []string{"spec", "options", "OPENAI_API_KEY"}},
				{"Link/notify-webhook", "notify-webhook-credentials", "NOTIFY_WEBHOOK_AUTHORIZATION", []string{"spec", "options", "headers", "Authorization"}},
				{"Storage/postgres", "postgres-credentials", "POSTGRES_PASSWORD", []string{"spec", "options", "password"}},
				{"Link/legacy-scorer", "conserver-env", "SCORER_TOKEN", []string{"spec", "options", "api_token"}},
			} {
				o := objs[c.obj]
				if o == nil {
					continue
				}
				if v, _, _ := unstructured.NestedString(o.Object, c.optionPath...); v != "${"+c.envName+"}" {
					t.Errorf("%s %v = %q, want ${%s}", c.obj, c.optionPath, v, c.envName)
				}
				env, _, _ := unstructured.NestedSlice(o.Object, "spec", "env")
				want := map[string]any{"name": c.envName, "secretKeyRef": map[string]any{"name": c.secret, "key": c.envName}}
				if !containsValue(env, want) {
					t.Errorf("%s env %v lacks %v", c.obj, env, want)
				}
				s := objs["Secret/"+c.secret]
				if v, _, _ := unstructured.NestedString(s.Object, "stringData", c.envName); v != SecretPlaceholder {
					t.Errorf("Secret %s key %s = %q, want the placeholder", c.secret, c.envName, v)
				}
			}
			// The operator's CredentialsInSecrets check finds nothing to flag.
			for k, o := range objs {
				if o.GetKind() != "Link" && o.GetKind() != "Storage" {
					continue
				}
				raw, _ := json.Marshal(o.Object["spec"].(map[string]any)["options"])
				if found, err := workload.LiteralCredentials(&apiextensionsv1.JSON{Raw: raw}); err != nil || len(found) > 0 {
					t.Errorf("%s: the operator would flag options %v as literal credentials (%v)", k, found, err)
				}
			}
			// What is not a credential is kept as written.
			if v, _, _ := unstructured.NestedString(objs["Link/notify-webhook"].Object, "spec", "options", "headers", "Content-Type"); v != "application/json" {
				t.Errorf("Content-Type header = %q", v)
			}
			if v, _, _ := unstructured.NestedFieldNoCopy(objs["Link/openai-summary"].Object, "spec", "options", "max_tokens"); toInt(v) != 500 {
				t.Errorf("max_tokens = %v, want 500 kept", v)
			}
			if v, _, _ := unstructured.NestedFieldNoCopy(objs["Storage/postgres"].Object, "spec", "options", "port"); toInt(v) != 5432 {
				t.Errorf("postgres port = %v, want 5432 kept", v)
			}
			// The unknown module is kept, flagged.
			if l := objs["Link/legacy-scorer"]; l != nil {
				if m, _, _ := unstructured.NestedString(l.Object, "spec", "module"); m != "links.sentiment_scorer" {
					t.Errorf("unknown module rewritten to %q", m)
				}
				if !strings.Contains(l.GetAnnotations()[AnnotationImportWarning], "not built into the worker") {
					t.Errorf("annotations %v lack the warning", l.GetAnnotations())
				}
			}
			// Chains.
			main := objs["Chain/main-chain"]
			var spec vconv1.ChainSpec
			if err := fromUnstructured(main, "spec", &spec); err != nil {
				t.Fatal(err)
			}
			wantSpec := vconv1.ChainSpec{
				IngressLists: []string{"default"}, EgressLists: []string{"processed"},
				Links:    []string{"tag", "jq-filter", "notify-webhook", "openai-summary"},
				Storages: []string{"postgres", "file"},
				Enabled:  ptr.To(true), Timeout: spec.Timeout,
				// No retry: in the conserver config, so conserver's
				// dead-letter at the first failure.
				Retry: vconv1.RetryPolicy{Attempts: ptr.To(int32(1))},
				// No storage_failure: either, so conserver's handling
				// of a failed write: its own DLQ, egress still pushed.
				StorageFailure: vconv1.StorageFailureDeadLetterStorage,
			}
			if !reflect.DeepEqual(spec, wantSpec) || spec.Timeout == nil || spec.Timeout.Duration.Seconds() != 90 {
				t.Errorf("main-chain spec = %+v, want %+v with timeout 90s", spec, wantSpec)
			}
			if main.GetAnnotations()[AnnotationConserverName] != "main_chain" {
				t.Errorf("main-chain annotations %v", main.GetAnnotations())
			}
			if en, _, _ := unstructured.NestedBool(objs["Chain/scoring"].Object, "spec", "enabled"); en {
				t.Error("scoring is enabled, want enabled: false as in the file")
			}

			// The real API server accepts every manifest as printed.
			ns := namespace(t)
			ctx := context.Background()
			for _, o := range decodeStream(t, res.out) {
				o.SetNamespace(ns)
				if err := testKube.Client.Create(ctx, o); err != nil {
					t.Errorf("API server refused %s/%s: %v", o.GetKind(), o.GetName(), err)
				}
			}
		})
	}
}

// TestImportApply applies the import to a namespace (twice: it is
// idempotent) and reports the Secrets the user must still create.
func TestImportApply(t *testing.T) {
	ctx := context.Background()
	path := writeConfig(t)
	ns := namespace(t)
	// One Secret exists, with one of its keys.
	if err := testKube.Client.Create(ctx, &corev1.Secret{ObjectMeta: objectMeta(ns, "postgres-credentials"), StringData: map[string]string{"POSTGRES_PASSWORD": "x"}}); err != nil {
		t.Fatal(err)
	}
	inv := invocation{kubeconfig: admin(t)}
	for round := 1; round <= 2; round++ {
		res := inv.run(t, "import", path, "--apply", "-n", ns)
		if res.code != 0 {
			t.Fatalf("round %d: exit %d: %s", round, res.code, res.errOut)
		}
		for _, lit := range literals {
			if strings.Contains(res.out+res.errOut, lit) {
				t.Errorf("credential %q reached the output", lit)
			}
		}
		for _, want := range []string{"link.vcon.dev/openai-summary serverside-applied", "chain.vcon.dev/main-chain serverside-applied", "storage.vcon.dev/postgres serverside-applied"} {
			if !strings.Contains(res.out, want) {
				t.Errorf("round %d: stdout lacks %q:\n%s", round, want, res.out)
			}
		}
		if !strings.Contains(res.errOut, "warning: secret/openai-summary-credentials does not exist: create it with keys OPENAI_SUMMARY_OPENAI_API_KEY") {
			t.Errorf("round %d: stderr does not name the missing Secret:\n%s", round, res.errOut)
		}
		if strings.Contains(res.errOut, "secret/postgres-credentials") {
			t.Errorf("round %d: the complete Secret is reported:\n%s", round, res.errOut)
		}
	}
	var link vconv1.Link
	if err := testKube.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "openai-summary"}, &link); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(link.Spec.Options.Raw, []byte(`"${OPENAI_SUMMARY_OPENAI_API_KEY}"`)) || len(link.Spec.Env) != 1 {
		t.Errorf("applied Link spec %s env %v", link.Spec.Options.Raw, link.Spec.Env)
	}
	found := false
	for _, mf := range link.ManagedFields {
		found = found || mf.Manager == FieldManager
	}
	if !found {
		t.Errorf("field manager %s not among %v", FieldManager, link.ManagedFields)
	}
	var chain vconv1.Chain
	if err := testKube.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "main-chain"}, &chain); err != nil {
		t.Fatal(err)
	}
	if chain.Spec.Workers.MaxReplicas != 10 {
		t.Errorf("applied Chain lacks the CRD defaults: workers %+v", chain.Spec.Workers)
	}
	var none corev1.Secret
	if err := testKube.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "openai-summary-credentials"}, &none); err == nil {
		t.Error("--apply created a placeholder Secret")
	}
}

// TestImportCredentials pins which option values are treated as
// credentials, on the pure Import.
func TestImportCredentials(t *testing.T) {
	tests := []struct {
		name    string
		options map[string]any
		want    map[string]any
		env     []string // env names, sorted
	}{
		{
			name:    "plain options stay",
			options: map[string]any{"tags": []any{"a"}, "max_tokens": int64(5), "token_limit": int64(9), "keys": []any{"x"}, "sampling_rate": 0.5},
			want:    map[string]any{"tags": []any{"a"}, "max_tokens": int64(5), "token_limit": int64(9), "keys": []any{"x"}, "sampling_rate": 0.5},
		},
		{
			name:    "secret keys, nested and numeric",
			options: map[string]any{"headers": map[string]any{"X-Api-Key": "k1", "Accept": "json"}, "db": map[string]any{"password": int64(1234)}, "DEEPGRAM_KEY": "dg"},
			want:    map[string]any{"headers": map[string]any{"X-Api-Key": "${S_X_API_KEY}", "Accept": "json"}, "db": map[string]any{"password": "${S_PASSWORD}"}, "DEEPGRAM_KEY": "${S_DEEPGRAM_KEY}"},
			env:     []string{"S_DEEPGRAM_KEY", "S_PASSWORD", "S_X_API_KEY"},
		},
		{
			name:    "lists under a secret key",
			options: map[string]any{"api_keys": []any{"a", "b"}},
			want:    map[string]any{"api_keys": []any{"${S_API_KEYS_1}", "${S_API_KEYS_2}"}},
			env:     []string{"S_API_KEYS_1", "S_API_KEYS_2"},
		},
		{
			name:    "url with a password",
			options: map[string]any{"url": "postgres://u:pw@db/x", "plain": "https://example.com/a@b"},
			want:    map[string]any{"url": "${S_URL}", "plain": "https://example.com/a@b"},
			env:     []string{"S_URL"},
		},
		{
			name:    "existing references are shared, defaults under credential keys dropped",
			options: map[string]any{"token": "${TOK:-literal-default}", "url": "${BASE:-http://x}/y", "note": "$${NOT_A_REF}", "flag_token": true},
			want:    map[string]any{"token": "${TOK}", "url": "${BASE:-http://x}/y", "note": "$${NOT_A_REF}", "flag_token": true},
			env:     []string{"BASE", "TOK"},
		},
		{
			name:    "one classifier: what the operator calls a credential is moved, the rest stays",
			options: map[string]any{"tokenizer": "cl100k", "master_key": "mk", "key_points": "yes"},
			want:    map[string]any{"tokenizer": "cl100k", "master_key": "${S_MASTER_KEY}", "key_points": "yes"},
			env:     []string{"S_MASTER_KEY"},
		},
		{
			name:    "a key already prefixed by the step is not prefixed twice",
			options: map[string]any{"S_SECRET": "x"},
			want:    map[string]any{"S_SECRET": "${S_SECRET}"},
			env:     []string{"S_SECRET"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.Config{Links: map[string]config.Module{"s": {Module: "links.tag", Options: tc.options}}}
			im := Import(cfg, ImportOptions{KnownLinks: []string{"links.tag"}})
			var link *Manifest
			for i := range im.Manifests {
				if im.Manifests[i].Kind == "Link" {
					link = &im.Manifests[i]
				}
			}
			var got struct {
				Spec vconv1.LinkSpec `json:"spec"`
			}
			b, _ := json.Marshal(link.Object)
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			var opts map[string]any
			b, _ = json.Marshal(tc.want)
			var want map[string]any
			_ = json.Unmarshal(b, &want)
			_ = json.Unmarshal(got.Spec.Options.Raw, &opts)
			if !reflect.DeepEqual(opts, want) {
				t.Errorf("options = %v, want %v", opts, want)
			}
			var env []string
			for _, e := range got.Spec.Env {
				env = append(env, e.Name)
			}
			if !reflect.DeepEqual(env, tc.env) {
				t.Errorf("env = %v, want %v", env, tc.env)
			}
			out, _ := json.Marshal(im)
			for _, lit := range []string{"k1", "1234", "dg", "literal-default", "pw@"} {
				if bytes.Contains(out, []byte(`"`+lit)) {
					t.Errorf("literal %q in the result", lit)
				}
			}
		})
	}
}

func TestImportTreatsCredentialKeys(t *testing.T) {
	for key, want := range map[string]bool{
		"password": true, "db_password": true, "client_secret": true, "aws_secret_access_key": true, "aws_access_key_id": true,
		"OPENAI_API_KEY": true, "apiKey": true, "x-api-key": true, "DEEPGRAM_KEY": true, "key": true, "LITELLM_MASTER_KEY": true,
		"Authorization": true, "token": true, "api_token": true, "X-Auth-Token": true, "slackToken": true,
		"max_tokens": false, "token_limit": false, "keys": false, "keywords": false, "tags": false, "url": false, "model": false,
		"webhook-urls": false, "forward_matches": false, "Content-Type": false,
	} {
		if got := secrets.IsCredentialKey(key); got != want {
			t.Errorf("IsCredentialKey(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestDNSName(t *testing.T) {
	for in, want := range map[string]string{
		"main_chain": "main-chain", "OpenAI_Summary": "openai-summary", "a.b c": "a-b-c", "_x_": "x",
		"___": "unnamed", strings.Repeat("a", 70): strings.Repeat("a", 63), "ok-name": "ok-name",
	} {
		if got := DNSName(in); got != want {
			t.Errorf("DNSName(%q) = %q, want %q", in, got, want)
		}
	}
	// Two conserver names that map to one object name stay apart.
	cfg := &config.Config{Links: map[string]config.Module{"my_link": {Module: "links.tag"}, "my-link": {Module: "links.tag"}}}
	im := Import(cfg, ImportOptions{KnownLinks: []string{"links.tag"}})
	var names []string
	for _, m := range im.Manifests {
		names = append(names, m.Name)
	}
	if !reflect.DeepEqual(names, []string{"my-link", "my-link-2"}) {
		t.Errorf("names %v, want my-link and my-link-2", names)
	}
}

// TestImportUnknownModules: every module outside the worker is kept and
// reported, including names the CRD pattern refuses.
func TestImportUnknownModules(t *testing.T) {
	cfg := &config.Config{
		Links:    map[string]config.Module{"a": {Module: "links.custom"}, "b": {Module: "mycompany.links.fancy"}},
		Storages: map[string]config.Module{"m": {Module: "storage.mongo"}},
	}
	im := Import(cfg, ImportOptions{KnownLinks: []string{"links.tag"}, KnownStorages: []string{"storage.file"}})
	kept := map[string]bool{}
	for _, m := range im.Manifests {
		kept[m.Kind+"/"+m.Name] = true
	}
	for _, k := range []string{"Link/a", "Link/b", "Storage/m"} {
		if !kept[k] {
			t.Errorf("%s was dropped", k)
		}
	}
	joined := strings.Join(im.Warnings, "\n")
	for _, want := range []string{`link "a": module links.custom is not built`, `link "b": module mycompany.links.fancy is not built`, "the API server will also refuse it", `storage "m": module storage.mongo is not built`} {
		if !strings.Contains(joined, want) {
			t.Errorf("warnings lack %q:\n%s", want, joined)
		}
	}
}

func keys[V any](m map[string]V) []string { return sortedKeys(m) }

func containsValue(list []any, want map[string]any) bool {
	for _, e := range list {
		if reflect.DeepEqual(e, want) {
			return true
		}
	}
	return false
}

func toInt(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case float64:
		return int64(n)
	case json.Number:
		i, _ := n.Int64()
		return i
	}
	return -1
}

func fromUnstructured(u *unstructured.Unstructured, field string, into any) error {
	b, err := json.Marshal(u.Object[field])
	if err != nil {
		return err
	}
	return json.Unmarshal(b, into)
}

// TestImportNamespace: -n puts every manifest in that namespace; without it
// the namespace is left to kubectl apply -n.
func TestImportNamespace(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"import", "-", "-n", "team-a"}, "team-a"},
		{[]string{"import", "-"}, ""},
	} {
		res := invocation{stdin: conserverYAML}.run(t, tc.args...)
		if res.code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, res.code, res.errOut)
		}
		objs := decodeStream(t, res.out)
		if len(objs) != 13 {
			t.Errorf("%v: %d objects, want 13", tc.args, len(objs))
		}
		for _, o := range objs {
			if o.GetNamespace() != tc.want {
				t.Errorf("%v: %s/%s in namespace %q, want %q", tc.args, o.GetKind(), o.GetName(), o.GetNamespace(), tc.want)
			}
		}
	}
}

// TestImportConserverOnlyStorages: conserver's storages the worker is not
// built with are kept as written, each with what to use instead.
func TestImportConserverOnlyStorages(t *testing.T) {
	var b strings.Builder
	b.WriteString("storages:\n")
	for _, m := range []string{"milvus", "scitt", "dataverse", "spaceandtime", "chatgpt_files"} {
		fmt.Fprintf(&b, "  %s: {module: storage.%s, options: {}}\n", m, m)
	}
	b.WriteString("chains:\n  main: {links: [], storages: [milvus, scitt, dataverse, spaceandtime, chatgpt_files], ingress_lists: [in]}\n")
	path := filepath.Join(t.TempDir(), "conserver.yml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	res := invocation{}.run(t, "import", path)
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.errOut)
	}
	for module, instead := range conserverOnly {
		want := fmt.Sprintf("conserver's %s is not built into the worker: %s", module, instead)
		if !strings.Contains(res.errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, res.errOut)
		}
	}
}

// TestImportKeepsConserversLeniency: an imported jq_link or webhook says
// strict: false, conserver's behaviour (a Link that does not say is
// strict), with a comment saying what that means; a strict the config
// already had is kept, and other modules get none.
func TestImportKeepsConserversLeniency(t *testing.T) {
	tests := []struct {
		name, module string
		options      map[string]any
		want         any // nil: no strict key
		comment      string
	}{
		{"jq_link", "links.jq_link", map[string]any{"filter": "."}, false, "a jq program that raises on a vCon filters it out"},
		{"jq_link without options", "links.jq_link", nil, false, "a jq program that raises"},
		{"webhook", "links.webhook", map[string]any{"webhook-urls": []any{"https://h.example/x"}}, false, "a non-2xx answer is logged and the chain goes on"},
		{"strict kept", "links.webhook", map[string]any{"webhook-urls": []any{"https://h.example/x"}, "strict": true}, true, ""},
		{"other module", "links.tag", map[string]any{"tags": []any{"a"}}, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.Config{Links: map[string]config.Module{"s": {Module: tc.module, Options: tc.options}}}
			im := Import(cfg, ImportOptions{KnownLinks: modules.Links()})
			var link *Manifest
			for i := range im.Manifests {
				if im.Manifests[i].Kind == "Link" {
					link = &im.Manifests[i]
				}
			}
			got, set, err := unstructured.NestedFieldNoCopy(link.Object, "spec", "options", "strict")
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				if set {
					t.Fatalf("strict set on %s: %v", tc.module, got)
				}
			} else if got != tc.want {
				t.Fatalf("strict = %#v, want %#v", got, tc.want)
			}
			said := strings.Contains(strings.Join(link.Comments, "\n"), "strict: false keeps conserver's behaviour")
			if said != (tc.comment != "") || !strings.Contains(strings.Join(link.Comments, "\n"), tc.comment) {
				t.Fatalf("comments %q, want one saying %q", link.Comments, tc.comment)
			}
			if _, added := tc.options["strict"]; added && tc.want == false {
				t.Fatal("the import changed the config it read")
			}
		})
	}
	for _, m := range modules.StrictLinks() {
		if conserverLeniency[m] == "" {
			t.Errorf("conserverLeniency says nothing about %s", m)
		}
	}
}

// TestImportReportsWhatTheWorkerDoesNotRun: imports of Python modules and
// tracers are reported in the worker's own words, imports of built-in
// modules as not needed; none of it becomes an object.
func TestImportReportsWhatTheWorkerDoesNotRun(t *testing.T) {
	doc := conserverYAML + `
imports:
  custom_utility: {module: custom_utils, pip_name: custom-utils-package}
  tagging: links.tag
tracers:
  jlinc:
    module: tracers.jlinc
    options: {data_store_api_key: jlinc-LITERAL-key-77, dlq_vcon_on_error: true}
`
	res := invocation{stdin: doc}.run(t, "import", "-")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.errOut)
	}
	for _, want := range []string{
		`warning: not imported: imports.custom_utility: module "custom_utils" cannot be imported: this worker runs only its built-in modules`,
		"does not load or pip-install Python ones; remove the entry, and run custom code as a step service",
		`warning: not imported: tracers.jlinc: tracer module "tracers.jlinc" is not run: this worker runs no conserver tracers; it exports OpenTelemetry traces`,
		"warning: imports.tagging is not imported: links.tag is built into the worker and needs no import",
	} {
		if !strings.Contains(res.errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, res.errOut)
		}
	}
	if strings.Contains(res.out+res.errOut, "jlinc-LITERAL-key-77") {
		t.Error("the tracer's key reached the output")
	}
	if n := len(decodeStream(t, res.out)); n != 13 {
		t.Errorf("%d objects, want the 13 of the config without these sections", n)
	}
}

// TestImportFollowers: each follower joins the Chain reading its
// follower_ingress_list, with its token from a Secret (a template for a
// literal, the shared Secret for a ${VAR}); a follower no Chain can carry
// is reported; the real API server accepts the result.
func TestImportFollowers(t *testing.T) {
	doc := conserverYAML + `
followers:
  upstream_server:
    url: https://upstream.example.com/api
    egress_list: processed
    follower_ingress_list: default
    auth_token: follower-LITERAL-token-31
    pulling_interval: 60
    fetch_vcon_limit: 10
  scores_in:
    url: http://10.0.0.7:8000
    egress_list: scored
    follower_ingress_list: to_score
    auth_token: ${SCORES_TOKEN}
    pulling_interval: 2.5
    fetch_vcon_limit: 1
  orphan:
    url: https://elsewhere.example.com
    egress_list: x
    follower_ingress_list: nobody_reads_this
    pulling_interval: 5
    fetch_vcon_limit: 1
`
	res := invocation{stdin: doc}.run(t, "import", "-")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.errOut)
	}
	if strings.Contains(res.out+res.errOut, "follower-LITERAL-token-31") {
		t.Error("the follower's token reached the output")
	}
	if want := "warning: followers.orphan is not imported: no chain reads its follower_ingress_list nobody_reads_this; add the follower to the Chain that should (spec.followers)"; !strings.Contains(res.errOut, want) {
		t.Errorf("stderr lacks %q:\n%s", want, res.errOut)
	}
	for _, want := range []string{
		`# follower upstream-server (conserver follower "upstream_server") pulls upstream egress list processed into default; its token is token of Secret main-chain-upstream-server-follower-token`,
		`# follower scores-in (conserver follower "scores_in") pulls upstream egress list scored into to_score; its token is SCORES_TOKEN of Secret conserver-env`,
		"#   SCORES_TOKEN: used by chain scoring follower scores-in auth_token",
	} {
		if !strings.Contains(res.out, want) {
			t.Errorf("YAML lacks %q", want)
		}
	}
	objs := byKindName(decodeStream(t, res.out))
	for chain, want := range map[string][]vconv1.ChainFollower{
		"Chain/main-chain": {{Name: "upstream-server", URL: "https://upstream.example.com/api", EgressList: "processed", IngressList: "default",
			AuthTokenSecretRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "main-chain-upstream-server-follower-token"}, Key: "token"},
			PullingInterval:    &metav1.Duration{Duration: time.Minute}, FetchVconLimit: ptr.To(int32(10))}},
		"Chain/scoring": {{Name: "scores-in", URL: "http://10.0.0.7:8000", EgressList: "scored", IngressList: "to_score",
			AuthTokenSecretRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "conserver-env"}, Key: "SCORES_TOKEN"},
			PullingInterval:    &metav1.Duration{Duration: 2500 * time.Millisecond}, FetchVconLimit: ptr.To(int32(1))}},
	} {
		var spec vconv1.ChainSpec
		if err := fromUnstructured(objs[chain], "spec", &spec); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(spec.Followers, want) {
			t.Errorf("%s followers = %+v\nwant %+v", chain, spec.Followers, want)
		}
	}
	s := objs["Secret/main-chain-upstream-server-follower-token"]
	if v, _, _ := unstructured.NestedString(s.Object, "stringData", "token"); v != SecretPlaceholder {
		t.Errorf("follower token Secret holds %q, want the placeholder", v)
	}
	if v, _, _ := unstructured.NestedString(objs["Secret/conserver-env"].Object, "stringData", "SCORES_TOKEN"); v != SecretPlaceholder {
		t.Errorf("conserver-env SCORES_TOKEN = %q, want the placeholder", v)
	}

	ns := namespace(t)
	for _, o := range decodeStream(t, res.out) {
		o.SetNamespace(ns)
		if err := testKube.Client.Create(context.Background(), o); err != nil {
			t.Errorf("API server refused %s/%s: %v", o.GetKind(), o.GetName(), err)
		}
	}
}
