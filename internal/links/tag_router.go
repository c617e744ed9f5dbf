package links

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/vcon-operator/vcon-operator/internal/options"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

func init() { Register("links.tag_router", newTagRouter) }

// tagRouter copies a vCon's uuid onto extra Redis lists chosen by its tags,
// so other chains pick it up. It returns the lists as Result.Routes.
type tagRouter struct {
	routes          map[string][]string
	forwardOriginal bool
}

func newTagRouter(_ string, raw map[string]any, _ Deps) (Link, error) {
	o := options.New(raw)
	routes := o.Map("tag_routes")
	if routes.Empty() && o.Problems() == 0 {
		o.Failf("tag_routes", "required, a map from tag to Redis list, e.g. {urgent: urgent_vcons}")
	}
	l := &tagRouter{routes: map[string][]string{}}
	// A route is a list name or a list of list names.
	for _, tag := range routes.Keys() {
		lists := routes.Strings(tag)
		if l, isList := routes.Raw(tag).([]any); isList && len(l) == 0 {
			routes.Failf(tag, "no target list")
		}
		for _, name := range lists {
			if strings.TrimSpace(name) == "" {
				routes.Failf(tag, "empty list name")
			}
		}
		l.routes[tag] = lists
	}
	l.forwardOriginal = o.Bool("forward_original", true)
	if err := o.Err(); err != nil {
		return nil, err
	}
	return l, nil
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
	res.Routes = l.targets(vcon.RoutingTags(v))
	return res, nil
}

// targets matches each "name:value" tag against the route keys by its
// name, as conserver does, and by its full text (which conserver never
// matches: a key with a colon routed nothing there), in tag order.
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
