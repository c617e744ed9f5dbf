package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultHeartbeatTTL is how long a worker's registration lasts without a
// refresh. Workers refresh it every third of that; after it lapses, the
// worker's in-flight items go back to the ingress list.
const DefaultHeartbeatTTL = 15 * time.Second

// DeadWorkerRetention is how long a worker whose heartbeat expired stays
// registered after its work was returned, so that work it still takes in
// that time (a stalled worker resuming, then killed) is returned by the
// next reap as well.
const DeadWorkerRetention = 5 * time.Minute

// Item is one uuid a worker took from an ingress list.
type Item struct {
	List string // the ingress list it came from
	UUID string
	// keys are the taking worker's keys for List, the in-flight list
	// holding the uuid among them; nil for an item no worker took.
	keys *listKeys
}

// listKeys are a worker's keys for one ingress list, built once per list:
// the hot path names them for every vCon it takes, reads and finishes,
// and building them there was several concatenations (allocations) per
// vCon. A pointer to them also makes the holdings' key cheap to hash.
type listKeys struct {
	inFlight string // InFlightKey(list, worker id)
	state    string // StateKey(list)
	// The list and the keys above as command arguments, boxed once:
	// go-redis's LMOVE, LREM and HMGET boxed each string into an
	// interface (an allocation) for every command.
	listArg, inFlightArg, stateArg any
}

func newListKeys(list, workerID string) *listKeys {
	k := &listKeys{inFlight: InFlightKey(list, workerID), state: StateKey(list)}
	k.listArg, k.inFlightArg, k.stateArg = list, k.inFlight, k.state
	return k
}

// inFlightKey is the in-flight list holding the item ("" for an item no
// worker took, as before).
func (it Item) inFlightKey() string {
	if it.keys == nil {
		return ""
	}
	return it.keys.inFlight
}

// stateKey is StateKey(it.List).
func (it Item) stateKey() string {
	if it.keys == nil {
		return StateKey(it.List)
	}
	return it.keys.state
}

// Worker takes work from ingress lists on behalf of one worker process.
type Worker struct {
	rdb          redis.UniversalClient
	id           string
	heartbeatTTL time.Duration
	holdings     holdings
	// lists holds each list's *listKeys (listKeys): a lookup by the
	// list's name, lock-free once built.
	lists sync.Map
}

// keysFor returns this worker's keys for list, building them the first
// time.
func (w *Worker) keysFor(list string) *listKeys {
	if k, ok := w.lists.Load(list); ok {
		return k.(*listKeys)
	}
	k, _ := w.lists.LoadOrStore(list, newListKeys(list, w.id))
	return k.(*listKeys)
}

// NewWorker returns a Worker with a process-unique id (pod name plus a random
// suffix: a restarted process must not adopt a dead one's in-flight list,
// which the reapers return to the queue instead).
func NewWorker(rdb redis.UniversalClient, id string, heartbeatTTL time.Duration) *Worker {
	if heartbeatTTL <= 0 {
		heartbeatTTL = DefaultHeartbeatTTL
	}
	return &Worker{rdb: rdb, id: id, heartbeatTTL: heartbeatTTL}
}

// ID is the worker's id in the workers sets.
func (w *Worker) ID() string { return w.id }

// HeartbeatTTL is the registration lifetime.
func (w *Worker) HeartbeatTTL() time.Duration { return w.heartbeatTTL }

// Heartbeat registers the worker on every list (or refreshes it). It must
// succeed before the first Take on a list, and run every HeartbeatTTL/3.
// One pipelined round trip (one per node on a cluster).
func (w *Worker) Heartbeat(ctx context.Context, lists []string) error {
	pipe := w.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(lists))
	for i, l := range lists {
		cmds[i] = heartbeatScript.Eval(ctx, pipe, []string{WorkersKey(l), l}, InFlightPrefix(l), w.id, w.heartbeatTTL.Milliseconds())
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}

// Take moves the next uuid of list into this worker's in-flight list,
// blocking up to wait. ok is false when the list stayed empty.
func (w *Worker) Take(ctx context.Context, list string, wait time.Duration) (item Item, ok bool, err error) {
	keys := w.keysFor(list)
	uuid, err := w.rdb.BLMove(ctx, list, keys.inFlight, "LEFT", "RIGHT", wait).Result()
	if errors.Is(err, redis.Nil) {
		return Item{}, false, nil
	}
	if err != nil {
		return Item{}, false, fmt.Errorf("take from %s: %w", list, err)
	}
	it := Item{List: list, UUID: uuid, keys: keys}
	w.holdings.add(it)
	return it, true, nil
}

// TakeUpTo moves up to n uuids of list into this worker's in-flight list
// without blocking, in one round trip (the moves stay in the list's slot
// on a cluster). It returns the items taken, fewer when the list ran out.
func (w *Worker) TakeUpTo(ctx context.Context, list string, n int) ([]Item, error) {
	if n <= 0 {
		return nil, nil
	}
	keys := w.keysFor(list)
	pipe := w.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, n)
	for i := range cmds {
		cmds[i] = pipe.LMove(ctx, list, keys.inFlight, "LEFT", "RIGHT")
	}
	_, err := pipe.Exec(ctx)
	var items []Item
	for _, c := range cmds {
		// Collect what moved even when a later command failed: those
		// uuids are in flight now and must be processed or released.
		if uuid, cerr := c.Result(); cerr == nil {
			it := Item{List: list, UUID: uuid, keys: keys}
			w.holdings.add(it)
			items = append(items, it)
		}
	}
	if err != nil && !errors.Is(err, redis.Nil) {
		return items, fmt.Errorf("take from %s: %w", list, err)
	}
	return items, nil
}

// PendingTake is a take queued in a caller's pipeline or transaction.
type PendingTake struct {
	cmd  *redis.StringCmd
	list string
	keys *listKeys
	w    *Worker
}

// QueueTake queues the move of list's next uuid into this worker's
// in-flight list, so that a vCon's outcome and the take of its successor
// share one round trip (and, inside a MULTI, one transaction). The keys
// share the list's hash slot.
func (w *Worker) QueueTake(pipe redis.Pipeliner, list string) *PendingTake {
	keys := w.keysFor(list)
	// pipe.LMove(ctx, list, keys.inFlight, "LEFT", "RIGHT"), with the
	// keys boxed once.
	cmd := redis.NewStringCmd(context.Background(), "lmove", keys.listArg, keys.inFlightArg, "LEFT", "RIGHT")
	_ = pipe.Process(context.Background(), cmd)
	return &PendingTake{cmd: cmd, list: list, keys: keys, w: w}
}

// Exec runs pipe, in which t is queued, and returns the first error of its
// other commands: an empty list (the take's redis.Nil) is not a failure
// of the round trip.
func (t *PendingTake) Exec(ctx context.Context, pipe redis.Pipeliner) error {
	cmds, err := pipe.Exec(ctx)
	if t == nil || !errors.Is(err, redis.Nil) {
		return err
	}
	for _, c := range cmds {
		if c != redis.Cmder(t.cmd) && c.Err() != nil {
			return c.Err()
		}
	}
	return nil
}

// Item is what the take moved, once its pipeline ran; ok is false when the
// list was empty or the command failed.
func (t *PendingTake) Item() (it Item, ok bool) {
	uuid, err := t.cmd.Result()
	if err != nil {
		return Item{}, false
	}
	it = Item{List: t.list, UUID: uuid, keys: t.keys}
	t.w.holdings.add(it)
	return it, true
}

// QueueDone queues the command that ends an item's life in flight. Put it
// last in the pipeline that writes the item's results, so that a crash
// before it leaves the item to be redelivered, never lost.
func (w *Worker) QueueDone(pipe redis.Pipeliner, it Item) {
	if it.keys == nil {
		pipe.LRem(context.Background(), it.inFlightKey(), 1, it.UUID)
		return
	}
	// pipe.LRem, with the key boxed once.
	_ = pipe.Process(context.Background(), redis.NewIntCmd(context.Background(), "lrem", it.keys.inFlightArg, int64(1), it.UUID))
}

// Done removes an item from flight on its own.
func (w *Worker) Done(ctx context.Context, it Item) error {
	if err := w.rdb.LRem(ctx, it.inFlightKey(), 1, it.UUID).Err(); err != nil {
		return err
	}
	w.Forget(it)
	return nil
}

// Release returns this worker's unfinished items to the head of their
// ingress lists and unregisters it: the last step of a clean shutdown.
func (w *Worker) Release(ctx context.Context, lists []string) (int, error) {
	n, err := evalPerList(ctx, w.rdb, releaseScript, lists, func(l string) ([]string, []any) {
		return []string{WorkersKey(l), l}, []any{InFlightPrefix(l), w.id}
	})
	if err != nil {
		return 0, fmt.Errorf("release in-flight work: %w", err)
	}
	return n, nil
}

// Reap returns the in-flight items of workers whose heartbeat expired to
// the head of their ingress lists, exactly once, and returns how many.
func Reap(ctx context.Context, rdb redis.UniversalClient, lists []string) (int, error) {
	n, err := evalPerList(ctx, rdb, reapScript, lists, func(l string) ([]string, []any) {
		return []string{WorkersKey(l), l, StateKey(l)}, []any{InFlightPrefix(l), DeadWorkerRetention.Milliseconds()}
	})
	if err != nil {
		return 0, fmt.Errorf("reap orphaned work: %w", err)
	}
	return n, nil
}

// evalPerList runs script once per list in one pipeline, with the keys
// and arguments call gives for the list (one slot per list), and returns
// the sum of the integers the runs return.
func evalPerList(ctx context.Context, rdb redis.UniversalClient, script *redis.Script, lists []string, call func(list string) (keys []string, args []any)) (int, error) {
	pipe := rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(lists))
	for i, l := range lists {
		keys, args := call(l)
		cmds[i] = script.Eval(ctx, pipe, keys, args...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, err
	}
	total := 0
	for _, c := range cmds {
		n, _ := c.Int()
		total += n
	}
	return total, nil
}

// IsCluster reports whether commands on different keys may go to different
// nodes, where a pipeline's order across slots is not kept.
func IsCluster(rdb redis.UniversalClient) bool {
	_, ok := rdb.(*redis.ClusterClient)
	return ok
}

// StillInFlight reports whether the item is still in this worker's
// in-flight list. After an outcome round trip failed ambiguously (the
// connection dropped after the server may have run it), an item no longer
// in flight means that round trip was applied and must not be repeated.
func (w *Worker) StillInFlight(ctx context.Context, it Item) (bool, error) {
	_, err := w.rdb.LPos(ctx, it.inFlightKey(), it.UUID, redis.LPosArgs{}).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}
