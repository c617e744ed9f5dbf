package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/storage"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// maxIngressUUIDs bounds one POST /api/vcon/ingress.
const maxIngressUUIDs = 10_000

// POST /api/vcon/ingress?ingress_list=X with a JSON array of uuids → 204.
// uuids with no vCon in Redis or any storage are skipped, as in conserver.
func (s *Server) ingress(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r, s.opts.SortedSet)
	list := q.list("ingress_list")
	if !q.ok(w) {
		return
	}
	data, ok := s.readBody(w, r)
	if !ok {
		return
	}
	var items []any
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&items); err != nil || dec.More() {
		writeInvalid(w, bodyError("list_type", "Input should be a JSON array of vCon uuids"))
		return
	}
	if len(items) > maxIngressUUIDs {
		writeInvalid(w, bodyError("too_long", fmt.Sprintf("At most %d uuids per call", maxIngressUUIDs)))
		return
	}
	uuids := make([]string, 0, len(items))
	var errs []vcon.Detail
	seen := map[string]bool{}
	for i, it := range items {
		u, ok := it.(string)
		if !ok || !vcon.ValidUUID(u) {
			errs = append(errs, vcon.Detail{Loc: []any{"body", i}, Type: "uuid_parsing", Msg: "Input should be a valid UUID"})
			continue
		}
		u = strings.ToLower(u)
		if !seen[u] {
			seen[u] = true
			uuids = append(uuids, u)
		}
	}
	if len(errs) > 0 {
		writeInvalid(w, errs...)
		return
	}
	ctx := r.Context()
	bodies, err := s.store.MGet(ctx, uuids)
	if err != nil {
		s.internalError(w, r, "Failed to add to ingress list", err)
		return
	}
	found := uuids[:0:0]
	for i, b := range bodies {
		if b == nil {
			if _, err := s.readThrough(ctx, uuids[i]); err != nil {
				continue
			}
		}
		found = append(found, uuids[i])
	}
	if err := s.enqueue(ctx, list, found); err != nil {
		s.internalError(w, r, "Failed to add to ingress list", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// GET /api/vcon/egress?egress_list=X&limit=N → uuids popped from the right
// (newest first), as conserver's followers expect.
func (s *Server) egress(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r, s.opts.SortedSet)
	list := q.list("egress_list")
	limit := q.integer("limit", 1, 0, maxEgressLimit)
	if !q.ok(w) {
		return
	}
	out := []string{}
	if limit > 0 {
		got, err := s.rdb.RPopCount(r.Context(), list, limit).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			s.internalError(w, r, "Failed to pop from egress list", err)
			return
		}
		out = append(out, got...)
	}
	writeJSON(w, http.StatusOK, out)
}

// GET /api/vcon/count?egress_list=X → a bare integer.
func (s *Server) count(w http.ResponseWriter, r *http.Request) {
	if _, n, ok := s.listLength(w, r, "egress_list", "Failed to count egress list"); ok {
		writeJSON(w, http.StatusOK, n)
	}
}

// GET /api/stats/queue?list_name=X → {"list_name": X, "depth": N}.
func (s *Server) queueDepth(w http.ResponseWriter, r *http.Request) {
	if list, n, ok := s.listLength(w, r, "list_name", "Failed to get queue depth"); ok {
		writeJSON(w, http.StatusOK, map[string]any{"list_name": list, "depth": n})
	}
}

// listLength reads the list named by the query parameter param and its
// length; on a bad name or a Redis error it has answered (failure is
// conserver's message for that route) and ok is false.
func (s *Server) listLength(w http.ResponseWriter, r *http.Request, param, failure string) (list string, n int64, ok bool) {
	q := newQuery(r, s.opts.SortedSet)
	list = q.list(param)
	if !q.ok(w) {
		return "", 0, false
	}
	n, err := s.rdb.LLen(r.Context(), list).Result()
	if err != nil {
		s.internalError(w, r, failure, err)
		return "", 0, false
	}
	return list, n, true
}

// dlqEntry is one item of GET /api/dlq?with_reasons=true.
type dlqEntry struct {
	UUID   string     `json:"uuid"`
	Reason string     `json:"reason,omitempty"`
	Chain  string     `json:"chain,omitempty"`
	Step   string     `json:"step,omitempty"`
	At     *time.Time `json:"at,omitempty"`
}

// GET /api/dlq?ingress_list=X → the uuids in DLQ:X (conserver's shape);
// with_reasons=true gives objects with the recorded failure reasons.
func (s *Server) dlq(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r, s.opts.SortedSet)
	list := q.list("ingress_list")
	withReasons := q.boolean("with_reasons")
	if !q.ok(w) {
		return
	}
	s.writeDLQ(w, r, list, withReasons, "Failed to read DLQ")
}

// writeDLQ answers the uuids of DLQ:{list}, or with withReasons their
// recorded reasons too.
func (s *Server) writeDLQ(w http.ResponseWriter, r *http.Request, list string, withReasons bool, failure string) {
	ctx := r.Context()
	if !withReasons {
		uuids, err := queue.DeadLettered(ctx, s.rdb, list)
		if err != nil {
			s.internalError(w, r, failure, err)
			return
		}
		writeJSON(w, http.StatusOK, uuids)
		return
	}
	dead, err := queue.ListDLQ(ctx, s.rdb, list)
	if err != nil {
		s.internalError(w, r, failure, err)
		return
	}
	out := make([]dlqEntry, len(dead))
	for i, d := range dead {
		out[i] = dlqEntry{UUID: d.UUID, Reason: d.Reason.Reason, Chain: d.Reason.Chain, Step: d.Reason.Step, At: d.Reason.RecordedAt()}
	}
	writeJSON(w, http.StatusOK, out)
}

// POST /api/dlq/reprocess?ingress_list=X&count=N → a bare integer moved.
// Replayed vCons resume after the links they completed; from_start=true
// (ours, not conserver's) runs every link again.
func (s *Server) reprocess(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r, s.opts.SortedSet)
	list := q.list("ingress_list")
	count := q.integer("count", 1000, 1, maxReprocess)
	fromStart := q.boolean("from_start")
	if !q.ok(w) {
		return
	}
	n, err := queue.Replay(r.Context(), s.rdb, list, count, fromStart)
	if err != nil {
		s.internalError(w, r, "Failed to reprocess DLQ", err)
		return
	}
	writeJSON(w, http.StatusOK, n)
}

// GET /api/dlq/storage?storage_name=X → the uuids in DLQ:storage:X, whose
// write to storage X failed while their vCon went on (conserver's, PR
// #202); with_reasons=true as for GET /api/dlq.
func (s *Server) storageDLQ(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r, s.opts.SortedSet)
	name := q.name("storage_name")
	withReasons := q.boolean("with_reasons")
	if !q.ok(w) {
		return
	}
	s.writeDLQ(w, r, queue.StorageDLQList(name), withReasons, "Failed to read storage DLQ")
}

// POST /api/dlq/storage/reprocess?storage_name=X&count=N → a bare integer:
// how many of the first count uuids of DLQ:storage:X were written again to
// storage X (from their bodies in Redis) and left the list. Only that
// write runs, never the chain. It stops at the first write that fails,
// which stays queued with its new reason; a uuid whose body is gone is
// skipped and stays queued. 404 when the configuration file has no
// storage X; 409 while another replay of X runs (conserver's lock).
func (s *Server) storageReprocess(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r, s.opts.SortedSet)
	name := q.name("storage_name")
	count := q.integer("count", 1000, 1, maxReprocess)
	if !q.ok(w) {
		return
	}
	var st storage.Storage
	for _, ns := range s.config.get(r.Context()).storages {
		if ns.Name == name {
			st = ns.Storage
		}
	}
	if st == nil {
		writeDetail(w, http.StatusNotFound, fmt.Sprintf("Storage %s is not in the configuration file (CONSERVER_CONFIG_FILE): the API needs it to replay its writes", name))
		return
	}
	res, err := queue.ReplayStorageDLQ(r.Context(), s.rdb, name, count, s.replayWrite(st))
	switch {
	case errors.Is(err, queue.ErrStorageReplayBusy):
		writeDetail(w, http.StatusConflict, err.Error())
		return
	case err != nil:
		s.internalError(w, r, "Failed to reprocess storage DLQ", err)
		return
	}
	if res.Stopped != "" {
		s.log.Warn("storage DLQ replay stopped at a write that failed; it stays queued", "storage", name, "uuid", res.Stopped, "written", res.Written, "error", res.StopErr)
	}
	if len(res.Skipped) > 0 {
		s.log.Warn("storage DLQ entries skipped: their write cannot be replayed; they stay queued", "storage", name, "uuids", res.Skipped)
	}
	writeJSON(w, http.StatusOK, res.Written)
}

// replayWrite is a storage DLQ replay's write of one uuid: its body as
// Redis holds it now, saved to st alone, within the storage call bound
// the worker uses. A body that is gone or unreadable can never be written
// and is skipped (queue.ErrNothingToWrite).
func (s *Server) replayWrite(st storage.Storage) func(ctx context.Context, uuid string) error {
	return func(ctx context.Context, uuid string) error {
		b, err := s.store.Get(ctx, uuid)
		switch {
		case errors.Is(err, vconstore.ErrNotFound):
			return fmt.Errorf("no body at %s (expired: VCON_DLQ_EXPIRY was too short for this replay): %w", vconstore.Key(uuid), queue.ErrNothingToWrite)
		case errors.Is(err, vconstore.ErrWrongType), errors.Is(err, vconstore.ErrTooLarge):
			return fmt.Errorf("%v: %w", err, queue.ErrNothingToWrite)
		case err != nil:
			return err
		}
		v, err := vcon.Parse(b.Data)
		if err != nil {
			return fmt.Errorf("the body at %s is not a vCon: %w", vconstore.Key(uuid), queue.ErrNothingToWrite)
		}
		ctx, cancel := context.WithTimeout(ctx, storageReplayTimeout)
		defer cancel()
		return st.Save(ctx, v)
	}
}

// storageReplayTimeout bounds one replayed write, as the worker's
// pipeline.DefaultStorageCallTimeout bounds one attempt.
const storageReplayTimeout = time.Minute
