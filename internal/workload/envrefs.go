package workload

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/config"
)

// The worker resolves ${NAME} in its config from its process environment,
// which holds REDIS_URL and every step's Secrets. A step's options must
// reach only what its own Secret references provide, so the operator gives
// each step its own env var names (StepEnvName) and rewrites the step's
// references to them; a reference to anything else is refused before a
// config is rendered. $${ stays a literal ${: it is copied as written.

// ForbiddenReference is an option that names a variable its step's Secret
// references (env, envFrom) do not provide.
type ForbiddenReference struct {
	Step string // "link webhook", "storage s3"
	Key  string // "options.url"
	Var  string
}

func (e *ForbiddenReference) Error() string {
	return fmt.Sprintf("%s: %s references ${%s}, which is not one of the step's env variables: a step may reference only the names in its own spec.env (or keys of its spec.envFrom Secrets); add %s there from a Secret, or write $${ for a literal ${",
		e.Step, e.Key, e.Var, e.Var)
}

// StepEnvName is the env var carrying a step's variable name in the worker:
// VCON_LINK<n>_<STEP>_<name> (VCON_STORAGE<n>_... for a Storage), n the
// length of the encoded step name. The encoding is one-to-one (a-z to A-Z,
// digits kept, - to _, . to x) and the length makes the prefix unambiguous,
// so no step's name plus variable can spell another step's variable (links
// "openai" with X_TOKEN and "openai-x" with TOKEN differ), nor REDIS_URL or
// any other variable of the worker. StepEnvName(kind, step, "") is the
// prefix, which envFrom Secrets get.
func StepEnvName(kind, step, name string) string {
	enc := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r == '-':
			return '_'
		case r == '.':
			return 'x'
		}
		return r
	}, step)
	return "VCON_" + strings.ToUpper(kind) + strconv.Itoa(len(enc)) + "_" + enc + "_" + name
}

// stepRefs confines one step's ${NAME} references to its own variables.
type stepRefs struct {
	owner string // for errors: "link webhook"
	kind  string // "link" or "storage"
	step  string
	names map[string]bool // spec.env names
	// anyName: the step has envFrom Secrets, whose keys the operator does
	// not read; any name is taken to be one of them, and still resolves
	// only inside the step's prefix.
	anyName bool
}

// rewrite returns s with every reference rewritten to the step's env name.
func (c *stepRefs) rewrite(key, s string) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	segs, closed := config.Segments(s)
	if !closed {
		return "", fmt.Errorf("%s: %s has a ${ not closed by }; write $${ for a literal ${", c.owner, key)
	}
	var b strings.Builder
	for _, seg := range segs {
		if !seg.Ref {
			b.WriteString(seg.Raw) // $${ stays $${: a literal for the worker
			continue
		}
		if !config.ValidVarName(seg.Name) || !(c.names[seg.Name] || c.anyName) {
			return "", &ForbiddenReference{Step: c.owner, Key: key, Var: seg.Name}
		}
		b.WriteString("${" + StepEnvName(c.kind, c.step, seg.Name))
		if seg.HasDefault {
			b.WriteString(":-" + seg.Default)
		}
		b.WriteString("}")
	}
	return b.String(), nil
}

// options rewrites every string inside a decoded options value, in place.
func (c *stepRefs) options(path string, v any) (any, error) {
	switch t := v.(type) {
	case string:
		return c.rewrite(path, t)
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys) // the first refusal reported is always the same
		for _, k := range keys {
			nv, err := c.options(path+"."+k, t[k])
			if err != nil {
				return nil, err
			}
			t[k] = nv
		}
	case []any:
		for i, e := range t {
			nv, err := c.options(fmt.Sprintf("%s[%d]", path, i), e)
			if err != nil {
				return nil, err
			}
			t[i] = nv
		}
	}
	return v, nil
}

// LinkReferences checks a Link's ${NAME} references on their own, as Render
// does for each Chain naming it: a *ForbiddenReference, or nil.
func LinkReferences(l *vconv1.Link) *ForbiddenReference {
	refs := newStepRefs("link", l.Name, l.Spec.Env, l.Spec.EnvFrom)
	_, _, err := linkModule(l, &envSet{byName: map[string]corev1.EnvVar{}}, refs)
	return asForbidden(err)
}

// StorageReferences is LinkReferences for a Storage.
func StorageReferences(s *vconv1.Storage) *ForbiddenReference {
	opts, err := options(s.Spec.Options)
	if err != nil {
		return nil // not a reference problem; the Chain reports it
	}
	_, err = newStepRefs("storage", s.Name, s.Spec.Env, s.Spec.EnvFrom).options("options", opts)
	return asForbidden(err)
}

func asForbidden(err error) *ForbiddenReference {
	var f *ForbiddenReference
	if errors.As(err, &f) {
		return f
	}
	return nil
}
