package workload

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/config"
	"github.com/vcon-operator/vcon-operator/internal/modules"
)

// HTTPStepModule is the worker module that calls step services (Link http
// and container steps) with the contract in docs/steps.md.
const HTTPStepModule = "links.http_step"

// Inputs is everything a Chain's workload is built from.
type Inputs struct {
	Chain    *vconv1.Chain
	Links    map[string]*vconv1.Link    // by name, every link the chain names
	Storages map[string]*vconv1.Storage // by name, every storage the chain names
	// RedisURL is the URL the Chain's workers use. RedisSecret is the
	// Chain's own Secret holding it; when nil the operator projects RedisURL
	// into RedisSecret(chain) and the workers reference that. Either way the
	// URL reaches the pods only through a Secret.
	RedisURL    string
	RedisSecret *corev1.SecretKeySelector
	// Image is the worker image (the chain's override, else the operator's).
	Image string
	// QueuedRetention is the least TTL workers keep on the bodies they take
	// and push on (VCON_QUEUED_RETENTION); 0 leaves the worker's default.
	QueuedRetention time.Duration
	// PodDefaults place the pods of a Chain that sets no placement of its
	// own.
	PodDefaults PodDefaults
}

// Rendered is the conserver config of a Chain and what its pods need
// beside it. Credentials are never in Config: options say ${NAME}, and Env
// brings NAME from a Secret.
type Rendered struct {
	Config   []byte
	Env      []corev1.EnvVar
	EnvFrom  []corev1.EnvFromSource
	Sidecars []corev1.Container
	// Hash covers everything that must roll the workers when it changes.
	Hash string
}

// LimitBudget names the Redis budget of a Link's limits: one per Link,
// shared by every Chain that uses it (and not by a same-named Link of
// another namespace).
func LimitBudget(l *vconv1.Link) string { return l.Namespace + "/" + l.Name }

// Render builds the conserver config for the chain. It fails when a link or
// storage is missing, or two steps want one env var from different places.
func Render(in Inputs) (*Rendered, error) {
	ch := in.Chain
	cfg := &config.Config{Links: map[string]config.Module{}, Storages: map[string]config.Module{}, Chains: map[string]config.Chain{}}
	env := envSet{byName: map[string]corev1.EnvVar{}}
	r := &Rendered{}

	for _, name := range ch.Spec.Links {
		l, ok := in.Links[name]
		if !ok {
			return nil, fmt.Errorf("link %q not found", name)
		}
		if _, done := cfg.Links[name]; done {
			continue
		}
		refs := newStepRefs("link", name, l.Spec.Env, l.Spec.EnvFrom)
		mod, sidecar, err := linkModule(l, &env, refs)
		if err != nil {
			var forbidden *ForbiddenReference
			if errors.As(err, &forbidden) {
				return nil, err
			}
			return nil, fmt.Errorf("link %q: %w", name, err)
		}
		if lim := l.Spec.Limits; lim != nil {
			mod.Limits = &config.Limits{
				RequestsPerMinute: lim.RequestsPerMinute, TokensPerMinute: lim.TokensPerMinute, MaxConcurrent: lim.MaxConcurrent,
				Budget: LimitBudget(l),
			}
		}
		cfg.Links[name] = mod
		if sidecar != nil {
			r.Sidecars = append(r.Sidecars, *sidecar)
		}
		if err := env.addSecrets(refs, l.Spec.Env); err != nil {
			return nil, err
		}
		r.EnvFrom = append(r.EnvFrom, secretEnvFrom(refs, l.Spec.EnvFrom)...)
	}
	// The chain's storages, then the Storages its links keep unredacted
	// originals in (links.redact): those are defined in the config for the
	// link, and are not chain storages, which get the redacted copy.
	storageNames := append(slices.Clone(ch.Spec.Storages), OriginalStorages(ch, in.Links)...)
	for _, name := range storageNames {
		if _, done := cfg.Storages[name]; done {
			continue
		}
		s, ok := in.Storages[name]
		if !ok {
			return nil, fmt.Errorf("storage %q not found", name)
		}
		opts, err := options(s.Spec.Options)
		if err != nil {
			return nil, fmt.Errorf("storage %q: %w", name, err)
		}
		refs := newStepRefs("storage", name, s.Spec.Env, s.Spec.EnvFrom)
		if _, err := refs.options("options", opts); err != nil {
			return nil, err
		}
		if _, done := cfg.Storages[name]; !done {
			// The file's order is the read-through order: the Chain's.
			cfg.StorageOrder = append(cfg.StorageOrder, name)
		}
		cfg.Storages[name] = config.Module{Module: s.Spec.Module, Options: opts}
		if err := env.addSecrets(refs, s.Spec.Env); err != nil {
			return nil, err
		}
		r.EnvFrom = append(r.EnvFrom, secretEnvFrom(refs, s.Spec.EnvFrom)...)
	}
	var timeout time.Duration
	if ch.Spec.Timeout != nil {
		timeout = ch.Spec.Timeout.Duration
	}
	cfg.Chains[ch.Name] = config.Chain{
		Links:          append([]string{}, ch.Spec.Links...),
		Storages:       append([]string{}, ch.Spec.Storages...),
		IngressLists:   append([]string{}, ch.Spec.IngressLists...),
		EgressLists:    append([]string{}, ch.Spec.EgressLists...),
		Enabled:        ch.IsEnabled(),
		Timeout:        timeout,
		HasLinksKey:    true,
		Retry:          retryConfig(ch.Spec.Retry),
		StorageFailure: storageFailureConfig(ch),
	}
	if d := ch.Spec.Workers.MaxDeliveries; d != nil {
		c := cfg.Chains[ch.Name]
		c.MaxDeliveries = int(*d)
		cfg.Chains[ch.Name] = c
	}
	if err := renderFollowers(cfg, ch, &env); err != nil {
		return nil, err
	}
	data, err := cfg.Marshal()
	if err != nil {
		return nil, fmt.Errorf("render config: %w", err)
	}
	r.Config = data
	r.Env = env.sorted()

	// Hash what the pods run with: config, env wiring, sidecars, Redis and
	// image. The replica count is deliberately not part of it.
	h := sha256.New()
	h.Write(data)
	for _, part := range []any{r.Env, r.EnvFrom, r.Sidecars, in.RedisURL, in.RedisSecret, in.Image, ch.Spec.Workers.Resources, ch.Spec.Workers.Concurrency, ch.Spec.Timeout, ch.Spec.Workers.Volumes} {
		b, _ := json.Marshal(part)
		h.Write(b)
	}
	r.Hash = hex.EncodeToString(h.Sum(nil))[:16]
	return r, nil
}

// Follower defaults, the CRD's, for a Chain built in Go and never stored.
const (
	defaultPullingInterval = 60 * time.Second
	defaultFetchVconLimit  = 10
)

// renderFollowers writes a Chain's followers into its config. Each is
// named namespace/chain/name: the worker keys its lease and pending list
// in Redis by that name, and Chains sharing a Redis must not share them.
// The token reaches the pods only through the env, from its Secret.
func renderFollowers(cfg *config.Config, ch *vconv1.Chain, env *envSet) error {
	for _, f := range ch.Spec.Followers {
		rendered := config.Follower{
			URL: f.URL, EgressList: f.EgressList, IngressLists: []string{f.IngressList},
			PullingInterval: defaultPullingInterval, FetchVconLimit: defaultFetchVconLimit,
		}
		if f.IngressList == "" && len(ch.Spec.IngressLists) > 0 {
			rendered.IngressLists = []string{ch.Spec.IngressLists[0]}
		}
		if f.PullingInterval != nil {
			rendered.PullingInterval = f.PullingInterval.Duration
		}
		if f.FetchVconLimit != nil {
			rendered.FetchVconLimit = int(*f.FetchVconLimit)
		}
		if ref := f.AuthTokenSecretRef; ref != nil {
			name := FollowerTokenEnvName(f.Name)
			if err := env.add("follower "+f.Name, corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: ref.DeepCopy()}}); err != nil {
				return err
			}
			rendered.AuthToken = "${" + name + "}"
		}
		if cfg.Followers == nil {
			cfg.Followers = map[string]config.Follower{}
		}
		cfg.Followers[FollowerName(ch, f.Name)] = rendered
	}
	return nil
}

// FollowerName is the name a Chain's follower runs under in the worker:
// its metrics' follower label and its Redis keys.
func FollowerName(ch *vconv1.Chain, follower string) string {
	if ch.Namespace == "" {
		return ch.Name + "/" + follower
	}
	return ch.Namespace + "/" + ch.Name + "/" + follower
}

// FollowerTokenEnvName is the env var carrying a follower's API token.
func FollowerTokenEnvName(follower string) string {
	return "VCON_FOLLOWER_" + envWord(follower) + "_TOKEN"
}

// linkModule renders one Link as a config module, with the sidecar a
// container step needs.
func linkModule(l *vconv1.Link, env *envSet, refs *stepRefs) (config.Module, *corev1.Container, error) {
	switch {
	case l.Spec.Module != "":
		opts, err := options(l.Spec.Options)
		if err != nil {
			return config.Module{}, nil, err
		}
		if _, err := refs.options("options", opts); err != nil {
			return config.Module{}, nil, err
		}
		if _, set := opts[modules.StrictOption]; modules.TakesStrict(l.Spec.Module) && !set {
			// A Link written for this operator gets our behaviour: a jq
			// program that raises, a webhook that refuses, dead-letters
			// the vCon where it can be seen and replayed. The module's
			// own default is conserver's, for conserver configs run as
			// they are; kubectl vcon import writes strict: false.
			if opts == nil {
				opts = map[string]any{}
			}
			opts[modules.StrictOption] = true
		}
		return config.Module{Module: l.Spec.Module, Options: opts}, nil, nil
	case l.Spec.HTTP != nil:
		// The worker expands ${...} in every option, the URL included.
		url, err := refs.rewrite("http.url", l.Spec.HTTP.URL)
		if err != nil {
			return config.Module{}, nil, err
		}
		opts := map[string]any{"url": url}
		if l.Spec.HTTP.Timeout != nil {
			opts["timeout"] = l.Spec.HTTP.Timeout.Duration.String()
		}
		if len(l.Spec.HTTP.Headers) > 0 {
			headers := map[string]any{}
			for _, hd := range l.Spec.HTTP.Headers {
				name := headerEnvName(l.Name, hd.Name)
				if err := env.add("link "+l.Name, corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: hd.ValueFrom.DeepCopy()}}); err != nil {
					return config.Module{}, nil, err
				}
				headers[hd.Name] = "${" + name + "}"
			}
			opts["headers"] = headers
		}
		return config.Module{Module: HTTPStepModule, Options: opts}, nil, nil
	case l.Spec.Container != nil:
		c := l.Spec.Container
		path, err := refs.rewrite("container.path", c.Path)
		if err != nil {
			return config.Module{}, nil, err
		}
		if path == "" {
			path = "/"
		}
		opts := map[string]any{"url": fmt.Sprintf("http://127.0.0.1:%d%s", c.Port, path)}
		if c.Timeout != nil {
			opts["timeout"] = c.Timeout.Duration.String()
		}
		return config.Module{Module: HTTPStepModule, Options: opts}, stepSidecar(l), nil
	}
	return config.Module{}, nil, fmt.Errorf("sets none of module, http or container")
}

// options decodes a CRD options object into the plain values the config
// writer takes: integers as int64, other numbers as float64.
// RedactModule is the worker module whose original_storages option names
// the Storages that receive unredacted originals (docs/compliance.md).
const RedactModule = "links.redact"

// OriginalStorages are the Storages the Chain's links.redact Links name in
// original_storages, sorted, without those the Chain names itself (the
// worker refuses those: the chain's storages get the redacted copy). The
// resolver fetches them and Render puts them in the config beside the
// chain's.
func OriginalStorages(ch *vconv1.Chain, links map[string]*vconv1.Link) []string {
	var out []string
	for _, name := range ch.Spec.Links {
		l, ok := links[name]
		if !ok {
			continue
		}
		for _, s := range LinkOriginalStorages(l) {
			if !slices.Contains(ch.Spec.Storages, s) && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	slices.Sort(out)
	return out
}

// LinkOriginalStorages are the Storages a links.redact Link names in
// original_storages; none for another module. Options that do not read as
// a list of names give none: the worker reports them when it builds the
// link.
func LinkOriginalStorages(l *vconv1.Link) []string {
	if l.Spec.Module != RedactModule {
		return nil
	}
	opts, err := options(l.Spec.Options)
	if err != nil {
		return nil
	}
	items, _ := opts["original_storages"].([]any)
	var out []string
	for _, it := range items {
		if s, ok := it.(string); ok && s != "" {
			out = append(out, s)
		}
	}
	return out
}

func options(raw *apiextensionsv1.JSON) (map[string]any, error) {
	if raw == nil || len(raw.Raw) == 0 || string(raw.Raw) == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw.Raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("options: %w", err)
	}
	m, ok := plain(v).(map[string]any)
	if !ok {
		return nil, fmt.Errorf("options must be an object")
	}
	return m, nil
}

func plain(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = plain(e)
		}
		return t
	case []any:
		for i, e := range t {
			t[i] = plain(e)
		}
		return t
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, _ := t.Float64()
		return f
	}
	return v
}

// headerEnvName is the env var carrying one header value of an http step.
func headerEnvName(link, header string) string {
	return "VCON_STEP_" + envWord(link) + "_HEADER_" + envWord(header)
}

// envWord is s as part of an env var name: upper case, anything but a
// letter or digit as _.
func envWord(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' {
			return r - 'a' + 'A'
		}
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			return r
		}
		return '_'
	}, s)
}

// secretEnvFrom gives a step's envFrom Secrets the step's prefix: a key
// named REDIS_URL (or another step's variable) cannot shadow the worker's.
func secretEnvFrom(refs *stepRefs, srcs []corev1.SecretEnvSource) []corev1.EnvFromSource {
	out := make([]corev1.EnvFromSource, 0, len(srcs))
	for _, s := range srcs {
		out = append(out, corev1.EnvFromSource{Prefix: StepEnvName(refs.kind, refs.step, ""), SecretRef: s.DeepCopy()})
	}
	return out
}

func newStepRefs(kind, step string, env []vconv1.SecretEnv, envFrom []corev1.SecretEnvSource) *stepRefs {
	names := make(map[string]bool, len(env))
	for _, e := range env {
		names[e.Name] = true
	}
	return &stepRefs{owner: kind + " " + step, kind: kind, step: step, names: names, anyName: len(envFrom) > 0}
}

// envSet collects env vars from several steps, refusing one name bound to
// two different sources (which one would win is not something to guess).
type envSet struct {
	byName map[string]corev1.EnvVar
	owner  map[string]string
}

func (e *envSet) add(owner string, v corev1.EnvVar) error {
	if e.owner == nil {
		e.owner = map[string]string{}
	}
	if prev, ok := e.byName[v.Name]; ok {
		a, _ := json.Marshal(prev)
		b, _ := json.Marshal(v)
		if !bytes.Equal(a, b) {
			return fmt.Errorf("env var %s is set by %s and %s from different secrets", v.Name, e.owner[v.Name], owner)
		}
		return nil
	}
	e.byName[v.Name] = v
	e.owner[v.Name] = owner
	return nil
}

// addSecrets adds a step's spec.env under the step's own names.
func (e *envSet) addSecrets(refs *stepRefs, vars []vconv1.SecretEnv) error {
	for _, s := range vars {
		name := StepEnvName(refs.kind, refs.step, s.Name)
		if err := e.add(refs.owner, corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: s.SecretKeyRef.DeepCopy()}}); err != nil {
			return err
		}
	}
	return nil
}

func (e *envSet) sorted() []corev1.EnvVar {
	names := make([]string, 0, len(e.byName))
	for n := range e.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]corev1.EnvVar, 0, len(names))
	for _, n := range names {
		out = append(out, e.byName[n])
	}
	return out
}

// storageFailureConfig is a Chain's spec.storageFailure in the worker's
// config, always written: a file without the key means conserver's
// behaviour, which is not a Chain's default.
func storageFailureConfig(ch *vconv1.Chain) string {
	if ch.DeadLettersStorage() {
		return config.StorageFailureDeadLetterStorage
	}
	return config.StorageFailureDeadLetterVcon
}

// retryConfig is a Chain's spec.retry in the worker's config, with the
// CRD's defaults for what the API server did not fill in (a Chain built
// in Go and never stored).
func retryConfig(r vconv1.RetryPolicy) *config.Retry {
	out := &config.Retry{Attempts: 5, InitialBackoff: 30 * time.Second, MaxBackoff: 10 * time.Minute, Jitter: 0.2}
	if r.Attempts != nil {
		out.Attempts = int(*r.Attempts)
	}
	if r.InitialBackoff != nil {
		out.InitialBackoff = r.InitialBackoff.Duration
	}
	if r.MaxBackoff != nil {
		out.MaxBackoff = r.MaxBackoff.Duration
	}
	if r.JitterPercent != nil {
		out.Jitter = float64(*r.JitterPercent) / 100
	}
	return out
}
