package config

import (
	"fmt"
	"slices"
	"strings"
)

// ForChain returns the configuration one chain's workers need: that chain,
// the links and storages it names, and the ingress_auth entries of its
// ingress lists. The other top-level keys (imports, tracers, followers) are
// left out: the worker does not read them. The result shares nothing with c,
// so the caller may change it freely.
func (c *Config) ForChain(name string) (*Config, error) {
	ch, ok := c.Chains[name]
	if !ok {
		names := sortedKeys(c.Chains)
		if len(names) == 0 {
			return nil, fmt.Errorf("chain %q is not defined: the configuration has no chains", name)
		}
		return nil, fmt.Errorf("chain %q is not defined; the chains are: %s", name, strings.Join(names, ", "))
	}
	out := &Config{Chains: map[string]Chain{name: copyChain(ch)}}
	out.Links = pick(c.Links, ch.Links)
	out.Storages = pick(c.Storages, ch.Storages)
	for _, in := range ch.IngressLists {
		if keys, ok := c.IngressAuth[in]; ok {
			if out.IngressAuth == nil {
				out.IngressAuth = map[string][]string{}
			}
			out.IngressAuth[in] = slices.Clone(keys)
		}
	}
	return out, nil
}

func pick(mods map[string]Module, names []string) map[string]Module {
	var out map[string]Module
	for _, n := range names {
		m, ok := mods[n]
		if !ok {
			continue // Validate reports it; ForChain only restricts.
		}
		if out == nil {
			out = map[string]Module{}
		}
		out[n] = Module{Module: m.Module, Options: copyValue(m.Options).(map[string]any)}
	}
	return out
}

func copyChain(ch Chain) Chain {
	ch.Links = slices.Clone(ch.Links)
	ch.Storages = slices.Clone(ch.Storages)
	ch.IngressLists = slices.Clone(ch.IngressLists)
	ch.EgressLists = slices.Clone(ch.EgressLists)
	return ch
}

func copyValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if x == nil {
			return x
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = copyValue(e)
		}
		return out
	case []any:
		if x == nil {
			return x
		}
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = copyValue(e)
		}
		return out
	}
	return v
}
