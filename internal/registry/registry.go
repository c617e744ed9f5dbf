// Package registry holds the modules a conserver configuration can name
// (links.*, storage.*): one table per kind, filled by init functions, so
// that an unknown name is refused with the list of known ones.
package registry

import (
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
)

// Registry maps module names to their factories of type F.
type Registry[F any] struct {
	kind    string // "link", "storage": the word errors use
	modules map[string]F
}

// New returns an empty registry for modules of kind.
func New[F any](kind string) *Registry[F] {
	return &Registry[F]{kind: kind, modules: map[string]F{}}
}

// Register adds a module. Registering a name twice is a programming error.
func (r *Registry[F]) Register(module string, f F) {
	if _, dup := r.modules[module]; dup {
		panic(fmt.Sprintf("%s module registered twice: %s", r.kind, module))
	}
	r.modules[module] = f
}

// Known returns the registered module names, sorted.
func (r *Registry[F]) Known() []string {
	out := make([]string, 0, len(r.modules))
	for m := range r.modules {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// Lookup returns the factory of module, or an error for the step named name
// that lists the known modules.
func (r *Registry[F]) Lookup(name, module string) (F, error) {
	f, ok := r.modules[module]
	if !ok {
		return f, fmt.Errorf("%s %q: unknown module %q (known: %s)", r.kind, name, module, strings.Join(r.Known(), ", "))
	}
	return f, nil
}

// Shared are the clients every kind of module gets, defaulted in one place:
// a logger (which never receives vCon content or secrets) and the HTTP
// client for outbound calls (tests point it at local servers).
type Shared struct {
	Logger *slog.Logger
	HTTP   *http.Client
}

// WithDefaults fills what the caller left nil.
func (s Shared) WithDefaults() Shared {
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.HTTP == nil {
		s.HTTP = http.DefaultClient
	}
	return s
}
