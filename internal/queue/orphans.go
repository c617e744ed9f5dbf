package queue

import (
	"context"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
)

// A uuid can sit in a live worker's in-flight list without the worker
// knowing it: the reply to a take was lost (the connection dropped after
// Redis ran the move, e.g. a transaction that carried an outcome and the
// next take). Reapers leave a live worker's list alone, so such an orphan
// would wait there until the worker stops. The worker therefore counts what
// it holds, and its sweep returns to the head of the ingress list what has
// been in its in-flight list, unheld, at two sweeps in a row (a take whose
// reply is on its way is held by the next sweep).

// heldKey is an item as held: its list's keys (one pointer per list and
// worker, so the in-flight key is not hashed for every vCon) and uuid.
type heldKey struct {
	keys *listKeys
	uuid string
}

// holdings counts the items a worker took and has not finished.
type holdings struct {
	mu       sync.Mutex
	held     map[heldKey]int
	suspects map[heldKey]int // unheld copies seen at the last sweep
}

func (h *holdings) add(it Item) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.held == nil {
		h.held = map[heldKey]int{}
	}
	h.held[heldKey{it.keys, it.UUID}]++
}

func (h *holdings) remove(it Item) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := heldKey{it.keys, it.UUID}
	if h.held[k] <= 1 {
		delete(h.held, k)
		return
	}
	h.held[k]--
}

// Held is how many items the worker holds: taken and not finished.
func (w *Worker) Held() int {
	w.holdings.mu.Lock()
	defer w.holdings.mu.Unlock()
	n := 0
	for _, c := range w.holdings.held {
		n += c
	}
	return n
}

// Forget tells the worker an item is finished: its outcome is written and
// it left the in-flight list (or was found gone from it).
func (w *Worker) Forget(it Item) { w.holdings.remove(it) }

// returnOrphanScript moves up to ARGV[2] copies of uuid ARGV[1] from the
// in-flight list KEYS[1] to the head of the ingress list KEYS[2], only the
// copies still there.
var returnOrphanScript = redis.NewScript(`
local n = 0
for i = 1, tonumber(ARGV[2]) do
  if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then break end
  redis.call('LPUSH', KEYS[2], ARGV[1])
  n = n + 1
end
return n
`)

// SweepOrphans returns to their ingress lists the uuids that sat in this
// worker's in-flight lists without being held at this sweep and the one
// before, and returns how many it moved. Call it with the heartbeat.
func (w *Worker) SweepOrphans(ctx context.Context, lists []string) (int, error) {
	pipe := w.rdb.Pipeline()
	ranges := make([]*redis.StringSliceCmd, len(lists))
	for i, l := range lists {
		ranges[i] = pipe.LRange(ctx, w.keysFor(l).inFlight, 0, -1)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("sweep in-flight lists: %w", err)
	}

	type orphan struct {
		list string
		key  heldKey
		n    int
	}
	var confirmed []orphan
	h := &w.holdings
	h.mu.Lock()
	suspects := map[heldKey]int{}
	for i, l := range lists {
		keys := w.keysFor(l)
		counts := map[string]int{}
		for _, uuid := range ranges[i].Val() {
			counts[uuid]++
		}
		for uuid, n := range counts {
			k := heldKey{keys, uuid}
			unheld := n - h.held[k]
			if unheld <= 0 {
				continue
			}
			if before := h.suspects[k]; before > 0 {
				confirmed = append(confirmed, orphan{list: l, key: k, n: min(unheld, before)})
			}
			suspects[k] = unheld
		}
	}
	h.suspects = suspects
	h.mu.Unlock()

	moved := 0
	for _, o := range confirmed {
		n, err := returnOrphanScript.Run(ctx, w.rdb, []string{o.key.keys.inFlight, o.list}, o.key.uuid, o.n).Int()
		if err != nil {
			return moved, fmt.Errorf("return orphaned %s to %s: %w", o.key.uuid, o.list, err)
		}
		moved += n
		h.mu.Lock()
		if h.suspects[o.key] -= n; h.suspects[o.key] <= 0 {
			delete(h.suspects, o.key)
		}
		h.mu.Unlock()
	}
	return moved, nil
}
