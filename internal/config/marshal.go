package config

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Marshal renders the configuration as a conserver file: sections in
// conserver's order, map keys sorted (storages in StorageOrder, which
// decides the read-through order), so equal Configs give equal bytes (the
// operator compares ConfigMaps by content). Strings are written as they are:
// a Config parsed with a nil lookupEnv keeps its ${VAR} references, which the
// worker then resolves from its own environment. Parse(Marshal(c)) equals c
// (with StorageOrder filled in) whenever c's strings hold no ${ that Parse
// would read as a reference.
func (c *Config) Marshal() ([]byte, error) {
	root := mappingNode()
	for _, sec := range []struct {
		key   string
		mods  map[string]Module
		order []string
	}{{"links", c.Links, sortedKeys(c.Links)}, {"storages", c.Storages, c.StorageNames()}} {
		if len(sec.mods) == 0 {
			continue
		}
		n, err := modulesNode(sec.key, sec.mods, sec.order)
		if err != nil {
			return nil, fmt.Errorf("marshal config: %w", err)
		}
		addPair(root, sec.key, n)
	}
	if len(c.Chains) > 0 {
		chains := mappingNode()
		for _, name := range sortedKeys(c.Chains) {
			addPair(chains, name, chainNode(c.Chains[name]))
		}
		addPair(root, "chains", chains)
	}
	if len(c.IngressAuth) > 0 {
		auth := mappingNode()
		for _, list := range sortedKeys(c.IngressAuth) {
			addPair(auth, list, stringsNode(c.IngressAuth[list]))
		}
		addPair(root, "ingress_auth", auth)
	}
	if len(c.Imports) > 0 {
		imports := mappingNode()
		for _, name := range sortedKeys(c.Imports) {
			im := c.Imports[name]
			entry := mappingNode()
			addPair(entry, "module", strNode(im.Module))
			if im.PipName != "" {
				addPair(entry, "pip_name", strNode(im.PipName))
			}
			addPair(imports, name, entry)
		}
		addPair(root, "imports", imports)
	}
	if len(c.Tracers) > 0 {
		n, err := modulesNode("tracers", c.Tracers, sortedKeys(c.Tracers))
		if err != nil {
			return nil, fmt.Errorf("marshal config: %w", err)
		}
		addPair(root, "tracers", n)
	}
	if len(c.Followers) > 0 {
		followers := mappingNode()
		for _, name := range sortedKeys(c.Followers) {
			addPair(followers, name, followerNode(c.Followers[name]))
		}
		addPair(root, "followers", followers)
	}
	for _, k := range sortedKeys(c.Extra) {
		switch k {
		case "links", "storages", "chains", "ingress_auth", "imports", "tracers", "followers":
			return nil, fmt.Errorf("marshal config: Extra holds %q, which is a section of its own", k)
		}
		n, err := valueNode(c.Extra[k])
		if err != nil {
			return nil, fmt.Errorf("marshal config: %s: %w", k, err)
		}
		addPair(root, k, n)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if len(root.Content) == 0 {
		return []byte("{}\n"), nil
	}
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	return buf.Bytes(), nil
}

// modulesNode writes mods in order, which names each of them once.
func modulesNode(section string, mods map[string]Module, order []string) (*yaml.Node, error) {
	out := mappingNode()
	for _, name := range order {
		m := mods[name]
		entry := mappingNode()
		addPair(entry, "module", strNode(m.Module))
		if m.Options != nil {
			n, err := valueNode(m.Options)
			if err != nil {
				return nil, fmt.Errorf("%s.%s.options.%w", section, name, err)
			}
			addPair(entry, "options", n)
		}
		if l := m.Limits; l != nil {
			addPair(entry, "limits", limitsNode(*l))
		}
		addPair(out, name, entry)
	}
	return out, nil
}

// followerNode writes conserver's keys; one ingress list is written as the
// plain name conserver reads.
func followerNode(f Follower) *yaml.Node {
	n := mappingNode()
	addPair(n, "url", strNode(f.URL))
	addPair(n, "egress_list", strNode(f.EgressList))
	if len(f.IngressLists) == 1 {
		addPair(n, "follower_ingress_list", strNode(f.IngressLists[0]))
	} else {
		addPair(n, "follower_ingress_list", stringsNode(f.IngressLists))
	}
	if f.AuthToken != "" {
		addPair(n, "auth_token", strNode(f.AuthToken))
	}
	addPair(n, "pulling_interval", secondsNode(f.PullingInterval))
	addPair(n, "fetch_vcon_limit", intNode(int64(f.FetchVconLimit)))
	return n
}

// secondsNode writes whole seconds as a number, as conserver files write
// them; a fraction is written as a Go duration, which parses back exactly.
func secondsNode(d time.Duration) *yaml.Node {
	if d%time.Second != 0 {
		return strNode(d.String())
	}
	return intNode(int64(d / time.Second))
}

func chainNode(ch Chain) *yaml.Node {
	n := mappingNode()
	if ch.HasLinksKey || len(ch.Links) > 0 {
		addPair(n, "links", stringsNode(ch.Links))
	}
	if len(ch.Storages) > 0 {
		addPair(n, "storages", stringsNode(ch.Storages))
	}
	if len(ch.IngressLists) > 0 {
		addPair(n, "ingress_lists", stringsNode(ch.IngressLists))
	}
	if len(ch.EgressLists) > 0 {
		addPair(n, "egress_lists", stringsNode(ch.EgressLists))
	}
	addPair(n, "enabled", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(ch.Enabled)})
	if ch.Timeout != 0 {
		addPair(n, "timeout", secondsNode(ch.Timeout))
	}
	if ch.MaxDeliveries != 0 {
		addPair(n, "max_deliveries", intNode(int64(ch.MaxDeliveries)))
	}
	if r := ch.Retry; r != nil {
		m := mappingNode()
		addPair(m, "attempts", intNode(int64(r.Attempts)))
		if r.InitialBackoff != 0 {
			addPair(m, "initial_backoff", strNode(r.InitialBackoff.String()))
		}
		if r.MaxBackoff != 0 {
			addPair(m, "max_backoff", strNode(r.MaxBackoff.String()))
		}
		if r.Jitter != 0 {
			addPair(m, "jitter", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: strconv.FormatFloat(r.Jitter, 'g', -1, 64)})
		}
		addPair(n, "retry", m)
	}
	if ch.StorageFailure != "" {
		addPair(n, "storage_failure", strNode(ch.StorageFailure))
	}
	return n
}

func limitsNode(l Limits) *yaml.Node {
	n := mappingNode()
	if l.Budget != "" {
		addPair(n, "budget", strNode(l.Budget))
	}
	if l.MaxConcurrent != 0 {
		addPair(n, "max_concurrent", intNode(l.MaxConcurrent))
	}
	if l.RequestsPerMinute != 0 {
		addPair(n, "requests_per_minute", intNode(l.RequestsPerMinute))
	}
	if l.TokensPerMinute != 0 {
		addPair(n, "tokens_per_minute", intNode(l.TokensPerMinute))
	}
	return n
}

func intNode(v int64) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(v, 10)}
}

func mappingNode() *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"} }

func addPair(m *yaml.Node, key string, v *yaml.Node) {
	m.Content = append(m.Content, strNode(key), v)
}

func stringsNode(items []string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	if len(items) == 0 {
		n.Style = yaml.FlowStyle
	}
	for _, s := range items {
		n.Content = append(n.Content, strNode(s))
	}
	return n
}

// strNode lets the encoder choose the quoting, so that strings such as
// "yes", "1" or "null" stay strings when read back.
func strNode(s string) *yaml.Node {
	n := &yaml.Node{}
	_ = n.Encode(s) // encoding a string cannot fail
	return n
}

// valueNode writes option values with sorted keys. Floats always carry a
// decimal point or exponent so that 1.0 does not come back as the integer 1.
func valueNode(v any) (*yaml.Node, error) {
	switch x := v.(type) {
	case map[string]any:
		n := mappingNode()
		for _, k := range sortedKeys(x) {
			c, err := valueNode(x[k])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			addPair(n, k, c)
		}
		return n, nil
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		if len(x) == 0 {
			n.Style = yaml.FlowStyle
		}
		for i, e := range x {
			c, err := valueNode(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			n.Content = append(n.Content, c)
		}
		return n, nil
	case string:
		return strNode(x), nil
	case float64:
		return floatNode(x), nil
	case float32:
		return floatNode(float64(x)), nil
	}
	n := &yaml.Node{}
	if err := n.Encode(v); err != nil {
		return nil, err
	}
	return n, nil
}

func floatNode(f float64) *yaml.Node {
	var s string
	switch {
	case math.IsNaN(f):
		s = ".nan"
	case math.IsInf(f, 1):
		s = ".inf"
	case math.IsInf(f, -1):
		s = "-.inf"
	default:
		s = strconv.FormatFloat(f, 'g', -1, 64)
		if !strings.ContainsAny(s, ".e") {
			s += ".0"
		}
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: s}
}
