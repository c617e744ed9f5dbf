// Package queueops is what `kubectl vcon` reads and does on a Chain's
// queues beyond conserver's API: live queue figures, where one vCon is,
// and the dead-letter replay by reason and purge (in internal/queue). The
// API serves it under PathPrefix, and the plugin runs the same functions
// against Redis itself when it can reach it, so both ways answer alike.
package queueops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// Routes under the API's root (/api). PathPrefix keeps them apart from
// conserver's routes, which stay as conserver has them.
const (
	PathPrefix = "/ops"
	// GET ?ingress_list=A&ingress_list=B&egress_list=C → Figures.
	PathQueues = PathPrefix + "/queues"
	// GET /ops/vcon/{uuid}?ingress_list=...&egress_list=... → Vcon.
	PathVcon = PathPrefix + "/vcon/"
	// POST ?ingress_list=X&reason=R&count=N&from_start=B → Moved.
	PathReplay = PathPrefix + "/dlq/replay"
	// POST ?ingress_list=X with a JSON array of uuids → Purged.
	PathPurge = PathPrefix + "/dlq/purge"
)

// MaxPurge bounds the uuids of one purge request.
const MaxPurge = 10_000

// Moved answers a replay; Purged a purge.
type Moved struct {
	Moved int `json:"moved"`
}

// Purged is how many DLQ entries a purge removed.
type Purged struct {
	Purged int `json:"purged"`
}

// ListFigure is the length of one key of a Chain's queues.
type ListFigure struct {
	Kind   string `json:"kind"`
	Key    string `json:"key"`
	Length int64  `json:"length"`
}

// Figures are a Chain's queue depths, measured now.
type Figures struct {
	Ingress  int64        `json:"ingress"`
	InFlight int64        `json:"inFlight"`
	Retry    int64        `json:"retry"`
	DLQ      int64        `json:"dlq"`
	Egress   int64        `json:"egress"`
	Lists    []ListFigure `json:"lists"`
}

// Measure counts the lists of t in two round trips, and only reads:
// unlike the operator's queue.ReapAndMeasure it returns no orphaned work
// and promotes no retry, so that looking changes nothing. The in-flight
// lists of workers whose heartbeat expired still count until the operator
// reaps them.
func Measure(ctx context.Context, rdb redis.UniversalClient, t queue.Target) (Figures, error) {
	f := Figures{Lists: []ListFigure{}}
	type ingressCmds struct {
		ingress, dlq *redis.IntCmd
		retry        *redis.IntCmd
		workers      *redis.StringSliceCmd
	}
	pipe := rdb.Pipeline()
	in := make([]ingressCmds, len(t.Ingress))
	for i, l := range t.Ingress {
		in[i] = ingressCmds{
			ingress: pipe.LLen(ctx, l),
			dlq:     pipe.LLen(ctx, queue.DLQKey(l)),
			retry:   pipe.ZCard(ctx, queue.RetryKey(l)),
			workers: pipe.ZRange(ctx, queue.WorkersKey(l), 0, -1),
		}
	}
	eg := make([]*redis.IntCmd, len(t.Egress))
	for i, l := range t.Egress {
		eg[i] = pipe.LLen(ctx, l)
	}
	if pipe.Len() == 0 {
		return f, nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return f, fmt.Errorf("measure queues: %w", err)
	}
	fpipe := rdb.Pipeline()
	type flight struct {
		key string
		cmd *redis.IntCmd
	}
	var flights []flight
	for i, l := range t.Ingress {
		c := in[i]
		f.Ingress += c.ingress.Val()
		f.DLQ += c.dlq.Val()
		f.Retry += c.retry.Val()
		f.Lists = append(f.Lists,
			ListFigure{Kind: queue.KindIngress, Key: l, Length: c.ingress.Val()},
			ListFigure{Kind: queue.KindRetry, Key: queue.RetryKey(l), Length: c.retry.Val()},
			ListFigure{Kind: queue.KindDLQ, Key: queue.DLQKey(l), Length: c.dlq.Val()})
		for _, id := range c.workers.Val() {
			k := queue.InFlightKey(l, id)
			flights = append(flights, flight{k, fpipe.LLen(ctx, k)})
		}
	}
	for i, l := range t.Egress {
		f.Egress += eg[i].Val()
		f.Lists = append(f.Lists, ListFigure{Kind: queue.KindEgress, Key: l, Length: eg[i].Val()})
	}
	if len(flights) > 0 {
		if _, err := fpipe.Exec(ctx); err != nil {
			return f, fmt.Errorf("measure in-flight lists: %w", err)
		}
		for _, fl := range flights {
			f.InFlight += fl.cmd.Val()
			f.Lists = append(f.Lists, ListFigure{Kind: queue.KindInFlight, Key: fl.key, Length: fl.cmd.Val()})
		}
	}
	return f, nil
}

// Vcon is what the queues and Redis hold of one vCon.
type Vcon struct {
	UUID string `json:"uuid"`
	queue.Whereabouts
	// Body is the document at vcon:{uuid}; absent when Redis holds none
	// (expired, or only in a storage). BodyTTLSeconds is its time to live,
	// absent when it has none.
	Body           json.RawMessage `json:"body,omitempty"`
	BodyTTLSeconds *int64          `json:"bodyTTLSeconds,omitempty"`
}

// Lookup finds uuid in the lists of t and reads its body from Redis only:
// a read through to a storage would cache the body again, and looking
// should change nothing.
func Lookup(ctx context.Context, rdb redis.UniversalClient, store *vconstore.Store, uuid string, t queue.Target) (Vcon, error) {
	w, err := queue.Locate(ctx, rdb, uuid, t)
	if err != nil {
		return Vcon{}, err
	}
	if w.Places == nil {
		w.Places = []queue.Place{}
	}
	v := Vcon{UUID: uuid, Whereabouts: w}
	body, err := store.Get(ctx, uuid)
	switch {
	case errors.Is(err, vconstore.ErrNotFound):
	case err != nil:
		return Vcon{}, err
	default:
		v.Body = json.RawMessage(append([]byte(nil), body.Data...))
		if !json.Valid(v.Body) {
			// Shown as text rather than failing the whole answer.
			v.Body, _ = json.Marshal(string(body.Data))
		}
		if body.PTTL >= 0 {
			s := int64(body.PTTL.Seconds())
			v.BodyTTLSeconds = &s
		}
	}
	return v, nil
}
