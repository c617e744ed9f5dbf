package config

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxNodes bounds how many YAML nodes one document may expand to, so that a
// few nested aliases ("billion laughs") cannot exhaust the worker's memory.
const maxNodes = 1_000_000

// decoder turns a YAML node tree into plain Go values (map[string]any,
// []any, string, bool, int64, float64, nil) and expands ${VAR} references in
// string scalars. Expansion happens on parsed scalars, never on the text, so
// a variable whose value holds a quote or a newline cannot change the YAML
// structure.
type decoder struct {
	// lookupEnv is nil when references are only checked, not expanded.
	lookupEnv func(string) (string, bool)
	errs      []error
	nodes     int
}

func (d *decoder) fail(path, format string, args ...any) {
	d.errs = append(d.errs, fmt.Errorf("%s: %s", displayPath(path), fmt.Sprintf(format, args...)))
}

func displayPath(path string) string {
	if path == "" {
		return "(document)"
	}
	return path
}

func childPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func indexPath(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

func (d *decoder) value(n *yaml.Node, path string) any {
	d.nodes++
	if d.nodes > maxNodes {
		if d.nodes == maxNodes+1 {
			d.fail(path, "the document expands to more than %d nodes (aliases nested too deeply?)", maxNodes)
		}
		return nil
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil
		}
		return d.value(n.Content[0], path)
	case yaml.AliasNode:
		return d.value(n.Alias, path)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for i, c := range n.Content {
			out = append(out, d.value(c, indexPath(path, i)))
		}
		return out
	case yaml.MappingNode:
		return d.mapping(n, path)
	case yaml.ScalarNode:
		return d.scalar(n, path)
	}
	d.fail(path, "unsupported YAML node")
	return nil
}

func (d *decoder) mapping(n *yaml.Node, path string) map[string]any {
	out := make(map[string]any, len(n.Content)/2)
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.fail(path, "line %d: a key must be a plain value, not a list or map", k.Line)
			continue
		}
		if _, dup := out[k.Value]; dup {
			// PyYAML keeps the last one silently; a repeated key is almost
			// always an editing mistake that would drop half a definition.
			d.fail(childPath(path, k.Value), "the key appears twice (line %d); keep one", k.Line)
			continue
		}
		out[k.Value] = d.value(v, childPath(path, k.Value))
	}
	// Keys written in the mapping itself win over merged ones, and earlier
	// merge sources over later ones, as YAML's merge key specifies.
	for _, m := range merges {
		for m.Kind == yaml.AliasNode {
			m = m.Alias
		}
		sources := []*yaml.Node{m}
		if m.Kind == yaml.SequenceNode {
			sources = m.Content
		}
		for _, s := range sources {
			for s.Kind == yaml.AliasNode {
				s = s.Alias
			}
			if s.Kind != yaml.MappingNode {
				d.fail(path, "line %d: a merge key (<<) must refer to a map", s.Line)
				continue
			}
			for k, v := range d.mapping(s, path) {
				if _, set := out[k]; !set {
					out[k] = v
				}
			}
		}
	}
	return out
}

func (d *decoder) scalar(n *yaml.Node, path string) any {
	quoted := n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0
	switch n.ShortTag() {
	case "!!null":
		return nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			d.fail(path, "not a boolean")
		}
		return b
	case "!!int":
		var i int64
		if err := n.Decode(&i); err == nil {
			return i
		}
		// Beyond int64 the value can only be kept approximately.
		var f float64
		if err := n.Decode(&f); err != nil {
			d.fail(path, "not a number")
		}
		return f
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			d.fail(path, "not a number")
		}
		return f
	case "!!str":
		if !quoted {
			// conserver reads its file with PyYAML (YAML 1.1), where plain
			// yes/no/on/off are booleans; read them the same way so that a
			// conserver file means the same thing here.
			if b, ok := yaml11Bool(n.Value); ok {
				return b
			}
		}
		return d.expand(n.Value, path)
	}
	// Timestamps, binary and custom tags are kept as the text written: the
	// modules that read options expect strings, and the text round-trips.
	return d.expand(n.Value, path)
}

func yaml11Bool(s string) (bool, bool) {
	switch s {
	case "yes", "Yes", "YES", "on", "On", "ON":
		return true, true
	case "no", "No", "NO", "off", "Off", "OFF":
		return false, true
	}
	return false, false
}

// expand resolves ${VAR} and ${VAR:-default} (default used when VAR is unset
// or empty, as in the shell) and turns $${ into a literal ${. With a nil
// lookupEnv it only checks the references and returns s unchanged, which is
// how the operator keeps references for the worker to resolve from its own
// environment. Errors never quote s: it may hold a secret.
func (d *decoder) expand(s, path string) string {
	if !strings.Contains(s, "${") {
		return s
	}
	segs, closed := Segments(s)
	if !closed {
		d.fail(path, "a ${ is not closed by }; write $${ for a literal ${")
		return s
	}
	var b strings.Builder
	for _, seg := range segs {
		if !seg.Ref {
			b.WriteString(seg.Text)
			continue
		}
		if !ValidVarName(seg.Name) {
			d.fail(path, "malformed ${...} reference: a variable name is letters, digits and _, not starting with a digit; write $${ for a literal ${")
			return s
		}
		if d.lookupEnv == nil {
			continue
		}
		val, set := d.lookupEnv(seg.Name)
		switch {
		case set && (val != "" || !seg.HasDefault):
			b.WriteString(val)
		case seg.HasDefault:
			b.WriteString(seg.Default)
		default:
			d.fail(path, "environment variable %s is not set (set it, or write ${%s:-default})", seg.Name, seg.Name)
		}
	}
	if d.lookupEnv == nil {
		return s
	}
	return b.String()
}

// ValidVarName reports whether s can be a ${NAME}: letters, digits and _,
// not starting with a digit.
func ValidVarName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
