package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// KeepWindow is a stretch of an ingress list whose bodies to keep alive:
// Count uuids from Start (0 is the head).
type KeepWindow struct {
	List         string
	Start, Count int64
}

// KeepQueuedBodies extends the bodies of the uuids in each window to at
// least ttl (PEXPIRE ... GT: a longer TTL or none stays), in two pipelined
// round trips however many windows: the LRANGEs, then the PEXPIREs. It
// returns how many uuids it read from each window, so that the caller can
// move on (a short window means the list ended).
//
// It is what keeps a backlog's bodies alive whoever wrote them: a producer
// that gives its bodies an hour and a backlog of a day would otherwise
// lose them before a worker takes them. The keys are the bodies' own,
// never a list's, so on a cluster the commands go to every node at once;
// the extension is idempotent, so that costs nothing in correctness.
func KeepQueuedBodies(ctx context.Context, rdb redis.UniversalClient, windows []KeepWindow, ttl time.Duration, bodyKey func(uuid string) string) ([]int, error) {
	if len(windows) == 0 {
		return nil, nil
	}
	read := rdb.Pipeline()
	ranges := make([]*redis.StringSliceCmd, len(windows))
	for i, w := range windows {
		ranges[i] = read.LRange(ctx, w.List, w.Start, w.Start+w.Count-1)
	}
	if _, err := read.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read queued uuids: %w", err)
	}
	counts := make([]int, len(windows))
	extend := rdb.Pipeline()
	for i, r := range ranges {
		uuids := r.Val()
		counts[i] = len(uuids)
		for _, u := range uuids {
			extend.Do(ctx, "PEXPIRE", bodyKey(u), max(ttl.Milliseconds(), 1), "GT")
		}
	}
	if extend.Len() == 0 {
		return counts, nil
	}
	// A server without PEXPIRE GT (before Redis 7.0) answers each with an
	// error; the keeper then does nothing, as before it existed.
	_, _ = extend.Exec(ctx)
	return counts, nil
}
