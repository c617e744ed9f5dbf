// Package storage holds the places a chain writes finished vCons to
// (storage.postgres, storage.file, ...) under conserver's module names, and
// the registry that builds them from a config entry.
package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/httpx"
	"github.com/vcon-operator/vcon-operator/internal/registry"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// ErrNotFound is returned by Get when the storage has no such vCon.
var ErrNotFound = errors.New("storage: vcon not found")

// Storage saves finished vCons. Save must be idempotent: at-least-once
// delivery means the same vCon can be saved twice, and a second save must
// not create a second record.
type Storage interface {
	Save(ctx context.Context, v *vcon.VCon) error
}

// Getter is implemented by storages that can read a vCon back, for
// read-through when Redis has expired the body.
type Getter interface {
	Get(ctx context.Context, uuid string) ([]byte, error)
}

// Deleter is implemented by storages that can delete a vCon (API DELETE
// and erasure). Deleting a vCon that is not there succeeds.
type Deleter interface {
	Delete(ctx context.Context, uuid string) error
}

// PartySearcher is implemented by storages that can find the vCons a party
// took part in, for erasure by party: field is "tel" or "mailto", value
// matched exactly against the parties' field, as the API's party index
// matches it. It returns uuids.
type PartySearcher interface {
	SearchParty(ctx context.Context, field, value string) ([]string, error)
}

// Closer is implemented by storages that hold connections.
type Closer interface {
	Close() error
}

// Deps are the shared clients a storage may use.
type Deps struct {
	Redis  redis.UniversalClient
	HTTP   *http.Client
	Logger *slog.Logger
}

// Factory builds a storage from its options (nil when absent). It reads them
// with internal/options, returning every bad key in one error, and may
// connect; it must not block for
// long when the backend is down (Save reports that, and is retried).
type Factory func(ctx context.Context, name string, options map[string]any, deps Deps) (Storage, error)

var modules = registry.New[Factory]("storage")

// Register adds a module. It is called from init functions of this package.
func Register(module string, f Factory) { modules.Register(module, f) }

// Known returns the registered module names, sorted.
func Known() []string { return modules.Known() }

// New builds the storage named name from its module and options.
func New(ctx context.Context, name, module string, options map[string]any, deps Deps) (Storage, error) {
	f, err := modules.Lookup(name, module)
	if err != nil {
		return nil, err
	}
	shared := registry.Shared{Logger: deps.Logger, HTTP: deps.HTTP}.WithDefaults()
	deps.Logger, deps.HTTP = shared.Logger, shared.HTTP
	s, err := f(ctx, name, options, deps)
	if err != nil {
		return nil, fmt.Errorf("storage %q (%s): %w", name, module, err)
	}
	return s, nil
}

// Pipelined is implemented by storages whose write is itself a Redis command
// on the chain's Redis (storage.redis_storage). The pipeline queues that
// command into the round trip that finishes the vCon instead of calling
// Save, so such a storage costs no extra round trip. AppendSave must only
// queue commands; errors surface from the pipeline's Exec.
type Pipelined interface {
	AppendSave(pipe redis.Pipeliner, v *vcon.VCon, body []byte)
}

// permanentError marks a write that fails the same way however often it is
// tried (a document over a size limit, a refused schema): retrying it only
// delays the dead letter and hides the reason.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying; nil stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked by
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// permanentStatus reports whether an HTTP answer will be the same when the
// request is sent again: a 4xx says the request itself is refused, except
// 408 (the server gave up waiting for it) and 429 (too many requests),
// which ask to be tried again.
func permanentStatus(code int) bool {
	return code >= 400 && code < 500 && !httpx.RetryableStatus(code)
}

// egressShape is the document a storage writes: the 0.0.1 shape when
// EGRESS_FORMAT_VERSION says so (read at each write, as conserver's
// to_configured_legacy reads it), else the document as it is. The result
// is for reading (vcon.ToVersion001 shares what it does not change).
func egressShape(v *vcon.VCon) *vcon.VCon {
	if os.Getenv("EGRESS_FORMAT_VERSION") == vcon.Version001 {
		return vcon.ToVersion001(v)
	}
	return v
}
