package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// State is what the queue remembers of one uuid on one ingress list between
// its deliveries (StateKey). The zero State is a vCon seen for the first
// time, and costs nothing to keep: no field is written for it.
type State struct {
	// Deliveries counts the deliveries that ended without an outcome: the
	// worker that held the vCon died or lost its heartbeat, and a reaper
	// returned it. A clean shutdown's release does not count.
	Deliveries int
	// Attempts are the failed attempts of a vCon waiting for, or back from,
	// a delayed retry, oldest first.
	Attempts []Attempt
	// Completed names the links the vCon has completed, in chain order:
	// their results are in its body, and the next run resumes after them.
	Completed []string
	// Effects are what those links asked the vCon's outcome to do (routes,
	// a body TTL), encoded by the pipeline: effects apply only with an
	// outcome, so a run that resumes after the links applies theirs.
	Effects []byte
}

// Empty says whether the state has no field in Redis.
func (s State) Empty() bool {
	return s.Deliveries == 0 && len(s.Attempts) == 0 && len(s.Completed) == 0 && len(s.Effects) == 0
}

// Attempt is one failed attempt of a vCon.
type Attempt struct {
	Reason string    `json:"reason"`
	Step   string    `json:"step,omitempty"`
	At     time.Time `json:"at"`
}

// stateFields are the uuid's fields of its state hash, cut from one
// string: one allocation instead of four for every vCon read.
func stateFields(uuid string) (deliveries, attempts, completed, effects string) {
	n := 2 + len(uuid)
	all := "d:" + uuid + "a:" + uuid + "r:" + uuid + "e:" + uuid
	return all[:n], all[n : 2*n], all[2*n : 3*n], all[3*n:]
}

// PendingState is a state read queued in a caller's pipeline.
type PendingState struct{ cmd *redis.SliceCmd }

// QueueReadState queues the read of a uuid's state into pipe (one HMGET in
// the ingress list's slot), so that it rides in the round trip that reads
// the vCon's body.
func QueueReadState(ctx context.Context, pipe redis.Pipeliner, ingress, uuid string) *PendingState {
	d, a, r, e := stateFields(uuid)
	return &PendingState{cmd: pipe.HMGet(ctx, StateKey(ingress), d, a, r, e)}
}

// QueueReadItemState is QueueReadState of a taken item, without building
// its state key again: the worker that took it keeps its list's keys.
func QueueReadItemState(ctx context.Context, pipe redis.Pipeliner, it Item) *PendingState {
	d, a, r, e := stateFields(it.UUID)
	if it.keys == nil {
		return &PendingState{cmd: pipe.HMGet(ctx, it.stateKey(), d, a, r, e)}
	}
	// pipe.HMGet, with the key boxed once.
	cmd := redis.NewSliceCmd(ctx, "hmget", it.keys.stateArg, d, a, r, e)
	_ = pipe.Process(ctx, cmd)
	return &PendingState{cmd: cmd}
}

// Cmd is the queued command, for callers that check a pipeline's replies.
func (p *PendingState) Cmd() redis.Cmder { return p.cmd }

// Result decodes the state once the pipeline ran. A field that does not
// decode (written by hand) is an error naming it; the caller decides
// whether to go on without it.
func (p *PendingState) Result() (State, error) {
	vals, err := p.cmd.Result()
	if err != nil {
		return State{}, err
	}
	var st State
	var errs []error
	if s, ok := vals[0].(string); ok {
		n, err := strconv.Atoi(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("deliveries %q: %w", s, err))
		}
		st.Deliveries = n
	}
	if s, ok := vals[1].(string); ok {
		if err := json.Unmarshal([]byte(s), &st.Attempts); err != nil {
			errs = append(errs, fmt.Errorf("attempts: %w", err))
		}
	}
	if s, ok := vals[2].(string); ok {
		if err := json.Unmarshal([]byte(s), &st.Completed); err != nil {
			errs = append(errs, fmt.Errorf("completed links: %w", err))
		}
	}
	if len(vals) > 3 {
		if s, ok := vals[3].(string); ok {
			st.Effects = []byte(s)
		}
	}
	return st, errors.Join(errs...)
}

// QueueClearState queues the removal of every state field of the item: its
// outcome is written and nothing about it needs remembering.
func QueueClearState(pipe redis.Pipeliner, it Item) {
	d, a, r, e := stateFields(it.UUID)
	pipe.HDel(context.Background(), it.stateKey(), d, a, r, e)
}

// QueueKeepProgress queues the commands that keep what a failed vCon has
// done for its next run: the links it completed (where a replay resumes)
// with the effects they asked for, and its attempts. The delivery count
// starts over: the vCon reached an outcome. Fields that are empty are
// removed.
func QueueKeepProgress(pipe redis.Pipeliner, it Item, attempts []Attempt, completed []string, effects []byte) {
	ctx := context.Background()
	d, a, r, e := stateFields(it.UUID)
	key := it.stateKey()
	var set []any
	var del = []string{d}
	if len(attempts) > 0 {
		b, _ := json.Marshal(attempts)
		set = append(set, a, string(b))
	} else {
		del = append(del, a)
	}
	if len(completed) > 0 {
		b, _ := json.Marshal(completed)
		set = append(set, r, string(b))
	} else {
		del = append(del, r)
	}
	if len(completed) > 0 && len(effects) > 0 {
		set = append(set, e, string(effects))
	} else {
		del = append(del, e)
	}
	if len(set) > 0 {
		pipe.HSet(ctx, key, set...)
	}
	pipe.HDel(ctx, key, del...)
}

// QueueScheduleRetry queues the commands that put a failed item in its
// list's retry set, due at due (Redis time), with its progress kept. All
// keys share the ingress list's slot, so with QueueDone in the same
// pipeline the move from flight to the retry set is one step.
func QueueScheduleRetry(pipe redis.Pipeliner, it Item, due time.Time, attempts []Attempt, completed []string, effects []byte) {
	QueueKeepProgress(pipe, it, attempts, completed, effects)
	pipe.ZAdd(context.Background(), RetryKey(it.List), redis.Z{Score: float64(due.UnixMilli()), Member: it.UUID})
}

// PromoteDue moves the retries that are due to the head of their ingress
// lists, in one pipelined round trip, and returns how many moved. Workers
// call it on a short tick; the operator's measurement does the same, so a
// retry comes due even while its chain runs no worker.
func PromoteDue(ctx context.Context, rdb redis.UniversalClient, lists []string) (int, error) {
	n, err := evalPerList(ctx, rdb, promoteScript, lists, func(l string) ([]string, []any) {
		return []string{RetryKey(l), l}, []any{promoteBatch}
	})
	if err != nil {
		return 0, fmt.Errorf("promote due retries: %w", err)
	}
	return n, nil
}

// RetryWaiting is one vCon waiting for a delayed retry.
type RetryWaiting struct {
	UUID string
	Due  time.Time
}

// Retries returns up to limit vCons waiting on an ingress list, the
// soonest due first.
func Retries(ctx context.Context, rdb redis.UniversalClient, ingress string, limit int) ([]RetryWaiting, error) {
	zs, err := rdb.ZRangeWithScores(ctx, RetryKey(ingress), 0, int64(limit)-1).Result()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", RetryKey(ingress), err)
	}
	out := make([]RetryWaiting, len(zs))
	for i, z := range zs {
		out[i] = RetryWaiting{UUID: fmt.Sprint(z.Member), Due: time.UnixMilli(int64(z.Score)).UTC()}
	}
	return out, nil
}

// Isolate records that this worker runs the suspect it alone (a vCon that
// was in flight when a worker died), with nothing else running: if the
// worker dies now, the reaper blames only it. Without this, the vCons that
// happened to share a worker with a poison pill would have their
// deliveries counted with it, and be dead-lettered with it.
func (w *Worker) Isolate(ctx context.Context, it Item) error {
	return w.rdb.HSet(ctx, it.stateKey(), "q:"+w.id, it.UUID).Err()
}

// EndIsolation clears Isolate's record once the suspect's run is over.
func (w *Worker) EndIsolation(ctx context.Context, it Item) error {
	return w.rdb.HDel(ctx, it.stateKey(), "q:"+w.id).Err()
}
