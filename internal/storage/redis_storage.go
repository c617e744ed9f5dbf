package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/options"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

func init() { Register("storage.redis_storage", newRedisStorage) }

// defaultRedisExpires is conserver's default for the expires option, in
// seconds: a week.
const defaultRedisExpires = 604800

// redisStorage keeps a copy of each finished vCon as a plain string with its
// own TTL, on the chain's Redis. conserver's redis_url option is ignored there
// too, so configs that set it keep working the same way.
type redisStorage struct {
	client  redis.UniversalClient
	prefix  string
	expires time.Duration
}

func newRedisStorage(_ context.Context, _ string, raw map[string]any, deps Deps) (Storage, error) {
	o := options.New(raw)
	s := &redisStorage{
		client:  deps.Redis,
		prefix:  o.String("prefix", "vcon_storage"),
		expires: time.Duration(o.Int("expires", defaultRedisExpires)) * time.Second,
	}
	if s.expires <= 0 {
		o.Failf("expires", "must be a positive number of seconds, got %d", s.expires/time.Second)
	}
	if err := o.Err(); err != nil {
		return nil, err
	}
	if s.client == nil {
		return nil, errors.New("no Redis client to write to")
	}
	return s, nil
}

func (s *redisStorage) key(uuid string) string { return s.prefix + ":" + uuid }

// AppendSave queues the SET into the pipeline that finishes the vCon.
func (s *redisStorage) AppendSave(pipe redis.Pipeliner, v *vcon.VCon, body []byte) {
	pipe.Set(context.Background(), s.key(v.UUID()), body, s.expires)
}

func (s *redisStorage) Save(ctx context.Context, v *vcon.VCon) error {
	uuid := v.UUID()
	if uuid == "" {
		return Permanent(errors.New("vcon has no uuid"))
	}
	body, err := v.Marshal()
	if err != nil {
		return Permanent(fmt.Errorf("encode vcon %s: %w", uuid, err))
	}
	if err := s.client.Set(ctx, s.key(uuid), body, s.expires).Err(); err != nil {
		return fmt.Errorf("SET %s: %w", s.key(uuid), err)
	}
	return nil
}

func (s *redisStorage) Get(ctx context.Context, uuid string) ([]byte, error) {
	body, err := s.client.Get(ctx, s.key(uuid)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", s.key(uuid), err)
	}
	return body, nil
}

func (s *redisStorage) Delete(ctx context.Context, uuid string) error {
	if err := s.client.Del(ctx, s.key(uuid)).Err(); err != nil {
		return fmt.Errorf("DEL %s: %w", s.key(uuid), err)
	}
	return nil
}
