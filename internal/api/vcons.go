package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// pathUUID reads the {uuid} path value, lower-cased; 422 when it is not a
// UUID (which also refuses anything resembling a path).
func pathUUID(w http.ResponseWriter, r *http.Request) (string, bool) {
	u := r.PathValue("uuid")
	if !vcon.ValidUUID(u) {
		writeInvalid(w, vcon.Detail{Loc: []any{"path", "vcon_uuid"}, Type: "uuid_parsing",
			Msg: "Input should be a valid UUID, e.g. 018e5a2c-6b1f-7c3a-9d4e-2f1a3b4c5d6e"})
		return "", false
	}
	return strings.ToLower(u), true
}

func (s *Server) internalError(w http.ResponseWriter, r *http.Request, what string, err error) {
	s.log.Error(what, "route", r.Pattern, "error", err)
	writeDetail(w, http.StatusInternalServerError, what)
}

// saveError answers a failed save with what is known of the write: 503
// with Retry-After when Redis did not confirm it (retrying is safe, see
// save), 500 when Redis refused it.
func (s *Server) saveError(w http.ResponseWriter, r *http.Request, err error) {
	var detail string
	switch {
	case errors.Is(err, errWriteNotApplied):
		detail = "The vCon was not stored: Redis did not confirm the write in time, and it had not been applied when checked. Retrying is safe: a uuid is never queued twice on a list while it waits there."
	case errors.Is(err, errWriteUnknown):
		detail = "Redis did not confirm the write in time and could not be asked whether the vCon was stored. Retrying is safe: a uuid is never queued twice on a list while it waits there."
	default:
		s.internalError(w, r, "Failed to store vCon", err)
		return
	}
	s.log.Error("vCon write not confirmed by Redis", "route", r.Pattern, "error", err)
	w.Header().Set("Retry-After", "1")
	writeDetail(w, http.StatusServiceUnavailable, detail)
}

// POST /api/vcon?ingress_lists=a&ingress_lists=b → 201 with the stored vCon.
func (s *Server) postVcon(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r, s.opts.SortedSet)
	lists := q.lists("ingress_lists")
	if !q.ok(w) {
		return
	}
	in, ok := s.parseVcon(w, r)
	if !ok {
		return
	}
	if err := s.save(r.Context(), in, lists); err != nil {
		s.saveError(w, r, err)
		return
	}
	writeRawJSON(w, http.StatusCreated, in.body)
}

// POST /api/vcon/external-ingress?ingress_list=X with a per-list key → 204.
func (s *Server) externalIngress(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r, s.opts.SortedSet)
	list := q.list("ingress_list")
	if !q.ok(w) {
		return
	}
	key, ok := presentedToken(r, s.opts.HeaderName)
	if !ok {
		writeDetail(w, http.StatusForbidden, "API Key required")
		return
	}
	if why := s.config.get(r.Context()).ingressKeyStatus(list, key); why != "" {
		writeDetail(w, http.StatusForbidden, why)
		return
	}
	in, ok := s.parseVcon(w, r)
	if !ok {
		return
	}
	if err := s.save(r.Context(), in, []string{list}); err != nil {
		s.saveError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// GET /api/vcon/{uuid} → the vCon, from Redis or read through the storages.
func (s *Server) getVcon(w http.ResponseWriter, r *http.Request) {
	uuid, ok := pathUUID(w, r)
	if !ok {
		return
	}
	body, err := s.getBody(r.Context(), uuid)
	switch {
	case errors.Is(err, errNotFound):
		writeDetail(w, http.StatusNotFound, "vCon not found")
	case err != nil:
		s.internalError(w, r, "Failed to read vCon", err)
	default:
		writeRawJSON(w, http.StatusOK, s.egressShape(body))
	}
}

// GET /api/vcons?vcon_uuids=a&vcon_uuids=b → array, null for misses.
func (s *Server) getVcons(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r, s.opts.SortedSet)
	uuids := q.uuids("vcon_uuids")
	if !q.ok(w) {
		return
	}
	bodies, err := s.store.MGet(r.Context(), uuids)
	if err != nil {
		s.internalError(w, r, "Failed to read vCons", err)
		return
	}
	out := make([]json.RawMessage, len(uuids))
	for i, b := range bodies {
		if b == nil {
			b, err = s.readThrough(r.Context(), uuids[i])
			if errors.Is(err, errNotFound) {
				out[i] = json.RawMessage("null")
				continue
			}
			if err != nil {
				s.internalError(w, r, "Failed to read vCons", err)
				return
			}
		}
		out[i] = s.egressShape(b)
		if !json.Valid(out[i]) {
			s.internalError(w, r, "Failed to read vCons", fmt.Errorf("the body of %s is not JSON", uuids[i]))
			return
		}
	}
	writeRawJSON(w, http.StatusOK, jsonArray(out))
}

// jsonArray joins documents into a JSON array as they are: json.Marshal
// would re-encode each (compact it, escape <, > and &), and a signed vCon
// must be answered as its signer wrote it.
func jsonArray(items []json.RawMessage) []byte {
	n := 2
	for _, it := range items {
		n += len(it) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, it...)
	}
	return append(b, ']')
}

// GET /api/vcon?page&size&since&until → uuids, newest first.
func (s *Server) listVcons(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r, s.opts.SortedSet)
	page := q.integer("page", 1, 1, maxPage)
	size := q.integer("size", 50, 1, maxPageSize)
	since := epochBound(q, "since", "-inf")
	until := epochBound(q, "until", "+inf")
	if !q.ok(w) {
		return
	}
	members, err := s.rdb.ZRevRangeByScore(r.Context(), s.opts.SortedSet, &redis.ZRangeBy{
		Min: since, Max: until, Offset: int64(page-1) * int64(size), Count: int64(size),
	}).Result()
	if err != nil {
		s.internalError(w, r, "Failed to list vCons", err)
		return
	}
	out := make([]string, len(members))
	for i, m := range members {
		// conserver's read-through wrote bare uuids; both forms list.
		out[i] = strings.TrimPrefix(m, "vcon:")
	}
	writeJSON(w, http.StatusOK, out)
}

// epochBound reads since/until: epoch seconds or an ISO 8601 datetime, as
// FastAPI accepts for a datetime parameter. Bounds are inclusive.
func epochBound(q *query, name, def string) string {
	v, ok := q.single(name)
	if !ok {
		return def
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
		return strconv.FormatInt(int64(f), 10)
	}
	if t, ok := vcon.ParseTime(v); ok {
		return strconv.FormatInt(t.Unix(), 10)
	}
	q.fail(name, "datetime_parsing", "Input should be a valid datetime or epoch seconds, e.g. 2024-01-15T10:30:00Z")
	return def
}

// GET /api/vcons/search?tel=&mailto=&name= → uuids having every term given.
func (s *Server) searchVcons(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r, s.opts.SortedSet)
	var keys []string
	present := false
	for _, field := range []string{"tel", "mailto", "name"} {
		v, ok := q.single(field)
		if !ok {
			continue
		}
		present = true
		switch {
		case len(v) > maxSearchTermLen:
			q.fail(field, "string_too_long", "String should have at most 1024 characters")
		case v != "":
			keys = append(keys, field+":"+v)
		}
	}
	if !q.ok(w) {
		return
	}
	if !present {
		writeDetail(w, http.StatusBadRequest, "At least one search parameter must be provided")
		return
	}
	if len(keys) == 0 {
		writeJSON(w, http.StatusOK, []string{})
		return
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.SMembers(r.Context(), k)
	}
	if _, err := pipe.Exec(r.Context()); err != nil && !errors.Is(err, redis.Nil) {
		s.internalError(w, r, "An error occurred during the search", err)
		return
	}
	// A true AND: a uuid must be in every term's set.
	count := map[string]int{}
	for _, c := range cmds {
		for _, u := range c.Val() {
			count[u]++
		}
	}
	out := []string{}
	for u, n := range count {
		if n == len(keys) {
			out = append(out, u)
		}
	}
	sort.Strings(out)
	writeJSON(w, http.StatusOK, out)
}
