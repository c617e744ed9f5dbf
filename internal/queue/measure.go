package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// List kinds, as the operator labels them in redis_list_length{kind}.
const (
	KindIngress = "ingress"
	KindDLQ     = "dlq"
	KindEgress  = "egress"
	// KindRetry is the set of vCons waiting for a delayed retry.
	KindRetry = "retry"
	// KindStorageDLQ is a storage's DLQ, DLQ:storage:{name}: writes that
	// failed while their vCon went on. Its list label matches DLQ:.* as
	// the vCon DLQs do, so the alerts and panels on those see it too.
	KindStorageDLQ = "storage_dlq"
)

// Target is what to measure for one chain.
type Target struct {
	Ingress []string
	Egress  []string
	// Storages are the chain's storages, whose DLQs are measured. A
	// storage's DLQ belongs to the storage (conserver's layout), so every
	// chain on this Redis writing to a storage of that name sees it.
	Storages []string
}

// ListDepth is the length of one Redis list, named by its exact key.
type ListDepth struct {
	List   string
	Kind   string
	Length int64
	// OldestAge is how long the oldest vCon of an ingress list has waited
	// (0 for an empty list and for other kinds): a lower bound, short by
	// at most one measurement interval.
	OldestAge time.Duration
}

// Depths is where one chain's vCons are.
type Depths struct {
	Ingress, InFlight, DLQ, Egress int64
	// StorageDLQ is the total length of the chain's storages' DLQs.
	StorageDLQ int64
	// Retry counts the vCons waiting for a delayed retry; NextRetry is how
	// long until the first of them is due (-1 when none waits). Due
	// retries were moved to their ingress lists by this measurement
	// (Promoted), so they count as Ingress.
	Retry     int64
	NextRetry time.Duration
	Promoted  int64
	// OldestAge is the longest wait of the oldest vCon over the ingress
	// lists (ListDepth.OldestAge).
	OldestAge time.Duration
	// Reaped is how many orphaned in-flight items this measurement returned
	// to the ingress lists.
	Reaped int64
	Lists  []ListDepth
}

// ReapAndMeasure returns the work of dead workers and the due retries to
// the ingress lists and then measures every target on one Redis, in ONE pipelined round trip
// (one per node on a cluster), however many chains: per ingress list a
// script that reaps orphaned work and counts ingress and in-flight, plus
// LLEN of each DLQ, storage DLQ and egress list. It is a write, not only a read: the
// reap rides along so that work of dead workers returns even while no
// worker of the chain is running, and Depths.Reaped says how much moved.
func ReapAndMeasure(ctx context.Context, rdb redis.UniversalClient, targets []Target) ([]Depths, error) {
	pipe := rdb.Pipeline()
	m := QueueReapAndMeasure(ctx, pipe, targets)
	if pipe.Len() == 0 {
		return make([]Depths, len(targets)), nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("measure queues: %w", err)
	}
	return m.Depths()
}

// Measurement is ReapAndMeasure queued on a pipeline, so that a caller
// can read more in the same round trip (the observer reads the Links'
// budgets).
type Measurement struct {
	targets    []Target
	ingress    [][]ingressCmds
	egress     [][]*redis.IntCmd
	storageDLQ [][]*redis.IntCmd
}

type ingressCmds struct {
	reapAndMeasure *redis.Cmd
	dlq            *redis.IntCmd
}

// QueueReapAndMeasure queues what ReapAndMeasure sends on pipe; read the
// figures with Depths once the pipeline ran.
func QueueReapAndMeasure(ctx context.Context, pipe redis.Pipeliner, targets []Target) *Measurement {
	m := &Measurement{
		targets: targets, ingress: make([][]ingressCmds, len(targets)),
		egress: make([][]*redis.IntCmd, len(targets)), storageDLQ: make([][]*redis.IntCmd, len(targets)),
	}
	for i, t := range targets {
		for _, l := range t.Ingress {
			m.ingress[i] = append(m.ingress[i], ingressCmds{
				reapAndMeasure: reapAndMeasureScript.Eval(ctx, pipe, []string{WorkersKey(l), l, StateKey(l), RetryKey(l), AgeKey(l)}, InFlightPrefix(l), DeadWorkerRetention.Milliseconds(), promoteBatch),
				dlq:            pipe.LLen(ctx, DLQKey(l)),
			})
		}
		for _, l := range t.Egress {
			m.egress[i] = append(m.egress[i], pipe.LLen(ctx, l))
		}
		for _, s := range t.Storages {
			m.storageDLQ[i] = append(m.storageDLQ[i], pipe.LLen(ctx, StorageDLQKey(s)))
		}
	}
	return m
}

// Depths are the figures of every target, in order.
func (m *Measurement) Depths() ([]Depths, error) {
	targets, ingress, egress := m.targets, m.ingress, m.egress
	out := make([]Depths, len(targets))
	for i, t := range targets {
		d := &out[i]
		d.NextRetry = -1
		for j, l := range t.Ingress {
			vals, err := ingress[i][j].reapAndMeasure.Int64Slice()
			if err != nil || len(vals) != 7 {
				return nil, fmt.Errorf("measure %s: unexpected reply %v: %w", l, vals, err)
			}
			dlq := ingress[i][j].dlq.Val()
			d.Ingress += vals[0]
			d.InFlight += vals[1]
			d.Reaped += vals[2]
			d.Retry += vals[3]
			if next := time.Duration(vals[4]) * time.Millisecond; vals[4] >= 0 && (d.NextRetry < 0 || next < d.NextRetry) {
				d.NextRetry = next
			}
			d.Promoted += vals[5]
			age := time.Duration(vals[6]) * time.Millisecond
			d.OldestAge = max(d.OldestAge, age)
			d.DLQ += dlq
			d.Lists = append(d.Lists,
				ListDepth{List: l, Kind: KindIngress, Length: vals[0], OldestAge: age},
				ListDepth{List: DLQKey(l), Kind: KindDLQ, Length: dlq},
				ListDepth{List: RetryKey(l), Kind: KindRetry, Length: vals[3]})
		}
		for j, l := range t.Egress {
			n := egress[i][j].Val()
			d.Egress += n
			d.Lists = append(d.Lists, ListDepth{List: l, Kind: KindEgress, Length: n})
		}
		for j, s := range t.Storages {
			n := m.storageDLQ[i][j].Val()
			d.StorageDLQ += n
			d.Lists = append(d.Lists, ListDepth{List: StorageDLQKey(s), Kind: KindStorageDLQ, Length: n})
		}
	}
	return out, nil
}
