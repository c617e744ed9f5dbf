package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/queueops"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// The routes under queueops.PathPrefix are ours: what `kubectl vcon` needs
// when it reaches Redis only through this API (through the Kubernetes API
// server's service proxy, from a laptop). They take the API token like
// every route that reads or changes vCons.

// maxReasonLen bounds the reason a replay selects by.
const maxReasonLen = 1024

// GET /api/ops/queues?ingress_list=A&egress_list=B → queueops.Figures.
func (s *Server) opsQueues(w http.ResponseWriter, r *http.Request) {
	t, ok := s.opsTarget(w, r)
	if !ok {
		return
	}
	f, err := queueops.Measure(r.Context(), s.rdb, t)
	if err != nil {
		s.internalError(w, r, "Failed to measure queues", err)
		return
	}
	writeJSON(w, http.StatusOK, f)
}

// GET /api/ops/vcon/{uuid}?ingress_list=A&egress_list=B → queueops.Vcon,
// also when the uuid is nowhere (its places are then empty).
func (s *Server) opsVcon(w http.ResponseWriter, r *http.Request) {
	uuid, ok := pathUUID(w, r)
	if !ok {
		return
	}
	t, ok := s.opsTarget(w, r)
	if !ok {
		return
	}
	v, err := queueops.Lookup(r.Context(), s.rdb, s.store, uuid, t)
	if err != nil {
		s.internalError(w, r, "Failed to locate vCon", err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// opsTarget reads the repeatable ingress_list and egress_list parameters;
// at least one list is required.
func (s *Server) opsTarget(w http.ResponseWriter, r *http.Request) (queue.Target, bool) {
	q := newQuery(r, s.opts.SortedSet)
	t := queue.Target{Ingress: q.lists("ingress_list"), Egress: q.lists("egress_list")}
	if len(q.errs) == 0 && len(t.Ingress)+len(t.Egress) == 0 {
		q.fail("ingress_list", "missing", "Name at least one ingress_list or egress_list")
	}
	return t, q.ok(w)
}

// POST /api/ops/dlq/replay?ingress_list=X&reason=R&count=N&from_start=B →
// {"moved": n}. Only dead letters whose recorded reason contains R move
// (queue.ReasonMatch); without reason every one does, as
// /api/dlq/reprocess. count 0 (the default) moves every match.
func (s *Server) opsReplay(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r, s.opts.SortedSet)
	list := q.list("ingress_list")
	reason, _ := q.single("reason")
	if len(reason) > maxReasonLen {
		q.fail("reason", "too_long", fmt.Sprintf("At most %d bytes", maxReasonLen))
	}
	count := q.integer("count", 0, 0, maxReprocess)
	fromStart := q.boolean("from_start")
	if !q.ok(w) {
		return
	}
	n, err := queue.ReplayMatching(r.Context(), s.rdb, list, queue.ReasonMatch{Substring: reason}, count, fromStart)
	if err != nil {
		s.internalError(w, r, "Failed to replay DLQ", err)
		return
	}
	writeJSON(w, http.StatusOK, queueops.Moved{Moved: n})
}

// POST /api/ops/dlq/purge?ingress_list=X with a JSON array of the uuids to
// remove → {"purged": n}. The caller names the uuids it showed its user,
// so that a dead letter arriving between the look and the purge is kept.
func (s *Server) opsPurge(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r, s.opts.SortedSet)
	list := q.list("ingress_list")
	if !q.ok(w) {
		return
	}
	data, ok := s.readBody(w, r)
	if !ok {
		return
	}
	var uuids []string
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&uuids); err != nil || dec.More() {
		writeInvalid(w, bodyError("list_type", "Input should be a JSON array of the dead-lettered uuids to purge"))
		return
	}
	if len(uuids) > queueops.MaxPurge {
		writeInvalid(w, bodyError("too_long", fmt.Sprintf("At most %d uuids per call", queueops.MaxPurge)))
		return
	}
	var errs []vcon.Detail
	for i, u := range uuids {
		// DLQ entries are whatever was pushed (conserver does not check
		// them), so any short printable string is a name to remove.
		if u == "" || len(u) > maxListNameLen || strings.ContainsFunc(u, func(c rune) bool { return c <= ' ' || c > '~' }) {
			errs = append(errs, vcon.Detail{Loc: []any{"body", i}, Type: "value_error", Msg: "Input should be a dead-lettered uuid"})
		}
	}
	if len(errs) > 0 {
		writeInvalid(w, errs...)
		return
	}
	n, err := queue.Purge(r.Context(), s.rdb, list, uuids)
	if err != nil {
		s.internalError(w, r, "Failed to purge DLQ", err)
		return
	}
	writeJSON(w, http.StatusOK, queueops.Purged{Purged: n})
}
