// Package links holds the pipeline steps ("links") a chain runs on each vCon,
// under the conserver module names users already configure (links.tag,
// links.jq_link, ...), and the registry that builds them from a config entry.
package links

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/registry"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// Result is what a link decided about a vCon.
type Result struct {
	// Halt stops the chain for this vCon: no further link, no storage, no
	// egress and no dead letter. conserver calls such a vCon "filtered".
	Halt bool
	// NextUUID, when set and different from the current uuid, makes the rest
	// of the chain run on that vCon instead (conserver's "return another
	// uuid"). The pipeline loads it from Redis.
	NextUUID string

	// The effects below are applied by the pipeline in the vCon's outcome,
	// together with the body write and the in-flight removal, never by the
	// link itself: a link that wrote to Redis during Run would repeat its
	// write when a crash before the outcome redelivers the vCon, and would
	// act before the body it refers to is written. A vCon that is
	// dead-lettered applies none of them; a halted one applies them all.

	// Routes are extra lists the uuid of the vCon the link ran on is pushed
	// to, after its body is written and with the trace context egress
	// pushes carry. Each list once per link (a link names it once).
	Routes []string
	// TTL, when positive, is the expiry the body of the vCon the link ran on
	// gets when it is written, replacing the TTL it had. When several links
	// set one for the same vCon, the last link's wins, as each EXPIRE of
	// conserver's links replaced the one before.
	TTL time.Duration

	// Redacted, when set, replaces the vCon for the rest of the chain: a
	// new vCon with a uuid of its own (links.redact builds it). The
	// pipeline writes the vCon the link ran on, the unredacted original,
	// to the link's OriginalStorages only, deletes the original's body
	// from Redis in the outcome, and runs the later links, the chain's
	// storages and egress on Redacted alone, so nothing after the link
	// sees the original. Routes earlier links asked for the original are
	// pushed with Redacted's uuid instead: the only uuid that leaves the
	// chain is the redacted one.
	Redacted *vcon.VCon
}

// OriginalStorer is a link that returns Redacted vCons: the pipeline
// builds the storages it names (from the config's storages) and writes
// the original to them.
type OriginalStorer interface {
	OriginalStorages() []string
}

// Continue is the result of a link that lets the vCon go on unchanged in identity.
var Continue = Result{}

// Halted is the result of a link that filtered the vCon out.
var Halted = Result{Halt: true}

// Link is one configured step. Run may change v in place; the pipeline writes
// the document back once the chain is done. An error dead-letters the vCon
// with the error's text as the reason, so errors must say what failed
// without quoting vCon content or secrets.
type Link interface {
	Run(ctx context.Context, v *vcon.VCon) (Result, error)
}

// Deps are the shared clients a link may use. Links must not keep global
// state: everything they need comes from here or from their options.
type Deps struct {
	// Redis is the chain's Redis (conserver's links talk to the same one).
	Redis redis.UniversalClient
	// HTTP is the client for outbound calls; tests point it at local servers.
	HTTP *http.Client
	// Logger never receives vCon content or secrets.
	Logger *slog.Logger
	// Chain is the chain the link is built for (a link is built once per
	// chain that uses it); metrics are labelled with it.
	Chain string
	// Metrics is where links that call vendors register their counters
	// (vcon_llm_*); New makes it prometheus.DefaultRegisterer when nil.
	// Many links share one registerer: the counters are registered once.
	Metrics prometheus.Registerer
}

// Factory builds a link from its options (the YAML value as written, nil when
// absent). It reads them with internal/options and returns every bad key in
// one error, so that a broken config is refused at load time, never at the
// first vCon.
type Factory func(name string, options map[string]any, deps Deps) (Link, error)

var modules = registry.New[Factory]("link")

// Register adds a module. It is called from init functions of this package.
func Register(module string, f Factory) { modules.Register(module, f) }

// Known returns the registered module names, sorted.
func Known() []string { return modules.Known() }

// New builds the link named name from its module and options.
func New(name, module string, options map[string]any, deps Deps) (Link, error) {
	f, err := modules.Lookup(name, module)
	if err != nil {
		return nil, err
	}
	shared := registry.Shared{Logger: deps.Logger, HTTP: deps.HTTP}.WithDefaults()
	deps.Logger, deps.HTTP = shared.Logger, shared.HTTP
	if deps.Metrics == nil {
		deps.Metrics = prometheus.DefaultRegisterer
	}
	l, err := f(name, options, deps)
	if err != nil {
		return nil, fmt.Errorf("link %q (%s): %w", name, module, err)
	}
	return l, nil
}
