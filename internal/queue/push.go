package queue

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultContextTTL is conserver's VCON_CONTEXT_EXPIRY default: how long a
// trace-context record waits for the consumer that pops it.
const DefaultContextTTL = 86400 * time.Second

// QueuePush queues on pipe conserver's push of uuids onto list. When ctx
// carries a span, each uuid's trace-context record goes first (RPUSH
// context:{list}:{uuid}, then EXPIRE contextTTL unless it is 0), so that a
// consumer that pops the uuid finds its record; then one RPUSH of the
// uuids, in order.
func QueuePush(ctx context.Context, pipe redis.Pipeliner, list string, contextTTL time.Duration, uuids ...string) {
	if len(uuids) == 0 {
		return
	}
	if record, traced := RecordFrom(ctx); traced {
		for _, u := range uuids {
			key := ContextKey(list, u)
			pipe.RPush(ctx, key, record)
			if contextTTL > 0 {
				pipe.Expire(ctx, key, contextTTL)
			}
		}
	}
	args := make([]any, len(uuids))
	for i, u := range uuids {
		args[i] = u
	}
	pipe.RPush(ctx, list, args...)
}
