package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// A storage's DLQ (DLQ:storage:{name}) holds the uuids whose write to that
// storage failed while their vCon went on to egress (a chain with
// storage_failure dead_letter_storage, conserver's behaviour since its
// PRs #197 and #202). Its replay re-runs only that write, for each uuid,
// reading the body from Redis: never the chain, whose links (a
// transcription already paid for) succeeded.

// ErrStorageReplayBusy is returned while another replay of the same
// storage's DLQ holds its lock.
var ErrStorageReplayBusy = errors.New("another replay of this storage's DLQ is running")

// ErrNothingToWrite wraps a write that cannot happen however often it is
// tried (the vCon's body is gone from Redis): the replay leaves the uuid
// where it is, with that reason, and goes on with the next.
var ErrNothingToWrite = errors.New("nothing to write")

// StorageReplay is what one replay of a storage's DLQ did.
type StorageReplay struct {
	// Written is how many uuids were written and left the DLQ.
	Written int
	// Skipped are uuids left in the DLQ whose write can never happen as
	// things are (ErrNothingToWrite): a person has to look.
	Skipped []string
	// Stopped is the uuid whose write failed, ending the replay ("" when
	// it did not stop early): a storage still down does not drain its DLQ
	// into failures, and the entries after it are not tried.
	Stopped string
	// StopErr is why Stopped failed.
	StopErr error
}

// ackLua removes a written uuid from DLQ:storage:{name} (KEYS[1]), the
// oldest entry first, and its recorded reason (KEYS[2]) unless the uuid
// is queued there again (a later failure of the same vCon, which keeps
// its own reason).
const ackLua = `
local n = redis.call('LREM', KEYS[1], 1, ARGV[1])
if n > 0 and not redis.call('LPOS', KEYS[1], ARGV[1]) then
  redis.call('HDEL', KEYS[2], ARGV[1])
end
return n
`

var ackScript = redis.NewScript(ackLua)

// unlockScript deletes the replay lock only while it still holds this
// replay's token.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// ReplayStorageDLQ re-runs write for up to count uuids of storage's DLQ,
// oldest first, and removes each one from the DLQ only once its write
// succeeded: a replay cut short (a crash, a lost reply) leaves the uuid
// queued, and a later replay writes it again (at least once; the storage
// must accept a second write of the same uuid, as conserver requires).
// The first write that fails stops the replay, its entry kept with the new
// reason; one wrapping ErrNothingToWrite is skipped instead.
//
// One replay per storage runs at a time, across processes: conserver's
// lock key, StorageReplayLockKey, taken with SET NX. Like conserver's it
// has no expiry, so that a slow storage cannot let a second replay remove
// entries of the first one's snapshot; a replay that crashed leaves it,
// and a person removes it once sure no replay runs (the error says how).
func ReplayStorageDLQ(ctx context.Context, rdb redis.UniversalClient, storage string, count int, write func(ctx context.Context, uuid string) error) (StorageReplay, error) {
	var out StorageReplay
	dlq, lock := StorageDLQKey(storage), StorageReplayLockKey(storage)
	token, err := lockToken()
	if err != nil {
		return out, err
	}
	took, err := rdb.SetNX(ctx, lock, token, 0).Result()
	if err != nil {
		return out, fmt.Errorf("take the replay lock %s: %w", lock, err)
	}
	if !took {
		return out, fmt.Errorf("%w: %s is held; wait for it, or, if the replay that held it crashed, make sure none runs and DEL %s", ErrStorageReplayBusy, lock, lock)
	}
	// Released even when the request that asked is cancelled.
	defer unlockScript.Run(context.WithoutCancel(ctx), rdb, []string{lock}, token)

	uuids, err := rdb.LRange(ctx, dlq, 0, int64(count)-1).Result()
	if err != nil {
		return out, fmt.Errorf("read %s: %w", dlq, err)
	}
	list := StorageDLQList(storage)
	for _, uuid := range uuids {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		werr := write(ctx, uuid)
		if werr != nil {
			if err := recordReplayFailure(ctx, rdb, list, uuid, werr); err != nil {
				return out, err
			}
			if errors.Is(werr, ErrNothingToWrite) {
				out.Skipped = append(out.Skipped, uuid)
				continue
			}
			out.Stopped, out.StopErr = uuid, werr
			return out, nil
		}
		if err := ack(ctx, rdb, dlq, DLQReasonsKey(list), uuid); err != nil {
			// Written, still queued: a later replay writes it again.
			return out, fmt.Errorf("remove written %s from %s: %w", uuid, dlq, err)
		}
		out.Written++
	}
	return out, nil
}

// ack removes a written uuid. On a cluster the DLQ and its reasons live in
// two slots: the entry goes first, and a reason left behind by a failure
// between the two is only a stale note.
func ack(ctx context.Context, rdb redis.UniversalClient, dlq, reasons, uuid string) error {
	if !IsCluster(rdb) || slotTag(dlq) == slotTag(reasons) {
		return ackScript.Run(ctx, rdb, []string{dlq, reasons}, uuid).Err()
	}
	n, err := rdb.LRem(ctx, dlq, 1, uuid).Result()
	if err != nil || n == 0 {
		return err
	}
	if _, err := rdb.LPos(ctx, dlq, uuid, redis.LPosArgs{}).Result(); errors.Is(err, redis.Nil) {
		return rdb.HDel(ctx, reasons, uuid).Err()
	}
	return nil
}

// recordReplayFailure replaces a uuid's recorded reason with why its
// replayed write failed, keeping the chain and step of the first failure.
func recordReplayFailure(ctx context.Context, rdb redis.UniversalClient, list, uuid string, werr error) error {
	prev, err := Reasons(ctx, rdb, list, []string{uuid})
	if err != nil {
		return fmt.Errorf("read the reason recorded for %s: %w", uuid, err)
	}
	r := prev[uuid]
	first := r.Reason
	if i := strings.Index(first, ": "); i > 0 {
		first = first[:i]
	}
	if first == "" {
		first = "storage_error"
	}
	r.Reason = fmt.Sprintf("%s: replay: %v", first, werr)
	r.At = time.Now().UTC()
	b, _ := json.Marshal(r)
	if err := rdb.HSet(ctx, DLQReasonsKey(list), uuid, b).Err(); err != nil {
		return fmt.Errorf("record why the replay of %s failed: %w", uuid, err)
	}
	return nil
}

func lockToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("replay lock token: %w", err)
	}
	return hex.EncodeToString(b), nil
}
