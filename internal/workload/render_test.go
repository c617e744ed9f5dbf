package workload

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/config"
)

// Fixtures. Each test starts from these and changes what it is about.

func testChain(links, storages []string) *vconv1.Chain {
	return &vconv1.Chain{
		TypeMeta:   metav1.TypeMeta{APIVersion: vconv1.GroupVersion.String(), Kind: "Chain"},
		ObjectMeta: metav1.ObjectMeta{Name: "transcribe", Namespace: "calls", UID: "uid-1", Generation: 1},
		Spec: vconv1.ChainSpec{
			IngressLists: []string{"default"},
			EgressLists:  []string{"done"},
			Links:        links,
			Storages:     storages,
			Timeout:      &metav1.Duration{Duration: 2 * time.Minute},
			Workers: vconv1.WorkerSpec{
				MinReplicas: 0, MaxReplicas: 10, TargetQueueDepth: 100, Concurrency: 4,
			},
		},
	}
}

func rawJSON(s string) *apiextensionsv1.JSON { return &apiextensionsv1.JSON{Raw: []byte(s)} }

func secretKey(name, key string) corev1.SecretKeySelector {
	return corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}
}

func moduleLink(name, module, options string) *vconv1.Link {
	l := &vconv1.Link{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "calls"}, Spec: vconv1.LinkSpec{Module: module}}
	if options != "" {
		l.Spec.Options = rawJSON(options)
	}
	return l
}

func withLimits(l *vconv1.Link, lim vconv1.LinkLimits) *vconv1.Link {
	l.Spec.Limits = &lim
	return l
}

func httpLink(name, url string, headers ...vconv1.SecretHeader) *vconv1.Link {
	return &vconv1.Link{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "calls"}, Spec: vconv1.LinkSpec{
		HTTP: &vconv1.HTTPStep{URL: url, Timeout: &metav1.Duration{Duration: 10 * time.Second}, Headers: headers},
	}}
}

func containerLink(name, image string, port int32, path string) *vconv1.Link {
	return &vconv1.Link{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "calls"}, Spec: vconv1.LinkSpec{
		Container: &vconv1.ContainerStep{Image: image, Port: port, Path: path, Timeout: &metav1.Duration{Duration: 5 * time.Second}},
	}}
}

func testStorage(name, module, options string) *vconv1.Storage {
	s := &vconv1.Storage{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "calls"}, Spec: vconv1.StorageSpec{Module: module}}
	if options != "" {
		s.Spec.Options = rawJSON(options)
	}
	return s
}

func inputs(ch *vconv1.Chain, links []*vconv1.Link, storages []*vconv1.Storage) Inputs {
	in := Inputs{Chain: ch, Links: map[string]*vconv1.Link{}, Storages: map[string]*vconv1.Storage{},
		RedisURL: "redis://redis:6379/0", Image: "ghcr.io/vcon-operator/vcon-operator:test"}
	for _, l := range links {
		in.Links[l.Name] = l
	}
	for _, s := range storages {
		in.Storages[s.Name] = s
	}
	return in
}

// chainEntry is the chains: entry every fixture chain renders to.
func chainEntry(links, storages []string) config.Chain {
	return config.Chain{
		Links: links, Storages: storages, IngressLists: []string{"default"}, EgressLists: []string{"done"},
		Enabled: true, Timeout: 2 * time.Minute, HasLinksKey: true,
	}
}

func TestRender(t *testing.T) {
	tests := []struct {
		name     string
		in       Inputs
		want     *config.Config
		wantEnv  []corev1.EnvVar
		sidecars []string // names of the sidecars
		wantErr  string
	}{
		{
			name: "module links keep their options, integers as int64",
			in: inputs(testChain([]string{"tag", "sample"}, nil), []*vconv1.Link{
				moduleLink("tag", "links.tag", `{"tags":["a","b"],"nested":{"n":3,"ratio":0.5,"on":true}}`),
				moduleLink("sample", "links.sampler", ""),
			}, nil),
			want: &config.Config{
				Links: map[string]config.Module{
					"tag":    {Module: "links.tag", Options: map[string]any{"tags": []any{"a", "b"}, "nested": map[string]any{"n": int64(3), "ratio": 0.5, "on": true}}},
					"sample": {Module: "links.sampler"},
				},
				Chains: map[string]config.Chain{"transcribe": chainEntry([]string{"tag", "sample"}, nil)},
			},
		},
		{
			name: "limits: one budget per Link, named by namespace and name",
			in: inputs(testChain([]string{"summarize", "classify"}, nil), []*vconv1.Link{
				withLimits(moduleLink("summarize", "links.analyze", ""), vconv1.LinkLimits{RequestsPerMinute: 600, TokensPerMinute: 90000}),
				withLimits(httpLink("classify", "https://classifier.example/v1"), vconv1.LinkLimits{MaxConcurrent: 20}),
			}, nil),
			want: &config.Config{
				Links: map[string]config.Module{
					"summarize": {Module: "links.analyze", Limits: &config.Limits{RequestsPerMinute: 600, TokensPerMinute: 90000, Budget: "calls/summarize"}},
					"classify": {Module: HTTPStepModule, Options: map[string]any{"url": "https://classifier.example/v1", "timeout": "10s"},
						Limits: &config.Limits{MaxConcurrent: 20, Budget: "calls/classify"}},
				},
				Chains: map[string]config.Chain{"transcribe": chainEntry([]string{"summarize", "classify"}, nil)},
			},
		},
		{
			name: "http link: header values come from Secrets through env vars",
			in: inputs(testChain([]string{"classify"}, nil), []*vconv1.Link{
				httpLink("classify", "https://classifier.example/v1",
					vconv1.SecretHeader{Name: "Authorization", ValueFrom: secretKey("classifier", "token")},
					vconv1.SecretHeader{Name: "X-Api-Key", ValueFrom: secretKey("classifier", "key")}),
			}, nil),
			want: &config.Config{
				Links: map[string]config.Module{"classify": {Module: HTTPStepModule, Options: map[string]any{
					"url":     "https://classifier.example/v1",
					"timeout": "10s",
					"headers": map[string]any{
						"Authorization": "${VCON_STEP_CLASSIFY_HEADER_AUTHORIZATION}",
						"X-Api-Key":     "${VCON_STEP_CLASSIFY_HEADER_X_API_KEY}",
					},
				}}},
				Chains: map[string]config.Chain{"transcribe": chainEntry([]string{"classify"}, nil)},
			},
			wantEnv: []corev1.EnvVar{
				{Name: "VCON_STEP_CLASSIFY_HEADER_AUTHORIZATION", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: ptr.To(secretKey("classifier", "token"))}},
				{Name: "VCON_STEP_CLASSIFY_HEADER_X_API_KEY", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: ptr.To(secretKey("classifier", "key"))}},
			},
		},
		{
			name: "container link: a sidecar, called on localhost",
			in: inputs(testChain([]string{"redact"}, nil), []*vconv1.Link{
				containerLink("redact", "example/redact:1", 8085, "/step"),
			}, nil),
			want: &config.Config{
				Links: map[string]config.Module{"redact": {Module: HTTPStepModule, Options: map[string]any{
					"url": "http://127.0.0.1:8085/step", "timeout": "5s",
				}}},
				Chains: map[string]config.Chain{"transcribe": chainEntry([]string{"redact"}, nil)},
			},
			sidecars: []string{"step-redact"},
		},
		{
			name: "container link without a path posts to /",
			in: inputs(testChain([]string{"redact"}, nil), []*vconv1.Link{
				containerLink("redact", "example/redact:1", 9000, ""),
			}, nil),
			want: &config.Config{
				Links: map[string]config.Module{"redact": {Module: HTTPStepModule, Options: map[string]any{
					"url": "http://127.0.0.1:9000/", "timeout": "5s",
				}}},
				Chains: map[string]config.Chain{"transcribe": chainEntry([]string{"redact"}, nil)},
			},
			sidecars: []string{"step-redact"},
		},
		{
			name: "storages: numbers as int64, credentials as ${VAR} from Secret env, under the step's own name",
			in: func() Inputs {
				s := testStorage("pg", "storage.postgres", `{"host":"pg","port":5432,"password":"${PG_PASSWORD}","timeout":2.5}`)
				s.Spec.Env = []vconv1.SecretEnv{{Name: "PG_PASSWORD", SecretKeyRef: secretKey("pg", "password")}}
				return inputs(testChain(nil, []string{"pg"}), nil, []*vconv1.Storage{s})
			}(),
			want: &config.Config{
				Links: map[string]config.Module{},
				Storages: map[string]config.Module{"pg": {Module: "storage.postgres", Options: map[string]any{
					"host": "pg", "port": int64(5432), "password": "${VCON_STORAGE2_PG_PG_PASSWORD}", "timeout": 2.5,
				}}},
				StorageOrder: []string{"pg"},
				Chains:       map[string]config.Chain{"transcribe": chainEntry(nil, []string{"pg"})},
			},
			wantEnv: []corev1.EnvVar{{Name: "VCON_STORAGE2_PG_PG_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: ptr.To(secretKey("pg", "password"))}}},
		},
		{
			name: "one name in two steps is two variables, one per step",
			in: func() Inputs {
				a := moduleLink("a", "links.tag", "")
				a.Spec.Env = []vconv1.SecretEnv{{Name: "OPENAI_API_KEY", SecretKeyRef: secretKey("openai", "key")}}
				b := moduleLink("b", "links.tag", "")
				b.Spec.Env = []vconv1.SecretEnv{{Name: "OPENAI_API_KEY", SecretKeyRef: secretKey("openai", "key")}}
				return inputs(testChain([]string{"a", "b"}, nil), []*vconv1.Link{a, b}, nil)
			}(),
			want: &config.Config{
				Links:  map[string]config.Module{"a": {Module: "links.tag"}, "b": {Module: "links.tag"}},
				Chains: map[string]config.Chain{"transcribe": chainEntry([]string{"a", "b"}, nil)},
			},
			wantEnv: []corev1.EnvVar{
				{Name: "VCON_LINK1_A_OPENAI_API_KEY", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: ptr.To(secretKey("openai", "key"))}},
				{Name: "VCON_LINK1_B_OPENAI_API_KEY", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: ptr.To(secretKey("openai", "key"))}},
			},
		},
		{
			name: "one name from two different Secrets in two steps: each step gets its own",
			in: func() Inputs {
				a := moduleLink("a", "links.tag", `{"k":"${API_KEY}"}`)
				a.Spec.Env = []vconv1.SecretEnv{{Name: "API_KEY", SecretKeyRef: secretKey("openai", "key")}}
				s := testStorage("s3", "storage.s3", `{"k":"${API_KEY}"}`)
				s.Spec.Env = []vconv1.SecretEnv{{Name: "API_KEY", SecretKeyRef: secretKey("aws", "key")}}
				return inputs(testChain([]string{"a"}, []string{"s3"}), []*vconv1.Link{a}, []*vconv1.Storage{s})
			}(),
			want: &config.Config{
				Links:        map[string]config.Module{"a": {Module: "links.tag", Options: map[string]any{"k": "${VCON_LINK1_A_API_KEY}"}}},
				Storages:     map[string]config.Module{"s3": {Module: "storage.s3", Options: map[string]any{"k": "${VCON_STORAGE2_S3_API_KEY}"}}},
				StorageOrder: []string{"s3"},
				Chains:       map[string]config.Chain{"transcribe": chainEntry([]string{"a"}, []string{"s3"})},
			},
			wantEnv: []corev1.EnvVar{
				{Name: "VCON_LINK1_A_API_KEY", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: ptr.To(secretKey("openai", "key"))}},
				{Name: "VCON_STORAGE2_S3_API_KEY", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: ptr.To(secretKey("aws", "key"))}},
			},
		},
		{
			// A worker reads a missing body back from the storages in
			// the file's order: the Chain's, not the names'.
			name: "storages in the Chain's order",
			in: inputs(testChain(nil, []string{"zeta", "alpha", "zeta"}), nil, []*vconv1.Storage{
				testStorage("alpha", "storage.file", ""), testStorage("zeta", "storage.file", ""),
			}),
			want: &config.Config{
				Storages:     map[string]config.Module{"alpha": {Module: "storage.file"}, "zeta": {Module: "storage.file"}},
				StorageOrder: []string{"zeta", "alpha"},
				Chains:       map[string]config.Chain{"transcribe": chainEntry(nil, []string{"zeta", "alpha", "zeta"})},
			},
		},
		{
			name: "links.redact: its original storages are in the config, not in the chain's storages",
			in: inputs(testChain([]string{"redact"}, []string{"archive"}), []*vconv1.Link{
				moduleLink("redact", RedactModule, `{"original_storages":["vault","archive"]}`),
			}, []*vconv1.Storage{
				testStorage("archive", "storage.file", `{"path":"/a"}`),
				testStorage("vault", "storage.file", `{"path":"/v"}`),
			}),
			want: &config.Config{
				Links: map[string]config.Module{"redact": {Module: RedactModule, Options: map[string]any{"original_storages": []any{"vault", "archive"}}}},
				Storages: map[string]config.Module{
					"archive": {Module: "storage.file", Options: map[string]any{"path": "/a"}},
					"vault":   {Module: "storage.file", Options: map[string]any{"path": "/v"}},
				},
				// The Chain's storages first, then the originals', for read-back.
				StorageOrder: []string{"archive", "vault"},
				Chains:       map[string]config.Chain{"transcribe": chainEntry([]string{"redact"}, []string{"archive"})},
			},
		},
		{
			name: "an original storage that is missing is an error naming it",
			in: inputs(testChain([]string{"redact"}, nil), []*vconv1.Link{
				moduleLink("redact", RedactModule, `{"original_storages":["vault"]}`),
			}, nil),
			wantErr: `storage "vault" not found`,
		},
		{
			name:    "a missing link is an error naming it",
			in:      inputs(testChain([]string{"tag", "gone"}, nil), []*vconv1.Link{moduleLink("tag", "links.tag", "")}, nil),
			wantErr: `link "gone" not found`,
		},
		{
			name:    "a missing storage is an error naming it",
			in:      inputs(testChain(nil, []string{"pg"}), nil, nil),
			wantErr: `storage "pg" not found`,
		},
		{
			name:    "options that are not an object are refused",
			in:      inputs(testChain([]string{"tag"}, nil), []*vconv1.Link{moduleLink("tag", "links.tag", `[1,2]`)}, nil),
			wantErr: `link "tag": options must be an object`,
		},
		{
			name:    "a link that runs in no way is refused",
			in:      inputs(testChain([]string{"empty"}, nil), []*vconv1.Link{{ObjectMeta: metav1.ObjectMeta{Name: "empty"}}}, nil),
			wantErr: `link "empty": sets none of module, http or container`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Render(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Render error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			// The worker reads the file with the same parser; a nil lookup
			// keeps ${VAR} references as they are.
			got, err := config.Parse(r.Config, nil)
			if err != nil {
				t.Fatalf("rendered config does not parse: %v\n%s", err, r.Config)
			}
			normalize(got)
			normalize(tt.want)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("config:\n got %#v\nwant %#v\n%s", got, tt.want, r.Config)
			}
			if !reflect.DeepEqual(r.Env, tt.wantEnv) && (len(r.Env) != 0 || len(tt.wantEnv) != 0) {
				t.Errorf("env:\n got %+v\nwant %+v", r.Env, tt.wantEnv)
			}
			var names []string
			for _, s := range r.Sidecars {
				names = append(names, s.Name)
				if s.RestartPolicy == nil || *s.RestartPolicy != corev1.ContainerRestartPolicyAlways {
					t.Errorf("sidecar %s: restartPolicy %v, want Always (a native sidecar)", s.Name, s.RestartPolicy)
				}
			}
			if !reflect.DeepEqual(names, tt.sidecars) {
				t.Errorf("sidecars %v, want %v", names, tt.sidecars)
			}
			if len(r.Hash) != 16 {
				t.Errorf("hash %q, want 16 hex digits", r.Hash)
			}
		})
	}
}

// normalize makes empty sections comparable: Parse leaves an absent section
// nil.
func normalize(c *config.Config) {
	if len(c.Links) == 0 {
		c.Links = nil
	}
	if len(c.Storages) == 0 {
		c.Storages = nil
	}
	// Every rendered chain says its retry policy; a want that gives none
	// means the CRD's defaults (TestRenderRetry checks them).
	for name, ch := range c.Chains {
		if ch.Retry == nil {
			ch.Retry = &config.Retry{Attempts: 5, InitialBackoff: 30 * time.Second, MaxBackoff: 10 * time.Minute, Jitter: 0.2}
			c.Chains[name] = ch
		}
		// Every rendered chain says its storage_failure too; a want that
		// gives none means the CRD's default (TestRenderStorageFailure).
		if ch.StorageFailure == "" {
			ch.StorageFailure = config.StorageFailureDeadLetterVcon
			c.Chains[name] = ch
		}
	}
}

// TestRenderStorageFailure: spec.storageFailure reaches the worker's
// config, always written: a file without the key would mean conserver's
// behaviour, which is not the default of a Chain.
func TestRenderStorageFailure(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   vconv1.StorageFailurePolicy
		want string
	}{
		{"not defaulted by the API server", "", config.StorageFailureDeadLetterVcon},
		{"DeadLetterVcon", vconv1.StorageFailureDeadLetterVcon, config.StorageFailureDeadLetterVcon},
		{"DeadLetterStorage", vconv1.StorageFailureDeadLetterStorage, config.StorageFailureDeadLetterStorage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch := &vconv1.Chain{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Spec: vconv1.ChainSpec{IngressLists: []string{"in"}, StorageFailure: tc.in}}
			r, err := Render(Inputs{Chain: ch})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(r.Config), "storage_failure: "+tc.want+"\n") {
				t.Errorf("rendered config lacks storage_failure: %s\n%s", tc.want, r.Config)
			}
			cfg, err := config.Parse(r.Config, nil)
			if err != nil {
				t.Fatalf("rendered config does not parse: %v\n%s", err, r.Config)
			}
			if got := cfg.Chains["c"].StorageFailure; got != tc.want {
				t.Errorf("storage_failure %q, want %q", got, tc.want)
			}
		})
	}
}

// TestRenderRetry: spec.retry and workers.maxDeliveries reach the worker's
// config; what the API server did not default takes the CRD's defaults.
func TestRenderRetry(t *testing.T) {
	tests := []struct {
		name          string
		retry         vconv1.RetryPolicy
		maxDeliveries *int32
		want          config.Retry
		wantMax       int
	}{
		{"defaults", vconv1.RetryPolicy{}, nil, config.Retry{Attempts: 5, InitialBackoff: 30 * time.Second, MaxBackoff: 10 * time.Minute, Jitter: 0.2}, 0},
		{"conserver's dead-letter at once", vconv1.RetryPolicy{Attempts: ptr.To(int32(1))}, ptr.To(int32(7)),
			config.Retry{Attempts: 1, InitialBackoff: 30 * time.Second, MaxBackoff: 10 * time.Minute, Jitter: 0.2}, 7},
		{"every field", vconv1.RetryPolicy{Attempts: ptr.To(int32(12)), InitialBackoff: &metav1.Duration{Duration: time.Second}, MaxBackoff: &metav1.Duration{Duration: time.Hour}, JitterPercent: ptr.To(int32(0))}, ptr.To(int32(1)),
			config.Retry{Attempts: 12, InitialBackoff: time.Second, MaxBackoff: time.Hour, Jitter: 0}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ch := &vconv1.Chain{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Spec: vconv1.ChainSpec{IngressLists: []string{"in"}, Retry: tc.retry}}
			ch.Spec.Workers.MaxDeliveries = tc.maxDeliveries
			r, err := Render(Inputs{Chain: ch})
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Parse(r.Config, nil)
			if err != nil {
				t.Fatalf("rendered config does not parse: %v\n%s", err, r.Config)
			}
			got := cfg.Chains["c"]
			if got.Retry == nil || *got.Retry != tc.want || got.MaxDeliveries != tc.wantMax {
				t.Errorf("retry %+v, max deliveries %d; want %+v, %d\n%s", got.Retry, got.MaxDeliveries, tc.want, tc.wantMax, r.Config)
			}
		})
	}
}

// TestRenderStrictByDefault: a Link written by hand gets strict: true
// on the modules that take it (a jq error or a refusing webhook
// dead-letters), unless it says otherwise; other modules get nothing.
func TestRenderStrictByDefault(t *testing.T) {
	tests := []struct {
		name, module, options string
		want                  any // nil: no strict key rendered
	}{
		{"jq_link without strict", "links.jq_link", `{"filter":".parties | length > 1"}`, true},
		{"jq_link without options", "links.jq_link", "", true},
		{"webhook without strict", "links.webhook", `{"webhook-urls":["https://hooks.example/x"]}`, true},
		{"imported webhook keeps conserver's", "links.webhook", `{"webhook-urls":["https://hooks.example/x"],"strict":false}`, false},
		{"strict as text is the user's", "links.jq_link", `{"strict":"false"}`, "false"},
		{"other modules untouched", "links.tag", `{"tags":["a"]}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Render(inputs(testChain([]string{"step"}, nil), []*vconv1.Link{moduleLink("step", tc.module, tc.options)}, nil))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Parse(r.Config, nil)
			if err != nil {
				t.Fatalf("rendered config does not parse: %v\n%s", err, r.Config)
			}
			got, set := cfg.Links["step"].Options["strict"]
			if tc.want == nil {
				if set {
					t.Fatalf("strict rendered for %s: %v", tc.module, got)
				}
				return
			}
			if got != tc.want {
				t.Fatalf("strict = %#v, want %#v\n%s", got, tc.want, r.Config)
			}
		})
	}
}

// TestRenderKeepsCredentialsOut: the ConfigMap is readable by anyone who
// can read ConfigMaps; Secret values reach the pod only as env vars.
func TestRenderKeepsCredentialsOut(t *testing.T) {
	const password = "s3cr3t-redis-password"
	l := httpLink("classify", "https://classifier.example/v1", vconv1.SecretHeader{Name: "Authorization", ValueFrom: secretKey("classifier", "token")})
	l.Spec.EnvFrom = []corev1.SecretEnvSource{{LocalObjectReference: corev1.LocalObjectReference{Name: "classifier-env"}}}
	s := testStorage("pg", "storage.postgres", `{"dsn":"postgres://app:${PG_PASSWORD}@pg/app"}`)
	s.Spec.Env = []vconv1.SecretEnv{{Name: "PG_PASSWORD", SecretKeyRef: secretKey("pg", "password")}}
	in := inputs(testChain([]string{"classify"}, []string{"pg"}), []*vconv1.Link{l}, []*vconv1.Storage{s})
	// The Redis URL came from a Secret: the operator read it to measure the
	// queues, and must not copy it anywhere.
	in.RedisURL = "redis://:" + password + "@redis:6379/0"
	in.RedisSecret = ptr.To(secretKey("redis", "url"))

	r, err := Render(in)
	if err != nil {
		t.Fatal(err)
	}
	cm := ConfigMap(in.Chain, r)
	dep := Deployment(in, r, 3)
	for what, obj := range map[string]any{"ConfigMap": cm, "Deployment": dep} {
		b, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), password) {
			t.Errorf("the %s holds the Redis password:\n%s", what, b)
		}
	}
	for _, want := range []string{"${VCON_STEP_CLASSIFY_HEADER_AUTHORIZATION}", "${VCON_STORAGE2_PG_PG_PASSWORD}"} {
		if !strings.Contains(cm.Data[ConfigKey], want) {
			t.Errorf("config lacks the reference %s:\n%s", want, cm.Data[ConfigKey])
		}
	}
	worker := dep.Spec.Template.Spec.Containers[0]
	env := map[string]corev1.EnvVar{}
	for _, e := range worker.Env {
		env[e.Name] = e
	}
	for name, ref := range map[string]corev1.SecretKeySelector{
		"REDIS_URL": secretKey("redis", "url"),
		"VCON_STEP_CLASSIFY_HEADER_AUTHORIZATION": secretKey("classifier", "token"),
		"VCON_STORAGE2_PG_PG_PASSWORD":            secretKey("pg", "password"),
	} {
		e, ok := env[name]
		if !ok || e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || *e.ValueFrom.SecretKeyRef != ref {
			t.Errorf("env %s = %+v, want only a reference to Secret %s key %s", name, e, ref.Name, ref.Key)
		}
	}
	if len(worker.EnvFrom) != 1 || worker.EnvFrom[0].SecretRef == nil || worker.EnvFrom[0].SecretRef.Name != "classifier-env" || worker.EnvFrom[0].Prefix != "VCON_LINK8_CLASSIFY_" {
		t.Errorf("envFrom = %+v, want the classifier-env Secret under the link's prefix", worker.EnvFrom)
	}
}

// TestHash: the config-hash annotation rolls the workers exactly when what
// they run with changes.
func TestHash(t *testing.T) {
	base := func() Inputs {
		a := moduleLink("tag", "links.tag", `{"tags":["a"]}`)
		a.Spec.Env = []vconv1.SecretEnv{{Name: "KEY", SecretKeyRef: secretKey("s", "k")}}
		return inputs(testChain([]string{"tag"}, []string{"pg"}), []*vconv1.Link{a}, []*vconv1.Storage{testStorage("pg", "storage.postgres", `{"port":5432}`)})
	}
	tests := []struct {
		name   string
		change func(in *Inputs)
		rolls  bool
	}{
		{"nothing", func(*Inputs) {}, false},
		{"link status", func(in *Inputs) {
			in.Links["tag"].Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Valid"}}
			in.Links["tag"].Generation = 7
		}, false},
		{"chain status and scaling", func(in *Inputs) {
			in.Chain.Status.Replicas = 9
			in.Chain.Spec.Workers.MaxReplicas = 50
			in.Chain.Spec.Workers.TargetQueueDepth = 3
		}, false},
		{"link options", func(in *Inputs) { in.Links["tag"].Spec.Options = rawJSON(`{"tags":["b"]}`) }, true},
		{"storage options", func(in *Inputs) { in.Storages["pg"].Spec.Options = rawJSON(`{"port":5433}`) }, true},
		{"env from another Secret key", func(in *Inputs) { in.Links["tag"].Spec.Env[0].SecretKeyRef.Key = "k2" }, true},
		{"envFrom added", func(in *Inputs) {
			in.Links["tag"].Spec.EnvFrom = []corev1.SecretEnvSource{{LocalObjectReference: corev1.LocalObjectReference{Name: "more"}}}
		}, true},
		{"image", func(in *Inputs) { in.Image = "other:1" }, true},
		{"redis url", func(in *Inputs) { in.RedisURL = "redis://other:6379/0" }, true},
		{"concurrency", func(in *Inputs) { in.Chain.Spec.Workers.Concurrency = 8 }, true},
		{"chain timeout", func(in *Inputs) { in.Chain.Spec.Timeout = &metav1.Duration{Duration: time.Minute} }, true},
		{"ingress lists", func(in *Inputs) { in.Chain.Spec.IngressLists = []string{"other"} }, true},
		{"disabled", func(in *Inputs) { in.Chain.Spec.Enabled = ptr.To(false) }, true},
	}
	want, err := Render(base())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := base()
			tt.change(&in)
			got, err := Render(in)
			if err != nil {
				t.Fatal(err)
			}
			if rolled := got.Hash != want.Hash; rolled != tt.rolls {
				t.Errorf("hash %s -> %s: rolled=%v, want %v", want.Hash, got.Hash, rolled, tt.rolls)
			}
		})
	}

	t.Run("replicas do not change the pod template", func(t *testing.T) {
		in := base()
		r, err := Render(in)
		if err != nil {
			t.Fatal(err)
		}
		one, five := Deployment(in, r, 1), Deployment(in, r, 5)
		if !reflect.DeepEqual(one.Spec.Template, five.Spec.Template) {
			t.Error("the pod template depends on the replica count: every scaling would roll the workers")
		}
		if one.Spec.Template.Annotations[AnnotationConfigHash] != r.Hash {
			t.Errorf("annotation %q, want %q", one.Spec.Template.Annotations[AnnotationConfigHash], r.Hash)
		}
	})
}

// TestRenderFollowers: a Chain's followers reach its worker config under
// names no other Chain shares, with the CRD's defaults, their ingress list
// one of the chain's, and the token only as a reference to its Secret.
func TestRenderFollowers(t *testing.T) {
	ch := testChain([]string{}, nil)
	ch.Spec.IngressLists = []string{"default", "priority"}
	ch.Spec.Followers = []vconv1.ChainFollower{
		{Name: "upstream", URL: "https://upstream.example.com/api", EgressList: "processed"},
		{Name: "eu-west", URL: "http://10.0.0.7:8000", EgressList: "out", IngressList: "priority",
			AuthTokenSecretRef: ptr.To(secretKey("eu", "token")), PullingInterval: &metav1.Duration{Duration: 2500 * time.Millisecond}, FetchVconLimit: ptr.To(int32(50))},
	}
	in := inputs(ch, nil, nil)
	r, err := Render(in)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(r.Config, nil)
	if err != nil {
		t.Fatalf("rendered config does not parse: %v\n%s", err, r.Config)
	}
	want := map[string]config.Follower{
		"calls/transcribe/upstream": {URL: "https://upstream.example.com/api", EgressList: "processed", IngressLists: []string{"default"},
			PullingInterval: time.Minute, FetchVconLimit: 10},
		"calls/transcribe/eu-west": {URL: "http://10.0.0.7:8000", EgressList: "out", IngressLists: []string{"priority"},
			AuthToken: "${VCON_FOLLOWER_EU_WEST_TOKEN}", PullingInterval: 2500 * time.Millisecond, FetchVconLimit: 50},
	}
	if !reflect.DeepEqual(cfg.Followers, want) {
		t.Errorf("followers = %#v\nwant %#v", cfg.Followers, want)
	}
	if err := cfg.Validate(config.Validator{Links: []string{"links.tag"}, Storages: []string{"storage.file"}}); err != nil {
		t.Errorf("the rendered config is refused by the worker's checks: %v", err)
	}
	found := false
	for _, e := range Deployment(in, r, 1).Spec.Template.Spec.Containers[0].Env {
		if e.Name == "VCON_FOLLOWER_EU_WEST_TOKEN" {
			found = e.Value == "" && e.ValueFrom != nil && reflect.DeepEqual(e.ValueFrom.SecretKeyRef, ptr.To(secretKey("eu", "token")))
		}
	}
	if !found {
		t.Error("the worker has no VCON_FOLLOWER_EU_WEST_TOKEN from Secret eu key token")
	}
	before := r.Hash
	ch.Spec.Followers[0].FetchVconLimit = ptr.To(int32(11))
	if r2, _ := Render(in); r2.Hash == before {
		t.Error("a follower edit does not roll the workers")
	}
}
