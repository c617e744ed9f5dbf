package api

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

	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/storage"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// indexMember is the listing index member of a vCon, as conserver's API
// writes it.
func indexMember(uuid string) string { return "vcon:" + uuid }

// save writes a new vCon: the body (TTL VconTTL), its listing entry, its
// party index sets (TTL IndexTTL) and, per list, the trace context then the
// uuid. On a single server it is one MULTI/EXEC, so a queued uuid never
// lacks its body. On a cluster, where a transaction cannot span slots, the
// body and indexes are written first and the queue pushes after them.
//
// A POST must not answer 500 for a write that happened: a producer retries
// it and the vCon is processed twice. Two mechanisms make the answer true
// and a retry harmless (single server and Sentinel; a cluster keeps the
// plain pushes, its keys being in different slots):
//
//   - The push is idempotent per list and uuid (pushScript): a uuid the API
//     queued on a list within DedupWindow and that still waits there is not
//     pushed again. A retried POST, or a second POST of the same uuid,
//     rewrites the body and indexes (idempotent writes) but queues it once.
//   - The transaction also sets a write marker unique to this request
//     (TTL writeMarkerTTL). When EXEC's reply is lost or late (read timeout,
//     connection drop) the marker is read back on another connection (the
//     failed one is discarded), with a deadline of its own: present, the
//     write happened and save returns nil (201); absent, it had not
//     happened by then, errWriteNotApplied (503); Redis unreachable,
//     errWriteUnknown (503). Strictly, an EXEC still unread in Redis's
//     input buffer could run after that read; a retry is safe either way,
//     by the first mechanism.
//
// A definite error reply from Redis (EXECABORT, WRONGTYPE, OOM) is
// returned as it is (500).
func (s *Server) save(ctx context.Context, in *incoming, lists []string) error {
	cluster := queue.IsCluster(s.rdb)
	pipe := s.rdb.TxPipeline()
	if err := s.store.QueueCreate(ctx, pipe, in.uuid, in.body, s.bodyTTL(len(lists) > 0)); err != nil {
		return err
	}
	pipe.ZAdd(ctx, s.opts.SortedSet, redis.Z{Score: float64(in.createdAt.Unix()), Member: indexMember(in.uuid)})
	for _, k := range in.index {
		pipe.SAdd(ctx, k, in.uuid)
		if s.opts.IndexTTL > 0 {
			pipe.Expire(ctx, k, s.opts.IndexTTL)
		}
	}
	if cluster {
		if len(lists) > 0 {
			if _, err := pipe.Exec(ctx); err != nil {
				return fmt.Errorf("store vcon %s: %w", in.uuid, err)
			}
			pipe = s.rdb.TxPipeline()
		}
		s.queuePush(ctx, pipe, lists, in.uuid)
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("store vcon %s: %w", in.uuid, err)
		}
		return nil
	}
	s.queuePushOnce(ctx, pipe, lists, in.uuid)
	marker := writeMarkerKey(newNonce())
	pipe.Set(ctx, marker, "1", writeMarkerTTL)
	_, err := pipe.Exec(ctx)
	if err == nil {
		return nil
	}
	if isRedisReply(err) {
		return fmt.Errorf("store vcon %s: %w", in.uuid, err)
	}
	// The reply was lost or late: find out on a fresh connection, with a
	// deadline of its own (the request's may be spent).
	vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.WriteCheckTimeout)
	defer cancel()
	n, cerr := s.rdb.Exists(vctx, marker).Result()
	switch {
	case cerr != nil:
		return fmt.Errorf("%w: store vcon %s: %v; checking: %v", errWriteUnknown, in.uuid, err, cerr)
	case n == 1:
		s.log.Warn("Redis reply to a vCon write was lost; the write marker shows it was applied", "uuid", in.uuid, "error", err)
		return nil
	default:
		return fmt.Errorf("%w: store vcon %s: %v", errWriteNotApplied, in.uuid, err)
	}
}

// writeMarkerTTL bounds how long a write marker outlives its request: it is
// read back only right after the EXEC it belongs to (within the client's
// read timeout plus WriteCheckTimeout), and one exists per POST, so it is
// kept short.
const writeMarkerTTL = time.Minute

// Errors of save when Redis did not confirm the write.
var (
	// errWriteNotApplied: EXEC's reply was lost and the write marker was
	// absent when read back afterwards.
	errWriteNotApplied = errors.New("redis did not confirm the write and it had not been applied")
	// errWriteUnknown: EXEC's reply was lost and Redis could not be asked.
	errWriteUnknown = errors.New("redis did not confirm the write and could not be asked whether it was applied")
)

// writeMarkerKey is the key proving that one request's transaction ran.
func writeMarkerKey(nonce string) string { return "vcon-operator:api-write:" + nonce }

// queuedMarkerKey records that the API queued uuid on list; pushScript
// reads it. It is in the list's cluster slot (hash tag), like the queue
// package's keys.
func queuedMarkerKey(list, uuid string) string {
	return "vcon-operator:api-queued:{" + slotTag(list) + "}:" + list + ":" + uuid
}

// slotTag is the part of a key Redis Cluster hashes, as queue uses.
func slotTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// isRedisReply tells a definite answer from Redis (an error reply: the
// transaction was refused or ran) from a lost or late one.
func isRedisReply(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled)
}

// pushScript queues a uuid on a list unless it is already waiting there
// because the API queued it recently: the marker (KEYS[1]) says the API
// pushed it within the dedup window, and LPOS finds it among the last
// dedupScanLen entries of the list (KEYS[2]), scanned from the tail where a
// recent push is. Only a repeated POST pays for the scan. When it pushes it
// first pushes the trace-context record onto KEYS[3], if given.
//
// ARGV: uuid, marker TTL (ms), scan length, [record, context TTL (ms)].
const pushScript = `
if redis.call('EXISTS', KEYS[1]) == 1 and
   redis.call('LPOS', KEYS[2], ARGV[1], 'RANK', -1, 'MAXLEN', ARGV[3]) then
  return 0
end
if KEYS[3] then
  redis.call('RPUSH', KEYS[3], ARGV[4])
  if tonumber(ARGV[5]) > 0 then redis.call('PEXPIRE', KEYS[3], ARGV[5]) end
end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
return 1
`

// dedupScanLen bounds pushScript's LPOS: a uuid pushed more than this many
// entries ago counts as taken, and a repeated POST queues it again.
const dedupScanLen = 10_000

// queuePushOnce queues uuid on every list through pushScript, inside the
// caller's transaction. It cannot be queue.QueuePush: whether to push at
// all is decided inside Redis, from the marker and the list, so the trace
// record and the uuid are written by the script, in QueuePush's order and
// with its TTL rule.
func (s *Server) queuePushOnce(ctx context.Context, pipe redis.Pipeliner, lists []string, uuid string) {
	tc, traced := queue.TraceContextFrom(ctx)
	window := s.opts.DedupWindow.Milliseconds()
	for _, list := range lists {
		keys := []string{queuedMarkerKey(list, uuid), list}
		args := []any{uuid, window, dedupScanLen}
		if traced {
			keys = append(keys, queue.ContextKey(list, uuid))
			args = append(args, tc.JSON(), s.opts.ContextTTL.Milliseconds())
		}
		// EVAL, not EVALSHA: inside MULTI a NOSCRIPT error would leave the
		// rest of the transaction applied without the push.
		pipe.Eval(ctx, pushScript, keys, args...)
	}
}

// queuePush queues, per list, conserver's trace-context record (only when
// the request has a span) and then the uuids.
func (s *Server) queuePush(ctx context.Context, pipe redis.Pipeliner, lists []string, uuids ...string) {
	for _, list := range lists {
		queue.QueuePush(ctx, pipe, list, s.opts.ContextTTL, uuids...)
	}
}

// enqueue pushes existing vCons onto lists (POST /api/vcon/ingress).
func (s *Server) enqueue(ctx context.Context, list string, uuids []string) error {
	if len(uuids) == 0 {
		return nil
	}
	if s.opts.QueuedRetention > 0 {
		// Before the push: a queued body must outlive the backlog ahead
		// of it. Best effort (Redis before 7.0 has no PEXPIRE GT): the
		// worker extends it again when it takes the vCon.
		ext := s.rdb.Pipeline()
		for _, u := range uuids {
			s.store.QueueExtend(ctx, ext, u, s.opts.QueuedRetention)
		}
		_, _ = ext.Exec(ctx)
	}
	pipe := s.rdb.TxPipeline()
	s.queuePush(ctx, pipe, []string{list}, uuids...)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("push %d uuids onto %s: %w", len(uuids), list, err)
	}
	return nil
}

// bodyTTL is the TTL of a body the API writes: VconTTL, or at least the
// queued retention when it is queued (0, no TTL, stays 0).
func (s *Server) bodyTTL(queued bool) time.Duration {
	if queued && s.opts.VconTTL > 0 && s.opts.VconTTL < s.opts.QueuedRetention {
		return s.opts.QueuedRetention
	}
	return s.opts.VconTTL
}

// errNotFound: neither Redis nor any storage has the vCon.
var errNotFound = errors.New("vCon not found")

// readThrough finds a vCon Redis no longer has in the configured storages,
// in the file's order (storage.ReadBack), and caches it back in Redis (TTL
// VconTTL) with its listing entry, as conserver does. The document is
// normalised the way a worker write would, since a storage may hold the
// 0.0.1 egress shape.
func (s *Server) readThrough(ctx context.Context, uuid string) ([]byte, error) {
	data, _, err := storage.ReadBack(ctx, s.config.get(ctx).storages, uuid)
	if err != nil {
		// As conserver's API: a storage that cannot be read is passed
		// over, and what none of the others has is not found.
		if !errors.Is(err, storage.ErrNotFound) {
			s.log.Warn("read-through: storages failed", "uuid", uuid, "error", err)
		}
		return nil, errNotFound
	}
	v, err := vcon.Parse(data)
	if err != nil {
		return nil, errNotFound // ReadBack returns only documents that parse
	}
	vcon.Normalize(v)
	body, err := v.Marshal()
	if err != nil {
		return nil, errNotFound
	}
	pipe := s.rdb.TxPipeline()
	if err := s.store.QueueCreate(ctx, pipe, uuid, body, s.opts.VconTTL); err == nil {
		if t, ok := vcon.CreatedAt(v); ok {
			pipe.ZAdd(ctx, s.opts.SortedSet, redis.Z{Score: float64(t.Unix()), Member: indexMember(uuid)})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			s.log.Warn("read-through: could not cache the vCon in Redis", "uuid", uuid, "error", err)
		}
	}
	return body, nil
}

// getBody reads a body from Redis, then the storages.
func (s *Server) getBody(ctx context.Context, uuid string) ([]byte, error) {
	b, err := s.store.Get(ctx, uuid)
	switch {
	case err == nil:
		return b.Data, nil
	case errors.Is(err, vconstore.ErrNotFound):
		return s.readThrough(ctx, uuid)
	default:
		return nil, err
	}
}

// egressShape converts a stored body to the configured egress format.
func (s *Server) egressShape(body []byte) json.RawMessage {
	if s.opts.EgressFormat != vcon.Version001 {
		return body
	}
	v, err := vcon.Parse(body)
	if err != nil {
		return body
	}
	out, err := vcon.ToVersion001(v).Marshal()
	if err != nil {
		return body
	}
	return out
}
