package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ReasonMatch selects dead letters by their recorded reason: those whose
// reason text contains Substring (case-sensitive, as the worker wrote it).
// An empty Substring selects every dead letter, recorded or not; a
// non-empty one never selects a uuid with no recorded reason, since nothing
// is known of why it failed.
type ReasonMatch struct {
	Substring string
}

// Matches says whether d is selected.
func (m ReasonMatch) Matches(d DeadLetter) bool {
	if m.Substring == "" {
		return true
	}
	return d.Recorded && strings.Contains(d.Reason.Reason, m.Substring)
}

// Select reads DLQ:{ingress} and returns the dead letters m selects, in
// queue order, at most limit of them (0: all).
func Select(ctx context.Context, rdb redis.UniversalClient, ingress string, m ReasonMatch, limit int) ([]DeadLetter, error) {
	dead, err := ListDLQ(ctx, rdb, ingress)
	if err != nil {
		return nil, err
	}
	out := dead[:0]
	for _, d := range dead {
		if limit > 0 && len(out) == limit {
			break
		}
		if m.Matches(d) {
			out = append(out, d)
		}
	}
	return out, nil
}

// replayChosenScript moves each uuid of ARGV[2..] from DLQ:{ingress}
// (KEYS[1]) to the tail of the ingress list (KEYS[2]) when it is still
// dead-lettered, dropping its reason (KEYS[3]) and state (KEYS[4]); ARGV[1]
// is fromStart. A uuid someone else replayed or purged since it was read is
// skipped, so selecting and moving need not be one step.
var replayChosenScript = redis.NewScript(replayLua + `
local n = 0
for i = 2, #ARGV do
  local uuid = ARGV[i]
  if redis.call('LREM', KEYS[1], 1, uuid) == 1 then
    redis.call('RPUSH', KEYS[2], uuid)
    redis.call('HDEL', KEYS[3], uuid)
    forget(KEYS[4], uuid, ARGV[1])
    n = n + 1
  end
end
return n
`)

// purgeScript removes each uuid of ARGV from DLQ:{ingress} (KEYS[1]) with
// its reason (KEYS[2]) and state (KEYS[3]), and returns how many entries
// went.
var purgeScript = redis.NewScript(`
local n = 0
for i = 1, #ARGV do
  local uuid = ARGV[i]
  local removed = redis.call('LREM', KEYS[1], 0, uuid)
  if removed > 0 then
    redis.call('HDEL', KEYS[2], uuid)
    redis.call('HDEL', KEYS[3], 'd:' .. uuid, 'a:' .. uuid, 'r:' .. uuid, 'e:' .. uuid)
    n = n + removed
  end
end
return n
`)

// ReplayMatching is Replay restricted to the dead letters m selects: up to
// count of them (0: all) move back to the tail of the ingress list, oldest
// first, their reasons dropped. It returns how many moved.
func ReplayMatching(ctx context.Context, rdb redis.UniversalClient, ingress string, m ReasonMatch, count int, fromStart bool) (int, error) {
	chosen, err := Select(ctx, rdb, ingress, m, count)
	if err != nil {
		return 0, err
	}
	flag := "0"
	if fromStart {
		flag = "1"
	}
	dlq := DLQKey(ingress)
	if IsCluster(rdb) && slotTag(dlq) != slotTag(ingress) {
		return replayChosenAcrossSlots(ctx, rdb, ingress, chosen, flag)
	}
	keys := []string{dlq, ingress, DLQReasonsKey(ingress), StateKey(ingress)}
	moved := 0
	for start := 0; start < len(chosen); start += dlqBatch {
		args := []any{flag}
		for _, d := range chosen[start:min(start+dlqBatch, len(chosen))] {
			args = append(args, d.UUID)
		}
		n, err := replayChosenScript.Run(ctx, rdb, keys, args...).Int()
		if err != nil {
			return moved, fmt.Errorf("replay %s: %w", dlq, err)
		}
		moved += n
	}
	return moved, nil
}

func replayChosenAcrossSlots(ctx context.Context, rdb redis.UniversalClient, ingress string, chosen []DeadLetter, fromStart string) (int, error) {
	dlq := DLQKey(ingress)
	moved := 0
	for _, d := range chosen {
		n, err := rdb.LRem(ctx, dlq, 1, d.UUID).Result()
		if err != nil {
			return moved, fmt.Errorf("replay %s: %w", dlq, err)
		}
		if n == 0 {
			continue
		}
		if err := forgetScript.Run(ctx, rdb, []string{StateKey(ingress)}, d.UUID, fromStart).Err(); err != nil {
			rdb.RPush(ctx, dlq, d.UUID)
			return moved, fmt.Errorf("replay %s: %w", dlq, err)
		}
		if err := rdb.RPush(ctx, ingress, d.UUID).Err(); err != nil {
			// Put it back rather than lose it.
			rdb.RPush(ctx, dlq, d.UUID)
			return moved, fmt.Errorf("replay %s: %w", dlq, err)
		}
		rdb.HDel(ctx, DLQReasonsKey(ingress), d.UUID)
		moved++
	}
	return moved, nil
}

// Purge removes the given dead letters of DLQ:{ingress} for good, with
// their recorded reasons and queue state, and returns how many DLQ entries
// went. Bodies are left alone: dead-lettering gave each its DLQ expiry, a
// storage may hold the only other copy, and DELETE /api/vcon/{uuid} is the
// one way to erase a vCon.
func Purge(ctx context.Context, rdb redis.UniversalClient, ingress string, uuids []string) (int, error) {
	dlq := DLQKey(ingress)
	if IsCluster(rdb) && slotTag(dlq) != slotTag(ingress) {
		return purgeAcrossSlots(ctx, rdb, ingress, uuids)
	}
	keys := []string{dlq, DLQReasonsKey(ingress), StateKey(ingress)}
	purged := 0
	for start := 0; start < len(uuids); start += dlqBatch {
		args := make([]any, 0, dlqBatch)
		for _, u := range uuids[start:min(start+dlqBatch, len(uuids))] {
			args = append(args, u)
		}
		n, err := purgeScript.Run(ctx, rdb, keys, args...).Int()
		if err != nil {
			return purged, fmt.Errorf("purge %s: %w", dlq, err)
		}
		purged += n
	}
	return purged, nil
}

func purgeAcrossSlots(ctx context.Context, rdb redis.UniversalClient, ingress string, uuids []string) (int, error) {
	dlq := DLQKey(ingress)
	purged := 0
	for _, u := range uuids {
		n, err := rdb.LRem(ctx, dlq, 0, u).Result()
		if err != nil {
			return purged, fmt.Errorf("purge %s: %w", dlq, err)
		}
		if n == 0 {
			continue
		}
		d, a, r, e := stateFields(u)
		rdb.HDel(ctx, DLQReasonsKey(ingress), u)
		rdb.HDel(ctx, StateKey(ingress), d, a, r, e)
		purged += int(n)
	}
	return purged, nil
}

// Place is one key that holds a uuid.
type Place struct {
	// Kind is KindIngress, KindInFlight, KindRetry, KindDLQ or KindEgress.
	Kind string `json:"kind"`
	// Key is the Redis key; List the ingress or egress list it belongs to.
	Key  string `json:"key"`
	List string `json:"list"`
	// Position is the uuid's index in a list, from its head (the next to
	// be taken). Worker is the in-flight list's worker; Due a retry's due
	// time.
	Position *int64     `json:"position,omitempty"`
	Worker   string     `json:"worker,omitempty"`
	Due      *time.Time `json:"due,omitempty"`
}

// KindInFlight is a worker's in-flight list.
const KindInFlight = "inflight"

// Whereabouts is where the queues of a Target hold one uuid.
type Whereabouts struct {
	Places []Place `json:"places"`
	// DeadLetters are the recorded reasons, by ingress list, of the DLQs
	// that hold the uuid with a record.
	DeadLetters map[string]DLQReason `json:"deadLetters,omitempty"`
}

// Locate finds uuid in the lists of t, in two round trips: one pipeline of
// LPOS, ZSCORE and HGET over every list and of the worker ids, then one of
// LPOS over the workers' in-flight lists. It only reads.
func Locate(ctx context.Context, rdb redis.UniversalClient, uuid string, t Target) (Whereabouts, error) {
	type ingressCmds struct {
		ingress, dlq *redis.IntCmd
		retry        *redis.FloatCmd
		reason       *redis.StringCmd
		workers      *redis.StringSliceCmd
	}
	pipe := rdb.Pipeline()
	in := make([]ingressCmds, len(t.Ingress))
	for i, l := range t.Ingress {
		in[i] = ingressCmds{
			ingress: pipe.LPos(ctx, l, uuid, redis.LPosArgs{}),
			dlq:     pipe.LPos(ctx, DLQKey(l), uuid, redis.LPosArgs{}),
			retry:   pipe.ZScore(ctx, RetryKey(l), uuid),
			reason:  pipe.HGet(ctx, DLQReasonsKey(l), uuid),
			workers: pipe.ZRange(ctx, WorkersKey(l), 0, -1),
		}
	}
	eg := make([]*redis.IntCmd, len(t.Egress))
	for i, l := range t.Egress {
		eg[i] = pipe.LPos(ctx, l, uuid, redis.LPosArgs{})
	}
	var w Whereabouts
	if pipe.Len() == 0 {
		return w, nil
	}
	if err := execReading(ctx, pipe); err != nil {
		return w, fmt.Errorf("locate %s: %w", uuid, err)
	}
	at := func(c *redis.IntCmd) *int64 {
		if c.Err() != nil {
			return nil
		}
		v := c.Val()
		return &v
	}
	type flight struct {
		list, worker string
		cmd          *redis.IntCmd
	}
	var flights []flight
	fpipe := rdb.Pipeline()
	for i, l := range t.Ingress {
		c := in[i]
		if p := at(c.ingress); p != nil {
			w.Places = append(w.Places, Place{Kind: KindIngress, Key: l, List: l, Position: p})
		}
		for _, id := range c.workers.Val() {
			flights = append(flights, flight{l, id, fpipe.LPos(ctx, InFlightKey(l, id), uuid, redis.LPosArgs{})})
		}
		if c.retry.Err() == nil {
			due := time.UnixMilli(int64(c.retry.Val())).UTC()
			w.Places = append(w.Places, Place{Kind: KindRetry, Key: RetryKey(l), List: l, Due: &due})
		}
		if p := at(c.dlq); p != nil {
			w.Places = append(w.Places, Place{Kind: KindDLQ, Key: DLQKey(l), List: l, Position: p})
			if r, ok := decodeReason(c.reason.Val()); ok && c.reason.Err() == nil {
				if w.DeadLetters == nil {
					w.DeadLetters = map[string]DLQReason{}
				}
				w.DeadLetters[l] = r
			}
		}
	}
	if len(flights) > 0 {
		if err := execReading(ctx, fpipe); err != nil {
			return w, fmt.Errorf("locate %s in flight: %w", uuid, err)
		}
		for _, f := range flights {
			if p := at(f.cmd); p != nil {
				w.Places = append(w.Places, Place{Kind: KindInFlight, Key: InFlightKey(f.list, f.worker), List: f.list, Worker: f.worker, Position: p})
			}
		}
	}
	for i, l := range t.Egress {
		if p := at(eg[i]); p != nil {
			w.Places = append(w.Places, Place{Kind: KindEgress, Key: l, List: l, Position: p})
		}
	}
	return w, nil
}

// execReading runs a pipeline of reads where a missing value (redis.Nil)
// is an answer, not a failure.
func execReading(ctx context.Context, pipe redis.Pipeliner) error {
	cmds, _ := pipe.Exec(ctx)
	for _, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
	}
	return nil
}
