package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// DLQReason is what is recorded beside a dead-lettered uuid.
type DLQReason struct {
	Reason string    `json:"reason"`
	Chain  string    `json:"chain,omitempty"`
	Step   string    `json:"step,omitempty"`
	At     time.Time `json:"at"`
	// Completed names the links the vCon completed before it failed:
	// their results are in its body, and a replay resumes after them.
	Completed []string `json:"completed_links,omitempty"`
	// Attempts are the earlier failed attempts, when delayed retries ran
	// out (the last one is Reason).
	Attempts []Attempt `json:"attempts,omitempty"`
}

// RecordedAt is At for an omitempty wire field: nil when no time was
// recorded.
func (r DLQReason) RecordedAt() *time.Time {
	if r.At.IsZero() {
		return nil
	}
	at := r.At
	return &at
}

// DeadLetter is one uuid of DLQ:{ingress} with the reason recorded beside
// it. Recorded is false when there is none (a uuid dead-lettered by
// conserver itself, or a reason that does not decode).
type DeadLetter struct {
	UUID     string
	Reason   DLQReason
	Recorded bool
}

// dlqBatch bounds one HMGET of recorded reasons.
const dlqBatch = 1000

// QueueDeadLetter queues the commands that put an item on DLQ:{ingress} and
// record its reason. On a cluster these keys live in other slots than the
// in-flight list: send them in a round trip before QueueDone's.
func QueueDeadLetter(pipe redis.Pipeliner, it Item, reason DLQReason) {
	ctx := context.Background()
	b, _ := json.Marshal(reason)
	pipe.RPush(ctx, DLQKey(it.List), it.UUID)
	pipe.HSet(ctx, DLQReasonsKey(it.List), it.UUID, b)
}

// QueueStorageDeadLetter queues the commands that put uuid on the DLQ of
// a storage whose write failed, DLQ:storage:{name}, and record why. The
// commit sends them with the vCon's egress pushes, in one step.
func QueueStorageDeadLetter(pipe redis.Pipeliner, storage, uuid string, reason DLQReason) {
	QueueDeadLetter(pipe, Item{List: StorageDLQList(storage), UUID: uuid}, reason)
}

// DeadLettered returns the uuids in DLQ:{ingress}, oldest first: the bare
// list conserver's tools read.
func DeadLettered(ctx context.Context, rdb redis.UniversalClient, ingress string) ([]string, error) {
	uuids, err := rdb.LRange(ctx, DLQKey(ingress), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", DLQKey(ingress), err)
	}
	return uuids, nil
}

// ListDLQ returns DLQ:{ingress} in queue order with the recorded reasons, in
// two round trips however long the list: its LRANGE, then one pipeline of
// an HMGET per dlqBatch uuids.
func ListDLQ(ctx context.Context, rdb redis.UniversalClient, ingress string) ([]DeadLetter, error) {
	uuids, err := DeadLettered(ctx, rdb, ingress)
	if err != nil {
		return nil, err
	}
	out := make([]DeadLetter, len(uuids))
	for i, u := range uuids {
		out[i].UUID = u
	}
	if len(uuids) == 0 {
		return out, nil
	}
	pipe := rdb.Pipeline()
	var batches []*redis.SliceCmd
	for start := 0; start < len(uuids); start += dlqBatch {
		batches = append(batches, pipe.HMGet(ctx, DLQReasonsKey(ingress), uuids[start:min(start+dlqBatch, len(uuids))]...))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read the reasons recorded for %s: %w", DLQKey(ingress), err)
	}
	for b, cmd := range batches {
		for i, v := range cmd.Val() {
			d := &out[b*dlqBatch+i]
			d.Reason, d.Recorded = decodeReason(v)
		}
	}
	return out, nil
}

// Reasons returns the recorded reasons of dead-lettered uuids (missing ones
// are absent from the map).
func Reasons(ctx context.Context, rdb redis.UniversalClient, ingress string, uuids []string) (map[string]DLQReason, error) {
	out := make(map[string]DLQReason, len(uuids))
	if len(uuids) == 0 {
		return out, nil
	}
	vals, err := rdb.HMGet(ctx, DLQReasonsKey(ingress), uuids...).Result()
	if err != nil {
		return nil, err
	}
	for i, v := range vals {
		if r, ok := decodeReason(v); ok {
			out[uuids[i]] = r
		}
	}
	return out, nil
}

// decodeReason reads one HMGET value: nil for a uuid with no record.
func decodeReason(v any) (DLQReason, bool) {
	s, ok := v.(string)
	if !ok {
		return DLQReason{}, false
	}
	var r DLQReason
	if json.Unmarshal([]byte(s), &r) != nil {
		return DLQReason{}, false
	}
	return r, true
}

// replayLua forgets what a replayed uuid's last run left in the state hash:
// its attempts and delivery count always (a replay starts a new retry
// budget), and the links it completed, with their effects, when fromStart
// is "1".
const replayLua = `
local function forget(state, uuid, fromStart)
  redis.call('HDEL', state, 'd:' .. uuid, 'a:' .. uuid)
  if fromStart == '1' then
    redis.call('HDEL', state, 'r:' .. uuid, 'e:' .. uuid)
  end
end
`

// replayScript moves up to ARGV[1] uuids from the head of DLQ:{ingress}
// (KEYS[1]) to the tail of the ingress list (KEYS[2]), drops each one's
// reason from KEYS[3] and its state from KEYS[4] (ARGV[2] is fromStart),
// and returns how many moved: one batch, atomically.
var replayScript = redis.NewScript(replayLua + `
local n = 0
for i = 1, tonumber(ARGV[1]) do
  local uuid = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
  if not uuid then break end
  redis.call('HDEL', KEYS[3], uuid)
  forget(KEYS[4], uuid, ARGV[2])
  n = n + 1
end
return n
`)

// forgetScript is replayLua alone, for the replay across slots: KEYS[1] the
// state hash, ARGV[1] the uuid, ARGV[2] fromStart.
var forgetScript = redis.NewScript(replayLua + `
forget(KEYS[1], ARGV[1], ARGV[2])
return 1
`)

// Replay moves up to count uuids from DLQ:{ingress} back to the tail of the
// ingress list (conserver's reprocess: LPOP DLQ, RPUSH ingress) and drops
// their recorded reasons. Each replayed vCon resumes after the links it
// completed (their results are in its body), unless fromStart: then every
// link runs again. It returns how many moved.
//
// Where the three keys share a slot (always, but on a cluster whose ingress
// name carries no hash tag) a script moves dlqBatch uuids per round trip,
// each with its reason gone in the same step. Elsewhere each uuid is popped
// and pushed in two commands, and put back when the push fails.
func Replay(ctx context.Context, rdb redis.UniversalClient, ingress string, count int, fromStart bool) (int, error) {
	dlq := DLQKey(ingress)
	flag := "0"
	if fromStart {
		flag = "1"
	}
	if IsCluster(rdb) && slotTag(dlq) != slotTag(ingress) {
		return replayAcrossSlots(ctx, rdb, ingress, count, flag)
	}
	keys := []string{dlq, ingress, DLQReasonsKey(ingress), StateKey(ingress)}
	moved := 0
	for moved < count {
		want := min(count-moved, dlqBatch)
		n, err := replayScript.Run(ctx, rdb, keys, want, flag).Int()
		if err != nil {
			return moved, fmt.Errorf("replay %s: %w", dlq, err)
		}
		moved += n
		if n < want {
			break
		}
	}
	return moved, nil
}

func replayAcrossSlots(ctx context.Context, rdb redis.UniversalClient, ingress string, count int, fromStart string) (int, error) {
	dlq := DLQKey(ingress)
	moved := 0
	for moved < count {
		uuid, err := rdb.LPop(ctx, dlq).Result()
		if errors.Is(err, redis.Nil) {
			break
		}
		if err != nil {
			return moved, fmt.Errorf("replay %s: %w", dlq, err)
		}
		// Forget the state first: a vCon queued with its old attempts
		// would get a smaller retry budget than the replay promises.
		if err := forgetScript.Run(ctx, rdb, []string{StateKey(ingress)}, uuid, fromStart).Err(); err != nil {
			rdb.LPush(ctx, dlq, uuid)
			return moved, fmt.Errorf("replay %s: %w", dlq, err)
		}
		if err := rdb.RPush(ctx, ingress, uuid).Err(); err != nil {
			// Put it back rather than lose it.
			rdb.LPush(ctx, dlq, uuid)
			return moved, fmt.Errorf("replay %s: %w", dlq, err)
		}
		rdb.HDel(ctx, DLQReasonsKey(ingress), uuid)
		moved++
	}
	return moved, nil
}
