package links

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

func init() { Register("links.expire_vcon", newExpire) }

// defaultExpireSeconds is the default of the seconds option: a day.
const defaultExpireSeconds = 86400

// expireLink sets a TTL on the vCon body in Redis. The pipeline keeps the TTL
// when it writes the document back, so the expiry survives the chain.
type expireLink struct {
	deps Deps
	ttl  time.Duration
}

func newExpire(_ string, raw map[string]any, deps Deps) (Link, error) {
	seconds, err := options(raw).integer("seconds", defaultExpireSeconds)
	if err != nil {
		return nil, err
	}
	if seconds <= 0 {
		// EXPIRE with 0 or less deletes the key at once: never what a
		// retention setting means.
		return nil, fmt.Errorf("option %q: want a positive number of seconds, got %d", "seconds", seconds)
	}
	if deps.Redis == nil {
		return nil, errors.New("needs a Redis client to set the expiry")
	}
	return &expireLink{deps: deps, ttl: time.Duration(seconds) * time.Second}, nil
}

func (l *expireLink) Run(ctx context.Context, v *vcon.VCon) (Result, error) {
	uuid := v.UUID()
	if uuid == "" {
		return Result{}, errors.New("expire_vcon: vCon has no uuid")
	}
	set, err := l.deps.Redis.Expire(ctx, "vcon:"+uuid, l.ttl).Result()
	if err != nil {
		return Result{}, fmt.Errorf("expire_vcon: EXPIRE vcon:%s: %w", uuid, err)
	}
	if !set {
		l.deps.Logger.WarnContext(ctx, "expire_vcon: vCon body not in Redis, no TTL set", "uuid", uuid)
	}
	return Continue, nil
}
