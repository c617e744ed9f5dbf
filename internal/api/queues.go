package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
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
	ctx := r.Context()
	if !withReasons {
		uuids, err := queue.DeadLettered(ctx, s.rdb, list)
		if err != nil {
			s.internalError(w, r, "Failed to read DLQ", err)
			return
		}
		writeJSON(w, http.StatusOK, uuids)
		return
	}
	dead, err := queue.ListDLQ(ctx, s.rdb, list)
	if err != nil {
		s.internalError(w, r, "Failed to read DLQ", err)
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
