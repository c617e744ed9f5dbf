package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/apiwire"
	"github.com/vcon-operator/vcon-operator/internal/httpx"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/storage"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// eraseTimeout bounds one vCon's erasure, retries included, so that a
// storage that hangs answers the request with "failed" instead of never.
const eraseTimeout = 30 * time.Second

// erasePolicy retries each place's deletion: network errors and a storage
// that is briefly down are the usual failures, and an erasure the caller
// must repeat by hand is one that gets forgotten.
var erasePolicy = httpx.Policy{Retries: 3, Base: 200 * time.Millisecond, Max: 2 * time.Second, Jitter: true}

func finish(r *apiwire.ErasureReport) {
	r.Complete = r.Redis.Status != apiwire.Failed
	for _, s := range r.Storages {
		if s.Status == apiwire.Failed {
			r.Complete = false
		}
	}
}

// eraseVcon removes one vCon from the configured chains' queues, from every
// configured storage that can delete, then from Redis: its body, listing
// entry and party index sets. Storages go before the body so that a
// worker's read-through cannot bring back from a storage a body Redis has
// just lost; the party index keys come from whichever copy is found, so
// that a vCon whose Redis body had expired still leaves no index behind.
func (s *Server) eraseVcon(ctx context.Context, uuid string) apiwire.ErasureReport {
	ctx, cancel := context.WithTimeout(ctx, eraseTimeout)
	defer cancel()
	cfg := s.config.get(ctx)
	rep := apiwire.ErasureReport{UUID: uuid, Storages: make([]apiwire.ErasurePlace, len(cfg.storages))}

	indexKeys := map[string]bool{}
	addKeys := func(body []byte) {
		if v, err := vcon.Parse(body); err == nil {
			for _, k := range partyIndexKeys(v) {
				indexKeys[k] = true
			}
		}
	}
	var redisErr error
	if b, err := s.store.Get(ctx, uuid); err == nil {
		addKeys(b.Data)
	} else if !errors.Is(err, vconstore.ErrNotFound) && !errors.Is(err, vconstore.ErrWrongType) {
		redisErr = fmt.Errorf("read the body: %w", err)
	}
	// Off the queues first, so that no worker starts on the vCon from now
	// on; then ask whether one already holds it. One that finished before
	// this point wrote its storages before its outcome, so the deletes
	// below reach those copies. One that holds it now may write them again
	// when it finishes: that is reported, and the erasure must be repeated
	// after the chain's timeout.
	var held int64
	if redisErr == nil {
		if redisErr = s.dequeue(ctx, uuid, cfg.lists, &rep); redisErr == nil {
			held, redisErr = s.heldInFlight(ctx, uuid, cfg.lists)
		}
	}

	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, ns := range cfg.storages {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, body := eraseFromStorage(ctx, ns, uuid)
			mu.Lock()
			defer mu.Unlock()
			rep.Storages[i] = res
			if body != nil {
				addKeys(body)
			}
		}()
	}
	wg.Wait()

	switch {
	case redisErr != nil:
		rep.Redis = apiwire.ErasurePlace{Name: "redis", Status: apiwire.Failed, Reason: redisErr.Error(), Attempts: 1}
	default:
		rep.Redis = s.eraseFromRedis(ctx, uuid, slices.Sorted(mapKeys(indexKeys)), &rep)
		if held > 0 && rep.Redis.Status != apiwire.Failed {
			rep.Redis.Status = apiwire.Failed
			rep.Redis.Reason = fmt.Sprintf("a worker was processing the vCon (%d in-flight entries) and may write it again when it finishes: erase again after the chain's timeout", held)
		}
	}
	finish(&rep)
	for _, st := range rep.Storages {
		if st.Status == apiwire.Failed {
			// The uuid is not personal data; the reason may name a host.
			s.log.Warn("erasure: storage delete failed", "storage", st.Name, "uuid", uuid, "attempts", st.Attempts, "error", st.Reason)
		}
	}
	return rep
}

func mapKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// eraseFromStorage deletes the vCon from one storage, with retries. A
// storage that can read is asked first, to tell erased from absent and to
// learn the party index keys of a copy Redis no longer holds; the delete
// runs either way, since some storages keep more than one copy.
func eraseFromStorage(ctx context.Context, ns storage.Named, uuid string) (apiwire.ErasurePlace, []byte) {
	res := apiwire.ErasurePlace{Name: ns.Name}
	d, ok := ns.Storage.(storage.Deleter)
	if !ok {
		res.Status, res.Reason = apiwire.Unsupported, "this storage cannot delete: what it received is outside this system's reach"
		return res, nil
	}
	res.Status = apiwire.Erased
	var body []byte
	if g, ok := ns.Storage.(storage.Getter); ok {
		n, err := httpx.Retry(ctx, erasePolicy, func(ctx context.Context) error {
			b, err := g.Get(ctx, uuid)
			switch {
			case errors.Is(err, storage.ErrNotFound):
				res.Status = apiwire.Absent
				return nil
			case err != nil:
				return retryUnlessPermanent(err)
			}
			body = b
			return nil
		})
		res.Attempts += n
		if err != nil {
			// Not fatal: the delete below is what matters.
			res.Status = apiwire.Erased
		}
	}
	n, err := httpx.Retry(ctx, erasePolicy, func(ctx context.Context) error {
		err := d.Delete(ctx, uuid)
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		return retryUnlessPermanent(err)
	})
	res.Attempts += n
	if err != nil {
		res.Status, res.Reason = apiwire.Failed, err.Error()
	}
	return res, body
}

// retryUnlessPermanent marks a storage failure as worth trying again
// unless the storage said it never will pass.
func retryUnlessPermanent(err error) error {
	if err == nil || storage.IsPermanent(err) {
		return err
	}
	return httpx.Retryable(err, 0)
}

// dequeue takes the uuid off the configured chains' lists, their DLQs
// (with the recorded reasons) and delayed retries, and drops its trace
// records, in one round trip retried whole (every command is idempotent).
func (s *Server) dequeue(ctx context.Context, uuid string, lists []string, rep *apiwire.ErasureReport) error {
	if len(lists) == 0 {
		return nil
	}
	_, err := httpx.Retry(ctx, erasePolicy, func(ctx context.Context) error {
		pipe := s.rdb.Pipeline()
		var removed []*redis.IntCmd
		for _, l := range lists {
			removed = append(removed, pipe.LRem(ctx, l, 0, uuid), pipe.LRem(ctx, queue.DLQKey(l), 0, uuid), pipe.ZRem(ctx, queue.RetryKey(l), uuid))
			pipe.HDel(ctx, queue.DLQReasonsKey(l), uuid)
			pipe.Del(ctx, queue.ContextKey(l, uuid))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return httpx.Retryable(err, 0)
		}
		rep.QueueEntriesRemoved = 0
		for _, c := range removed {
			rep.QueueEntriesRemoved += c.Val()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("take the vCon off its queues: %w", err)
	}
	return nil
}

// heldInFlight counts the in-flight entries of the uuid: a worker of a
// configured chain took it and has not finished.
func (s *Server) heldInFlight(ctx context.Context, uuid string, lists []string) (int64, error) {
	var held int64
	for _, l := range lists {
		workers, err := s.rdb.ZRange(ctx, queue.WorkersKey(l), 0, -1).Result()
		if err != nil {
			return 0, fmt.Errorf("list the workers of %s: %w", l, err)
		}
		if len(workers) == 0 {
			continue
		}
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.IntCmd, len(workers))
		for i, w := range workers {
			cmds[i] = pipe.LPos(ctx, queue.InFlightKey(l, w), uuid, redis.LPosArgs{})
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return 0, fmt.Errorf("look for the vCon in flight on %s: %w", l, err)
		}
		for _, c := range cmds {
			if c.Err() == nil {
				held++
			}
		}
	}
	return held, nil
}

// eraseFromRedis removes the body, the listing entry and the index
// memberships in one round trip, retried whole.
func (s *Server) eraseFromRedis(ctx context.Context, uuid string, indexKeys []string, rep *apiwire.ErasureReport) apiwire.ErasurePlace {
	res := apiwire.ErasurePlace{Name: "redis"}
	n, err := httpx.Retry(ctx, erasePolicy, func(ctx context.Context) error {
		pipe := s.rdb.Pipeline()
		del := pipe.Del(ctx, vconstore.Key(uuid))
		removed := []*redis.IntCmd{pipe.ZRem(ctx, s.opts.SortedSet, indexMember(uuid), uuid)}
		for _, k := range indexKeys {
			removed = append(removed, pipe.SRem(ctx, k, uuid))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return httpx.Retryable(err, 0)
		}
		res.Status = apiwire.Absent
		if del.Val() > 0 {
			res.Status = apiwire.Erased
		}
		rep.IndexesRemoved = 0
		for _, c := range removed {
			rep.IndexesRemoved += c.Val()
		}
		return nil
	})
	res.Attempts = n
	if err != nil {
		res.Status, res.Reason = apiwire.Failed, err.Error()
	}
	return res
}

// DELETE /api/vcon/{uuid}: conserver answers 204 whatever happened. This
// answers 204 too when every place that can delete holds no copy and none
// cannot delete, so conserver's clients see what they always saw; with
// the report as JSON when the request accepts application/json. When a
// configured storage cannot delete (a webhook), 200 with the report: the
// erasure did what it could, and the caller must learn what it could not.
// When a place failed after its retries, 500 with the report: the request
// is safe to repeat.
func (s *Server) deleteVcon(w http.ResponseWriter, r *http.Request) {
	uuid, ok := pathUUID(w, r)
	if !ok {
		return
	}
	rep := s.eraseVcon(r.Context(), uuid)
	unreachable := false
	for _, st := range rep.Storages {
		unreachable = unreachable || st.Status == apiwire.Unsupported
	}
	switch {
	case !rep.Complete:
		writeJSON(w, http.StatusInternalServerError, rep)
	case unreachable || acceptsJSON(r):
		writeJSON(w, http.StatusOK, rep)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// acceptsJSON is true when the client named application/json itself; a
// client sending */* (or nothing, as conserver's do) keeps the 204.
func acceptsJSON(r *http.Request) bool {
	for _, a := range r.Header.Values("Accept") {
		for _, part := range strings.Split(a, ",") {
			mt, _, _ := strings.Cut(part, ";")
			if strings.EqualFold(strings.TrimSpace(mt), "application/json") {
				return true
			}
		}
	}
	return false
}

// POST /api/vcons/erase {"tel": "+15551234567"} or {"mailto": "a@b.example"}:
// finds the party's vCons through the party index and every storage that
// can search by party, erases each as DELETE /api/vcon/{uuid} does, and
// answers with a report per vCon: 200 when complete, 500 when a search or
// an erasure failed (repeating the request is safe). This endpoint is ours,
// so it always answers with the report.
func (s *Server) eraseParty(w http.ResponseWriter, r *http.Request) {
	data, ok := s.readBody(w, r)
	if !ok {
		return
	}
	var req apiwire.PartyErasure
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || dec.More() {
		writeInvalid(w, bodyError("model_type", `Input should be a JSON object, {"tel": "+15551234567"} or {"mailto": "a@b.example"}`))
		return
	}
	field, value := "tel", strings.TrimSpace(req.Tel)
	if m := strings.TrimSpace(req.Mailto); m != "" {
		if value != "" {
			writeInvalid(w, bodyError("value_error", "Give one of tel or mailto, not both"))
			return
		}
		field, value = "mailto", m
	}
	switch {
	case value == "":
		writeInvalid(w, bodyError("missing", "Give tel or mailto, e.g. {\"tel\": \"+15551234567\"}"))
		return
	case len(value) > maxSearchTermLen:
		writeInvalid(w, bodyError("string_too_long", "String should have at most 1024 characters"))
		return
	}
	ctx := r.Context()
	uuids := map[string]bool{}
	var searched []apiwire.ErasurePlace

	index := apiwire.ErasurePlace{Name: "redis party index", Status: apiwire.Erased}
	members, err := s.rdb.SMembers(ctx, field+":"+value).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		index.Status, index.Reason = apiwire.Failed, err.Error()
	}
	for _, u := range members {
		if vcon.ValidUUID(u) {
			uuids[strings.ToLower(u)] = true
		}
	}
	searched = append(searched, searchedResult(index, len(members)))
	for _, ns := range s.config.get(ctx).storages {
		res := apiwire.ErasurePlace{Name: ns.Name}
		ps, ok := ns.Storage.(storage.PartySearcher)
		if !ok {
			res.Status, res.Reason = apiwire.Unsupported, "this storage cannot search by party: erase its vCons by uuid"
			searched = append(searched, res)
			continue
		}
		var found []string
		n, err := httpx.Retry(ctx, erasePolicy, func(ctx context.Context) error {
			var err error
			found, err = ps.SearchParty(ctx, field, value)
			return retryUnlessPermanent(err)
		})
		res.Attempts = n
		if err != nil {
			res.Status, res.Reason = apiwire.Failed, err.Error()
		} else {
			res.Status = apiwire.Erased
			for _, u := range found {
				uuids[strings.ToLower(u)] = true
			}
		}
		searched = append(searched, searchedResult(res, len(found)))
	}

	out := apiwire.PartyErasureReport{Complete: true, Searched: searched, VCons: []apiwire.ErasureReport{}}
	for _, u := range slices.Sorted(mapKeys(uuids)) {
		rep := s.eraseVcon(ctx, u)
		out.VCons = append(out.VCons, rep)
		out.Complete = out.Complete && rep.Complete
	}
	for _, p := range searched {
		out.Complete = out.Complete && p.Status != apiwire.Failed
	}
	// Counts only: the party identifier is personal data.
	s.log.Info("erasure by party", "field", field, "vcons", len(out.VCons), "complete", out.Complete)
	code := http.StatusOK
	if !out.Complete {
		code = http.StatusInternalServerError
	}
	writeJSON(w, code, out)
}

// searchedResult turns a search into its report entry: "searched" with how
// many vCons it found, or the failure.
func searchedResult(p apiwire.ErasurePlace, found int) apiwire.ErasurePlace {
	if p.Status == apiwire.Erased {
		p.Status, p.Found = apiwire.Searched, found
	}
	return p
}
