// Package config reads and writes the conserver configuration file (links,
// storages, chains). The worker runs a conserver file unchanged; the operator
// renders each Chain resource into the same format for a ConfigMap, so one
// type serves both directions.
//
// Values inside options come out of Parse as map[string]any, []any, string,
// bool, int64 (integers), float64 (other numbers and integers beyond int64)
// or nil. Plain yes/no/on/off are booleans, as PyYAML reads them for
// conserver.
package config

import (
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is one conserver configuration file.
type Config struct {
	Links    map[string]Module
	Storages map[string]Module
	// StorageOrder is the names under storages: in the order the file
	// writes them: Parse records it and Marshal keeps it. A body missing
	// from Redis is read back from the storages in this order, as
	// conserver reads its storages: section in file order. Nil is name
	// order (a Config built in Go); StorageNames is the order to use.
	StorageOrder []string
	Chains       map[string]Chain
	// IngressAuth maps an ingress list to the API keys accepted for it by the
	// external ingress endpoint (conserver allows one string or a list).
	IngressAuth map[string][]string
	// Followers pull another conserver's egress into local ingress lists
	// (conserver/follower.py); the worker runs them (internal/follower).
	Followers map[string]Follower
	// Imports are conserver's imports: Python modules it imports (and
	// pip-installs) at start. The worker's modules are compiled in, so an
	// entry is accepted only when it names one of them (Unsupported).
	Imports map[string]Import
	// Tracers are conserver's tracers: modules called around every link.
	// The worker runs none (it exports OpenTelemetry traces instead), so
	// any entry is refused by a worker's Validate (Unsupported).
	Tracers map[string]Module
	// Extra keeps the other top-level keys (any unknown one) so that a
	// round trip loses nothing. The worker does not interpret them.
	Extra map[string]any
}

// Follower is one entry under followers:, with conserver's keys: every
// PullingInterval it pops up to FetchVconLimit uuids from EgressList of the
// conserver API at URL (GET {url}/vcon/egress), fetches each vCon (GET
// {url}/vcon/{uuid}) with AuthToken in the API token header, and queues it
// on IngressLists here.
type Follower struct {
	URL        string
	EgressList string
	// IngressLists is follower_ingress_list: one list name, as conserver
	// takes, or a list of names (ours), each of which gets every vCon.
	IngressLists    []string
	AuthToken       string
	PullingInterval time.Duration
	FetchVconLimit  int
}

// Import is one entry under imports:: a Python module name and the pip
// package conserver installs it from (pip_name, optional). conserver also
// takes a bare module name as the entry.
type Import struct {
	Module  string
	PipName string
}

// Module is one entry under links: or storages:.
type Module struct {
	Module string
	// Options is the YAML value as written, nil when absent or null: that is
	// what conserver hands to its modules, and some tell the two apart.
	Options map[string]any
	// Limits (limits:, ours, links only) bound the calls the link makes to
	// its vendor, for every worker that shares the budget; nil is none.
	Limits *Limits
}

// Limits is a link's limits: entry: {requests_per_minute,
// tokens_per_minute, max_concurrent, budget}. A zero rate or count is no
// limit on that dimension.
type Limits struct {
	RequestsPerMinute int64
	TokensPerMinute   int64
	MaxConcurrent     int64
	// Budget names the budget in Redis that every worker running this
	// link shares; empty is the link's name. The operator sets it to
	// namespace/name, so that same-named Links of two namespaces on one
	// Redis do not share.
	Budget string
}

// Chain is one entry under chains:.
type Chain struct {
	Links        []string
	Storages     []string
	IngressLists []string
	EgressLists  []string
	// Enabled defaults to true when the key is absent. A Chain built in Go
	// must set it: the zero value is a disabled chain.
	Enabled bool
	// Timeout bounds one vCon's run through the chain; 0 means none.
	Timeout time.Duration
	// HasLinksKey records whether the chain had a links: key. conserver
	// dead-letters every vCon of a chain without one, so Validate refuses
	// it; `links: []` (a storage-only chain) sets it.
	HasLinksKey bool
	// MaxDeliveries (max_deliveries, ours) is how many deliveries without
	// an outcome make a vCon a poison pill; 0 takes the worker's default.
	MaxDeliveries int
	// Retry (retry:, ours) is when a failure that may pass runs again
	// later; nil dead-letters at the first failure, as conserver does.
	Retry *Retry
	// StorageFailure (storage_failure, ours) is what a storage write that
	// keeps failing does: StorageFailureDeadLetterVcon or
	// StorageFailureDeadLetterStorage. Empty (the key absent) is
	// conserver's behaviour, as every default of this file is:
	// dead_letter_storage.
	StorageFailure string
}

// Values of a chain's storage_failure.
const (
	// StorageFailureDeadLetterVcon retries the whole vCon as retry: says,
	// then dead-letters it to DLQ:{ingress} before egress.
	StorageFailureDeadLetterVcon = "dead_letter_vcon"
	// StorageFailureDeadLetterStorage puts the uuid on
	// DLQ:storage:{storage} and still pushes egress (conserver since its
	// PR #197).
	StorageFailureDeadLetterStorage = "dead_letter_storage"
)

// DeadLettersStorage is whether a failed storage write dead-letters that
// write alone: storage_failure dead_letter_storage, or the key absent.
func (c Chain) DeadLettersStorage() bool {
	return c.StorageFailure != StorageFailureDeadLetterVcon
}

// Retry is a chain's retry: entry: {attempts, initial_backoff,
// max_backoff, jitter}; backoffs as seconds or durations ("30s"), jitter a
// fraction from 0 to 1.
type Retry struct {
	Attempts       int
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	Jitter         float64
}

var (
	chainKeys    = []string{"links", "storages", "ingress_lists", "egress_lists", "enabled", "timeout", "max_deliveries", "retry", "storage_failure"}
	retryKeys    = []string{"attempts", "initial_backoff", "max_backoff", "jitter"}
	moduleKeys   = []string{"module", "options"}
	limitKeys    = []string{"requests_per_minute", "tokens_per_minute", "max_concurrent", "budget"}
	followerKeys = []string{"url", "egress_list", "follower_ingress_list", "auth_token", "pulling_interval", "fetch_vcon_limit"}
)

// Load reads a configuration file, resolving ${VAR} from the process
// environment.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(data, os.LookupEnv)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse reads a configuration document. String values anywhere may hold
// ${VAR} or ${VAR:-default}, resolved through lookupEnv after the YAML is
// parsed; $${ stands for a literal ${. A nil lookupEnv checks the references
// but leaves them in place, for a Config that is only rendered again (the
// operator must never copy secrets into a ConfigMap). Every problem found is
// reported, each prefixed by its key path. Parse checks shapes and types;
// Validate checks meaning.
func Parse(data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	d := &decoder{lookupEnv: lookupEnv}
	doc := d.value(&root, "")
	c := &Config{}
	switch top := doc.(type) {
	case nil:
	case map[string]any:
		d.config(c, top)
	default:
		d.fail("", "the document must be a map with links, storages and chains")
	}
	if err := errors.Join(d.errs...); err != nil {
		return nil, err
	}
	if len(c.Storages) > 0 {
		c.StorageOrder = c.orderOf(storageKeys(&root))
	}
	return c, nil
}

// StorageNames returns the names of the storages in the file's order
// (StorageOrder), then, in name order, any it does not list.
func (c *Config) StorageNames() []string {
	return c.orderOf(c.StorageOrder)
}

// orderOf returns the storages named in order that exist, once each,
// followed by the others sorted.
func (c *Config) orderOf(order []string) []string {
	out := make([]string, 0, len(c.Storages))
	seen := make(map[string]bool, len(c.Storages))
	for _, name := range order {
		if _, ok := c.Storages[name]; ok && !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	for _, name := range sortedKeys(c.Storages) {
		if !seen[name] {
			out = append(out, name)
		}
	}
	return out
}

// storageKeys returns the keys of the top-level storages: mapping in the
// order the document writes them; the decoded maps have lost it.
func storageKeys(root *yaml.Node) []string {
	doc := root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	if doc.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value != "storages" {
			continue
		}
		m := doc.Content[i+1]
		if m.Kind == yaml.AliasNode && m.Alias != nil {
			m = m.Alias
		}
		if m.Kind != yaml.MappingNode {
			return nil
		}
		keys := make([]string, 0, len(m.Content)/2)
		for j := 0; j+1 < len(m.Content); j += 2 {
			keys = append(keys, m.Content[j].Value)
		}
		return keys
	}
	return nil
}

func (d *decoder) config(c *Config, top map[string]any) {
	for _, key := range sortedKeys(top) {
		v := top[key]
		switch key {
		case "links":
			c.Links = d.modules(v, key)
		case "storages":
			c.Storages = d.modules(v, key)
		case "chains":
			m, ok := d.asMap(v, key)
			if !ok || m == nil {
				continue
			}
			c.Chains = make(map[string]Chain, len(m))
			for _, name := range sortedKeys(m) {
				c.Chains[name] = d.chain(m[name], childPath(key, name))
			}
		case "ingress_auth":
			c.IngressAuth = d.ingressAuth(v, key)
		case "followers":
			c.Followers = d.followers(v, key)
		case "imports":
			c.Imports = d.imports(v, key)
		case "tracers":
			c.Tracers = d.modules(v, key)
		default:
			if c.Extra == nil {
				c.Extra = map[string]any{}
			}
			c.Extra[key] = v
		}
	}
}

// asMap accepts a map or null (an empty section, as `links:` alone reads).
func (d *decoder) asMap(v any, path string) (map[string]any, bool) {
	switch m := v.(type) {
	case nil:
		return nil, true
	case map[string]any:
		return m, true
	}
	d.fail(path, "must be a map, got %s", describe(v))
	return nil, false
}

func (d *decoder) modules(v any, path string) map[string]Module {
	m, ok := d.asMap(v, path)
	if !ok || m == nil {
		return nil
	}
	out := make(map[string]Module, len(m))
	for _, name := range sortedKeys(m) {
		ev := m[name]
		p := childPath(path, name)
		entry, ok := d.asMap(ev, p)
		if !ok {
			continue
		}
		var mod Module
		for _, k := range sortedKeys(entry) {
			kv := entry[k]
			switch k {
			case "module":
				s, ok := kv.(string)
				if !ok && kv != nil {
					d.fail(childPath(p, k), "must be a module name such as links.tag, got %s", describe(kv))
				}
				mod.Module = s
			case "options":
				opts, _ := d.asMap(kv, childPath(p, k))
				mod.Options = opts
			case "limits":
				if path != "links" {
					d.fail(childPath(p, k), "only links take limits: a storage's writes are bounded by its own options")
					continue
				}
				mod.Limits = d.limits(kv, childPath(p, k))
			case "pip_name":
				// conserver pip-installs unknown modules at runtime; ours are
				// compiled in, so the key is accepted and has no effect.
			default:
				keys := strings.Join(moduleKeys, " and ")
				if path == "links" {
					keys = strings.Join(moduleKeys, ", ") + " and limits"
				}
				d.fail(childPath(p, k), "unknown key; an entry takes %s", keys)
			}
		}
		out[name] = mod
	}
	return out
}

func (d *decoder) followers(v any, path string) map[string]Follower {
	m, ok := d.asMap(v, path)
	if !ok || m == nil {
		return nil
	}
	out := make(map[string]Follower, len(m))
	for _, name := range sortedKeys(m) {
		p := childPath(path, name)
		entry, ok := d.asMap(m[name], p)
		if !ok {
			continue
		}
		var f Follower
		text := func(kv any, p string) string {
			s, ok := kv.(string)
			if !ok && kv != nil {
				d.fail(p, "must be a string, got %s", describe(kv))
			}
			return s
		}
		for _, k := range sortedKeys(entry) {
			kv, kp := entry[k], childPath(p, k)
			switch k {
			case "url":
				f.URL = text(kv, kp)
			case "egress_list":
				f.EgressList = text(kv, kp)
			case "follower_ingress_list":
				if s, ok := kv.(string); ok {
					f.IngressLists = []string{s}
				} else {
					f.IngressLists = d.stringList(kv, kp)
				}
			case "auth_token":
				f.AuthToken = text(kv, kp)
			case "pulling_interval":
				t, err := parseTimeout(kv)
				if err != nil {
					d.fail(kp, "%v", err)
				}
				f.PullingInterval = t
			case "fetch_vcon_limit":
				f.FetchVconLimit = d.whole(kv, kp, "vCons per poll, e.g. 10")
			default:
				d.fail(kp, "unknown key; a follower takes %s", strings.Join(followerKeys, ", "))
			}
		}
		out[name] = f
	}
	return out
}

func (d *decoder) imports(v any, path string) map[string]Import {
	m, ok := d.asMap(v, path)
	if !ok || m == nil {
		return nil
	}
	out := make(map[string]Import, len(m))
	for _, name := range sortedKeys(m) {
		p := childPath(path, name)
		switch e := m[name].(type) {
		case string:
			out[name] = Import{Module: e}
		case map[string]any:
			var im Import
			for _, k := range sortedKeys(e) {
				s, ok := e[k].(string)
				if !ok {
					d.fail(childPath(p, k), "must be a string, got %s", describe(e[k]))
				}
				switch k {
				case "module":
					im.Module = s
				case "pip_name":
					im.PipName = s
				default:
					d.fail(childPath(p, k), "unknown key; an import takes module and pip_name")
				}
			}
			out[name] = im
		default:
			d.fail(p, "must be a module name or a map with module and pip_name, got %s", describe(m[name]))
		}
	}
	return out
}

func (d *decoder) chain(v any, path string) Chain {
	ch := Chain{Enabled: true}
	m, ok := d.asMap(v, path)
	if !ok {
		return ch
	}
	for _, k := range sortedKeys(m) {
		kv := m[k]
		p := childPath(path, k)
		switch k {
		case "links":
			if kv == nil {
				d.fail(p, "is empty; list link names, or write links: [] for a chain that only stores")
				continue
			}
			ch.HasLinksKey = true
			ch.Links = d.stringList(kv, p)
		case "storages":
			ch.Storages = d.stringList(kv, p)
		case "ingress_lists":
			ch.IngressLists = d.stringList(kv, p)
		case "egress_lists":
			ch.EgressLists = d.stringList(kv, p)
		case "enabled":
			b, err := parseEnabled(kv)
			if err != nil {
				d.fail(p, "%v", err)
			}
			ch.Enabled = b
		case "timeout":
			t, err := parseTimeout(kv)
			if err != nil {
				d.fail(p, "%v", err)
			}
			ch.Timeout = t
		case "max_deliveries":
			ch.MaxDeliveries = d.whole(kv, p, "deliveries, e.g. 3")
		case "retry":
			ch.Retry = d.retry(kv, p)
		case "storage_failure":
			switch v, _ := kv.(string); v {
			case StorageFailureDeadLetterVcon, StorageFailureDeadLetterStorage:
				ch.StorageFailure = v
			default:
				d.fail(p, "must be %s (retry the vCon, then dead-letter it before egress) or %s (dead-letter the failed write alone to DLQ:storage:{storage}, then egress), got %s", StorageFailureDeadLetterVcon, StorageFailureDeadLetterStorage, describe(kv))
			}
		default:
			d.fail(p, "unknown key; a chain takes %s", strings.Join(chainKeys, ", "))
		}
	}
	return ch
}

// retry reads a chain's retry: map.
func (d *decoder) retry(v any, path string) *Retry {
	if v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		d.fail(path, "must be a map such as {attempts: 5, initial_backoff: 30s, max_backoff: 10m}, got %s", describe(v))
		return nil
	}
	r := &Retry{}
	for _, k := range sortedKeys(m) {
		kv, p := m[k], childPath(path, k)
		switch k {
		case "attempts":
			r.Attempts = d.whole(kv, p, "attempts, the first included, e.g. 5")
		case "initial_backoff", "max_backoff":
			t, err := parseTimeout(kv)
			if err != nil {
				d.fail(p, "%v", err)
			}
			if k == "initial_backoff" {
				r.InitialBackoff = t
			} else {
				r.MaxBackoff = t
			}
		case "jitter":
			f, ok := number(kv)
			if !ok {
				d.fail(p, "must be a fraction from 0 to 1, e.g. 0.2, got %s", describe(kv))
			}
			r.Jitter = f
		default:
			d.fail(p, "unknown key; retry takes %s", strings.Join(retryKeys, ", "))
		}
	}
	return r
}

// limits reads a link's limits: map.
func (d *decoder) limits(v any, path string) *Limits {
	if v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		d.fail(path, "must be a map such as {requests_per_minute: 600, max_concurrent: 20}, got %s", describe(v))
		return nil
	}
	l := &Limits{}
	for _, k := range sortedKeys(m) {
		kv, p := m[k], childPath(path, k)
		var n int
		switch k {
		case "requests_per_minute", "tokens_per_minute", "max_concurrent":
			n = d.whole(kv, p, k)
			if n < 1 {
				d.fail(p, "must be 1 or more; leave it out for no limit")
			}
		}
		switch k {
		case "requests_per_minute":
			l.RequestsPerMinute = int64(n)
		case "tokens_per_minute":
			l.TokensPerMinute = int64(n)
		case "max_concurrent":
			l.MaxConcurrent = int64(n)
		case "budget":
			s, ok := kv.(string)
			if !ok || s == "" {
				d.fail(p, "must be a budget name, got %s", describe(kv))
			}
			l.Budget = s
		default:
			d.fail(p, "unknown key; limits take %s", strings.Join(limitKeys, ", "))
		}
	}
	return l
}

// whole reads an integer the YAML decoder produced (a float without a
// fraction too), or fails path saying it wants a whole number of what.
func (d *decoder) whole(v any, path, what string) int {
	switch x := v.(type) {
	case int64:
		return int(x)
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e9 {
			return int(x)
		}
	}
	d.fail(path, "must be a whole number of %s, got %s", what, describe(v))
	return 0
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

func (d *decoder) stringList(v any, path string) []string {
	if v == nil {
		return nil
	}
	items, ok := v.([]any)
	if !ok {
		d.fail(path, "must be a list of names, got %s", describe(v))
		return nil
	}
	// Empty lists come out nil, so that a parsed Config and one built in Go
	// compare equal.
	var out []string
	for i, it := range items {
		s, ok := it.(string)
		if !ok {
			d.fail(indexPath(path, i), "must be a name, got %s (quote it)", describe(it))
			continue
		}
		out = append(out, s)
	}
	return out
}

func (d *decoder) ingressAuth(v any, path string) map[string][]string {
	m, ok := d.asMap(v, path)
	if !ok || m == nil {
		return nil
	}
	out := make(map[string][]string, len(m))
	for _, list := range sortedKeys(m) {
		kv := m[list]
		p := childPath(path, list)
		switch k := kv.(type) {
		case string:
			out[list] = []string{k}
		case []any:
			out[list] = d.stringList(k, p)
		default:
			d.fail(p, "must be an API key or a list of API keys, got %s", describe(kv))
		}
	}
	return out
}

// parseEnabled takes the forms conserver users write; conserver itself
// never reads the key, so anything unclear is refused rather than guessed.
func parseEnabled(v any) (bool, error) {
	switch x := v.(type) {
	case nil:
		return true, nil
	case bool:
		return x, nil
	case int64:
		switch x {
		case 1:
			return true, nil
		case 0:
			return false, nil
		}
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "true", "1", "yes", "on":
			return true, nil
		case "false", "0", "no", "off":
			return false, nil
		}
	}
	return false, errors.New("must be true or false (or 1/0, yes/no)")
}

// parseTimeout takes seconds as a number (conserver's form) or a duration
// string such as "90s" or "2m".
func parseTimeout(v any) (time.Duration, error) {
	const hint = "must be seconds (e.g. 30 or 1.5) or a duration such as \"90s\""
	var secs float64
	switch x := v.(type) {
	case nil:
		return 0, nil
	case int64:
		if x > math.MaxInt64/int64(time.Second) || x < math.MinInt64/int64(time.Second) {
			return 0, errors.New("is too large")
		}
		return time.Duration(x) * time.Second, nil
	case float64:
		secs = x
	case string:
		s := strings.TrimSpace(x)
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			secs = f
			break
		}
		dur, err := time.ParseDuration(s)
		if err != nil {
			return 0, errors.New(hint)
		}
		return dur, nil
	default:
		return 0, errors.New(hint)
	}
	if math.IsNaN(secs) || math.IsInf(secs, 0) {
		return 0, errors.New(hint)
	}
	ns := math.Round(secs * float64(time.Second))
	if ns >= math.MaxInt64 || ns <= math.MinInt64 {
		return 0, errors.New("is too large")
	}
	return time.Duration(ns), nil
}

func describe(v any) string {
	switch v.(type) {
	case nil:
		return "nothing"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int64, float64:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "a map"
	}
	return fmt.Sprintf("%T", v)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
