package links

import (
	"context"
	"errors"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/options"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

func init() { Register("links.expire_vcon", newExpire) }

// defaultExpireSeconds is the default of the seconds option: a day.
const defaultExpireSeconds = 86400

// expireLink sets a TTL on the vCon body in Redis, as Result.TTL: the
// pipeline applies it when it writes the document back.
type expireLink struct {
	ttl time.Duration
}

func newExpire(_ string, raw map[string]any, _ Deps) (Link, error) {
	o := options.New(raw)
	seconds := o.Int("seconds", defaultExpireSeconds)
	if seconds <= 0 {
		// EXPIRE with 0 or less deletes the key at once: never what a
		// retention setting means.
		o.Failf("seconds", "want a positive number of seconds, got %d", seconds)
	}
	if err := o.Err(); err != nil {
		return nil, err
	}
	return &expireLink{ttl: time.Duration(seconds) * time.Second}, nil
}

func (l *expireLink) Run(_ context.Context, v *vcon.VCon) (Result, error) {
	if v.UUID() == "" {
		return Result{}, errors.New("expire_vcon: vCon has no uuid")
	}
	// The pipeline sets the TTL when it writes the body, in the outcome:
	// the body exists then (conserver's EXPIRE during the run missed a body
	// that a storage was still to re-cache), and its key is the body
	// store's to name.
	return Result{TTL: l.ttl}, nil
}

// The TTL is the body's, whatever form the body is in.
func (l *expireLink) Accepts(vcon.Form) bool    { return true }
func (l *expireLink) Output() (vcon.Form, bool) { return 0, false }
