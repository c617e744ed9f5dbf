package links

import (
	"context"
	"fmt"
	"strings"

	"github.com/vcon-operator/vcon-operator/internal/options"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

func init() { Register("links.tag", newTag) }

// tagLink adds fixed tags to the vCon's tags attachment.
type tagLink struct {
	tags []tagPair
}

type tagPair struct{ name, value string }

func newTag(_ string, raw map[string]any, _ Deps) (Link, error) {
	o := options.New(raw)
	items := o.Strings("tags")
	if len(items) == 0 && o.Problems() == 0 {
		o.Failf("tags", `required, a list like ["reviewed", "team:sales"]`)
	}
	l := &tagLink{}
	for i, item := range items {
		p, err := parseTag(item)
		if err != nil {
			o.Failf("tags", "item %d: %v", i, err)
			continue
		}
		l.tags = append(l.tags, p)
	}
	if err := o.Err(); err != nil {
		return nil, err
	}
	return l, nil
}

// parseTag reads "name:value"; a plain "t" stands for "t:t", as conserver
// writes it.
func parseTag(s string) (tagPair, error) {
	s = strings.TrimSpace(s)
	name, value, found := strings.Cut(s, ":")
	if name == "" {
		return tagPair{}, fmt.Errorf("tag %q has no name", s)
	}
	if !found {
		value = name
	}
	return tagPair{name: name, value: value}, nil
}

func (l *tagLink) Run(_ context.Context, v *vcon.VCon) (Result, error) {
	for _, t := range l.tags {
		vcon.AddTag(v, t.name, t.value)
	}
	return Continue, nil
}
