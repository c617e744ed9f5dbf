package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/storage"
	"github.com/vcon-operator/vcon-operator/internal/telemetry"
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
func (s *Server) save(ctx context.Context, in *incoming, lists []string) error {
	cluster := queue.IsCluster(s.rdb)
	pipe := s.rdb.TxPipeline()
	if err := s.store.QueueCreate(ctx, pipe, in.uuid, in.body, s.opts.VconTTL); err != nil {
		return err
	}
	pipe.ZAdd(ctx, s.opts.SortedSet, redis.Z{Score: float64(in.createdAt.Unix()), Member: indexMember(in.uuid)})
	for _, k := range in.index {
		pipe.SAdd(ctx, k, in.uuid)
		if s.opts.IndexTTL > 0 {
			pipe.Expire(ctx, k, s.opts.IndexTTL)
		}
	}
	if cluster && len(lists) > 0 {
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

// queuePush queues, per list, conserver's trace-context record (only when
// the request has a span) and then the uuids.
func (s *Server) queuePush(ctx context.Context, pipe redis.Pipeliner, lists []string, uuids ...string) {
	tc, traced := telemetry.FromContext(ctx)
	record := ""
	if traced {
		record = tc.JSON()
	}
	for _, list := range lists {
		if traced {
			for _, u := range uuids {
				key := queue.ContextKey(list, u)
				pipe.RPush(ctx, key, record)
				if s.opts.ContextTTL > 0 {
					pipe.Expire(ctx, key, s.opts.ContextTTL)
				}
			}
		}
		if len(uuids) > 0 {
			args := make([]any, len(uuids))
			for i, u := range uuids {
				args[i] = u
			}
			pipe.RPush(ctx, list, args...)
		}
	}
}

// enqueue pushes existing vCons onto lists (POST /api/vcon/ingress).
func (s *Server) enqueue(ctx context.Context, list string, uuids []string) error {
	if len(uuids) == 0 {
		return nil
	}
	pipe := s.rdb.TxPipeline()
	s.queuePush(ctx, pipe, []string{list}, uuids...)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("push %d uuids onto %s: %w", len(uuids), list, err)
	}
	return nil
}

// errNotFound: neither Redis nor any storage has the vCon.
var errNotFound = errors.New("vCon not found")

// readThrough finds a vCon Redis no longer has in the configured storages,
// in name order, and caches it back in Redis (TTL VconTTL) with its listing
// entry, as conserver does. The document is normalised the way a worker
// write would, since a storage may hold the 0.0.1 egress shape.
func (s *Server) readThrough(ctx context.Context, uuid string) ([]byte, error) {
	for _, ns := range s.config.get(ctx).storages {
		g, ok := ns.s.(storage.Getter)
		if !ok {
			continue
		}
		data, err := g.Get(ctx, uuid)
		if errors.Is(err, storage.ErrNotFound) || (err == nil && len(data) == 0) {
			continue
		}
		if err != nil {
			s.log.Warn("read-through: storage read failed", "storage", ns.name, "uuid", uuid, "error", err)
			continue
		}
		v, err := vcon.Parse(data)
		if err != nil {
			s.log.Warn("read-through: storage holds a document that is not a vCon", "storage", ns.name, "uuid", uuid)
			continue
		}
		vcon.Normalize(v)
		body, err := v.Marshal()
		if err != nil {
			continue
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
	return nil, errNotFound
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
