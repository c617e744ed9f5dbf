package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sample is one reading of a budget, for the operator: monotonic counters
// (since the budget's keys were created) and the state now.
type Sample struct {
	// At is Redis's clock at the reading.
	At time.Time
	// Factor is the share of the configured rates the vendor's feedback
	// allows now (1 when it has not throttled recently).
	Factor float64
	// Granted and Tokens count the permits granted and the tokens charged
	// to every party; PartyGranted the permits of the party read.
	Granted, Tokens, PartyGranted int64
	// InUse is the concurrency permits held by live leases.
	InUse int64
	// Waiting is how many of the party's calls wait for a permit.
	Waiting int64
	// Throttled counts the vendor's 429s reported to the budget.
	Throttled int64
}

// MeasureCmd is a budget reading queued on a pipeline.
type MeasureCmd struct{ cmd *redis.Cmd }

// QueueMeasure queues a reading of budget for party on pipe, so the
// operator reads it in the same round trip as its queue figures.
func QueueMeasure(ctx context.Context, pipe redis.Pipeliner, budget, party string) *MeasureCmd {
	return &MeasureCmd{cmd: measureScript.Eval(ctx, pipe, Keys(budget), party)}
}

// Result is the reading, once the pipeline ran.
func (m *MeasureCmd) Result() (Sample, error) {
	v, err := m.cmd.Int64Slice()
	if err != nil {
		return Sample{}, err
	}
	if len(v) != 8 {
		return Sample{}, fmt.Errorf("unexpected budget reading %v", v)
	}
	return Sample{
		At: time.UnixMilli(v[0]), Factor: float64(v[1]) / 1e6,
		Granted: v[2], Tokens: v[3], PartyGranted: v[4], InUse: v[5], Waiting: v[6], Throttled: v[7],
	}, nil
}

// Rates are what a budget achieved between two readings, per minute.
type Rates struct {
	Requests, Tokens float64
}

// RatesBetween is the rates from prev to cur; false when they cannot be
// told: no time passed, or the counters went back (Redis restarted or the
// budget's keys expired).
func RatesBetween(prev, cur Sample) (Rates, bool) {
	dt := cur.At.Sub(prev.At)
	if dt <= 0 || cur.Granted < prev.Granted {
		return Rates{}, false
	}
	perMin := float64(time.Minute) / float64(dt)
	return Rates{
		Requests: float64(cur.Granted-prev.Granted) * perMin,
		Tokens:   float64(max(cur.Tokens-prev.Tokens, 0)) * perMin,
	}, true
}
