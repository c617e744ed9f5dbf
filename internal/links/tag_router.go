package links

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

func init() { Register("links.tag_router", newTagRouter) }

// tagRouter copies a vCon's uuid onto extra Redis lists chosen by its tags,
// so other chains pick it up. It returns the lists as Result.Routes.
type tagRouter struct {
	deps            Deps
	routes          map[string][]string
	forwardOriginal bool
}

func newTagRouter(_ string, raw map[string]any, deps Deps) (Link, error) {
	o := options(raw)
	routes, err := o.mapping("tag_routes")
	if err != nil {
		return nil, err
	}
	if len(routes) == 0 {
		return nil, errors.New(`option "tag_routes": required, a map from tag to Redis list, e.g. {urgent: urgent_vcons}`)
	}
	l := &tagRouter{deps: deps, routes: map[string][]string{}}
	for _, tag := range sortedKeys(routes) {
		lists, err := options{tag: routes[tag]}.routeTargets(tag)
		if err != nil {
			return nil, fmt.Errorf("option %q: %w", "tag_routes", err)
		}
		l.routes[tag] = lists
	}
	if l.forwardOriginal, err = o.boolean("forward_original", true); err != nil {
		return nil, err
	}
	if deps.Redis == nil {
		return nil, errors.New("needs a Redis client to push routed uuids")
	}
	return l, nil
}

// routeTargets reads one route: a list name or a list of list names.
func (o options) routeTargets(tag string) ([]string, error) {
	var lists []string
	if s, ok := o[tag].(string); ok {
		lists = []string{s}
	} else {
		var err error
		if lists, err = o.strings(tag); err != nil {
			return nil, err
		}
	}
	if len(lists) == 0 {
		return nil, fmt.Errorf("route %q: no target list", tag)
	}
	for _, l := range lists {
		if strings.TrimSpace(l) == "" {
			return nil, fmt.Errorf("route %q: empty list name", tag)
		}
	}
	return lists, nil
}

func (l *tagRouter) Run(_ context.Context, v *vcon.VCon) (Result, error) {
	if v.UUID() == "" {
		return Result{}, errors.New("tag_router: vCon has no uuid")
	}
	// The pipeline pushes the routes in the vCon's outcome, after its body
	// is written: a downstream chain reads the routed body, and a crash
	// before the outcome pushes nothing twice. Each list is named once even
	// when several tags route to it, so no chain processes the uuid twice.
	res := Continue
	if !l.forwardOriginal {
		res = Halted
	}
	res.Routes = l.targets(vcon.Tags(v))
	return res, nil
}

// targets matches each "name:value" tag against the route keys by its full
// text and by its name (conserver matches the name only), in tag order.
func (l *tagRouter) targets(tags []string) []string {
	var out []string
	for _, tag := range tags {
		name, _, _ := strings.Cut(tag, ":")
		for _, key := range []string{tag, name} {
			for _, list := range l.routes[key] {
				if !slices.Contains(out, list) {
					out = append(out, list)
				}
			}
		}
	}
	return out
}
