package workload

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/config"
)

// TestStepReferencesConfined: a step's ${NAME} may reach only what its own
// Secret references provide; REDIS_URL, other steps' variables and the
// worker's own settings are refused, naming the option and the variable.
func TestStepReferencesConfined(t *testing.T) {
	withEnv := func(l *vconv1.Link, names ...string) *vconv1.Link {
		for _, n := range names {
			l.Spec.Env = append(l.Spec.Env, vconv1.SecretEnv{Name: n, SecretKeyRef: secretKey(l.Name, strings.ToLower(n))})
		}
		return l
	}
	tests := []struct {
		name  string
		in    Inputs
		want  ForbiddenReference
		other string // a non-ForbiddenReference error
	}{
		{
			name: "webhook URL reading REDIS_URL",
			in:   inputs(testChain([]string{"hook"}, nil), []*vconv1.Link{moduleLink("hook", "links.webhook", `{"webhook-urls":["https://hook.example/?r=${REDIS_URL}"]}`)}, nil),
			want: ForbiddenReference{Step: "link hook", Key: "options.webhook-urls[0]", Var: "REDIS_URL"},
		},
		{
			name: "a default does not make it allowed",
			in:   inputs(testChain([]string{"hook"}, nil), []*vconv1.Link{moduleLink("hook", "links.webhook", `{"u":"${REDIS_URL:-none}"}`)}, nil),
			want: ForbiddenReference{Step: "link hook", Key: "options.u", Var: "REDIS_URL"},
		},
		{
			name: "another link's variable by its name",
			in: inputs(testChain([]string{"a", "b"}, nil), []*vconv1.Link{
				moduleLink("a", "links.webhook", `{"u":"https://x/?t=${TOKEN}"}`),
				withEnv(moduleLink("b", "links.tag", `{"t":"${TOKEN}"}`), "TOKEN"),
			}, nil),
			want: ForbiddenReference{Step: "link a", Key: "options.u", Var: "TOKEN"},
		},
		{
			name: "another link's variable by its worker name",
			in: inputs(testChain([]string{"a", "b"}, nil), []*vconv1.Link{
				withEnv(moduleLink("a", "links.webhook", `{"u":"${VCON_LINK1_B_TOKEN}"}`), "OWN"),
				withEnv(moduleLink("b", "links.tag", ""), "TOKEN"),
			}, nil),
			want: ForbiddenReference{Step: "link a", Key: "options.u", Var: "VCON_LINK1_B_TOKEN"},
		},
		{
			name: "an http step's URL",
			in:   inputs(testChain([]string{"h"}, nil), []*vconv1.Link{httpLink("h", "https://h.example/${REDIS_URL}")}, nil),
			want: ForbiddenReference{Step: "link h", Key: "http.url", Var: "REDIS_URL"},
		},
		{
			name: "a container step's path",
			in:   inputs(testChain([]string{"c"}, nil), []*vconv1.Link{containerLink("c", "example/c:1", 8080, "/${REDIS_URL}")}, nil),
			want: ForbiddenReference{Step: "link c", Key: "container.path", Var: "REDIS_URL"},
		},
		{
			name: "a storage, deep in its options",
			in:   inputs(testChain(nil, []string{"s3"}), nil, []*vconv1.Storage{testStorage("s3", "storage.s3", `{"a":{"b":["ok","${AWS_SECRET}"]}}`)}),
			want: ForbiddenReference{Step: "storage s3", Key: "options.a.b[1]", Var: "AWS_SECRET"},
		},
		{
			name: "a malformed reference",
			in:   inputs(testChain([]string{"hook"}, nil), []*vconv1.Link{moduleLink("hook", "links.webhook", `{"u":"${1BAD}"}`)}, nil),
			want: ForbiddenReference{Step: "link hook", Key: "options.u", Var: "1BAD"},
		},
		{
			name:  "an unclosed reference",
			in:    inputs(testChain([]string{"hook"}, nil), []*vconv1.Link{moduleLink("hook", "links.webhook", `{"u":"${REDIS_URL"}`)}, nil),
			other: "link hook: options.u has a ${ not closed by }",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Render(tt.in)
			if tt.other != "" {
				if err == nil || !strings.Contains(err.Error(), tt.other) {
					t.Fatalf("Render error %v, want %q", err, tt.other)
				}
				return
			}
			var got *ForbiddenReference
			if !errors.As(err, &got) {
				t.Fatalf("Render error %v, want a ForbiddenReference", err)
			}
			if *got != tt.want {
				t.Errorf("refused %+v, want %+v", *got, tt.want)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.want.Key) || !strings.Contains(msg, "${"+tt.want.Var+"}") {
				t.Errorf("message %q does not name the option and the variable", msg)
			}
		})
	}
}

// TestStepReferencesAtTheWorker renders a Chain and resolves its config as
// the worker does, from an environment built from the Deployment's env:
// each step gets its own Secret's value, $${ stays a literal ${, and a
// step's variable named REDIS_URL does not shadow the worker's.
func TestStepReferencesAtTheWorker(t *testing.T) {
	a := moduleLink("openai", "links.tag", `{"key":"${X_TOKEN}","literal":"$${REDIS_URL}","d":"${MAYBE:-dflt}"}`)
	a.Spec.Env = []vconv1.SecretEnv{
		{Name: "X_TOKEN", SecretKeyRef: secretKey("a", "x-token")},
		{Name: "MAYBE", SecretKeyRef: secretKey("a", "maybe")},
		{Name: "REDIS_URL", SecretKeyRef: secretKey("a", "fake-redis")},
	}
	b := moduleLink("openai-x", "links.tag", `{"key":"${TOKEN}"}`)
	b.Spec.Env = []vconv1.SecretEnv{{Name: "TOKEN", SecretKeyRef: secretKey("b", "token")}}
	c := moduleLink("bulk", "links.tag", `{"key":"${ANY_KEY}"}`)
	c.Spec.EnvFrom = []corev1.SecretEnvSource{{LocalObjectReference: corev1.LocalObjectReference{Name: "bulk"}}}
	in := inputs(testChain([]string{"openai", "openai-x", "bulk"}, nil), []*vconv1.Link{a, b, c}, nil)
	in.RedisURL = "redis://:pw@r:6379/0"

	r, err := Render(in)
	if err != nil {
		t.Fatal(err)
	}
	d := Deployment(in, r, 1)
	worker := d.Spec.Template.Spec.Containers[0]
	// The kubelet's view: each env var holds "secret/key" of its reference;
	// an envFrom Secret "bulk" has one key ANY_KEY; REDIS_URL is the URL.
	env := map[string]string{}
	redisVars := 0
	for _, e := range worker.Env {
		if e.Name == "REDIS_URL" {
			redisVars++
			env[e.Name] = in.RedisURL
			continue
		}
		ref := e.ValueFrom.SecretKeyRef
		env[e.Name] = ref.Name + "/" + ref.Key
	}
	for _, f := range worker.EnvFrom {
		env[f.Prefix+"ANY_KEY"] = f.SecretRef.Name + "/ANY_KEY"
		env["ANY_KEY"] = "outside the prefix"
	}
	if redisVars != 1 {
		t.Errorf("%d REDIS_URL variables: a step's variable shadows the worker's", redisVars)
	}
	got, err := config.Parse(r.Config, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("the worker cannot read the config: %v\n%s", err, r.Config)
	}
	for link, want := range map[string]map[string]any{
		"openai":   {"key": "a/x-token", "literal": "${REDIS_URL}", "d": "a/maybe"},
		"openai-x": {"key": "b/token"},
		"bulk":     {"key": "bulk/ANY_KEY"},
	} {
		for k, v := range want {
			if g := got.Links[link].Options[k]; g != v {
				t.Errorf("link %s option %s = %q, want %q", link, k, g, v)
			}
		}
	}
}

// TestStepEnvNameUnambiguous: no step name plus variable spells another
// step's variable, nor a worker setting.
func TestStepEnvNameUnambiguous(t *testing.T) {
	steps := []string{"a", "a-b", "a.b", "ab", "a-b-c", "openai", "openai-x", "x", "1", "a1", "a-1"}
	vars := []string{"B", "B_C", "C", "X_TOKEN", "TOKEN", "1_TOKEN", "A", "B_X"}
	seen := map[string]string{}
	for _, kind := range []string{"link", "storage"} {
		for _, s := range steps {
			for _, v := range vars {
				n := StepEnvName(kind, s, v)
				if prev, dup := seen[n]; dup {
					t.Errorf("%s %s %s and %s are both %s", kind, s, v, prev, n)
				}
				seen[n] = kind + " " + s + " " + v
				if !config.ValidVarName(n) {
					t.Errorf("%s is not a name the worker reads", n)
				}
				if !strings.HasPrefix(n, "VCON_") {
					t.Errorf("%s is outside VCON_", n)
				}
			}
		}
	}
}
