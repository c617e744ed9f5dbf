package autoscale

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/observer"
	"github.com/vcon-operator/vcon-operator/internal/queue"
)

var t0 = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

func basePolicy() Policy {
	return Policy{
		Enabled:          true,
		MinReplicas:      0,
		MaxReplicas:      10,
		TargetQueueDepth: 10,
		Concurrency:      2,
		ScaleDownDelay:   5 * time.Minute,
	}
}

// observed is the observer's measurement of the figures at at; stale marks
// them as the last known ones, Redis being unreachable since.
func observed(at time.Time, ingress, inFlight, dlq int64, stale bool) observer.Observation {
	return observer.Observation{
		Depths:   queue.Depths{Ingress: ingress, InFlight: inFlight, DLQ: dlq},
		At:       at,
		Measured: true,
		Stale:    stale,
	}
}

func with(p Policy, edit func(*Policy)) Policy {
	edit(&p)
	return p
}

// step is one poll: the caller applies each decision to the Deployment, so
// the next step starts from the replicas the previous one decided.
type step struct {
	at                     time.Duration
	ingress, inFlight, dlq int64
	stale                  bool

	want    int32
	reason  string
	limited bool
	storm   bool
	msgHas  string
}

func TestDecideSequences(t *testing.T) {
	const m = time.Minute
	const s = time.Second
	tests := []struct {
		name    string
		policy  Policy
		current int32
		steps   []step
	}{
		{
			name:   "burst from zero scales in one call",
			policy: basePolicy(),
			steps: []step{
				{at: 0, ingress: 35, want: 4, reason: ReasonScaledUp},
				{at: 2 * s, ingress: 35, want: 4, reason: ReasonSteady},
			},
		},
		{
			name:   "a single queued vCon starts a worker",
			policy: basePolicy(),
			steps:  []step{{at: 0, ingress: 1, want: 1, reason: ReasonScaledUp}},
		},
		{
			name:   "in-flight work alone needs a worker per concurrency slot",
			policy: basePolicy(),
			steps:  []step{{at: 0, inFlight: 3, want: 2, reason: ReasonScaledUp}},
		},
		{
			name:   "capped at max and reported limited",
			policy: basePolicy(),
			steps: []step{
				{at: 0, ingress: 500, want: 10, reason: ReasonAtMaxReplicas, limited: true, msgHas: "call for 50"},
				{at: 2 * s, ingress: 500, want: 10, reason: ReasonAtMaxReplicas, limited: true},
				{at: 4 * s, ingress: 90, want: 10, reason: ReasonScaleDownDelayed},
			},
		},
		{
			name:   "scale-down waits for the delay then applies",
			policy: basePolicy(),
			steps: []step{
				{at: 0, ingress: 50, want: 5, reason: ReasonScaledUp},
				{at: 10 * s, ingress: 10, want: 5, reason: ReasonScaleDownDelayed, msgHas: "for up to 5m0s more"},
				{at: 10*s + 5*m - s, ingress: 10, want: 5, reason: ReasonScaleDownDelayed, msgHas: "for up to 1s more"},
				{at: 10*s + 5*m, ingress: 10, want: 1, reason: ReasonScaledDown},
			},
		},
		{
			name:   "a burst within the delay restarts it",
			policy: basePolicy(),
			steps: []step{
				{at: 0, ingress: 50, want: 5, reason: ReasonScaledUp},
				{at: 1 * m, ingress: 10, want: 5, reason: ReasonScaleDownDelayed},
				{at: 2 * m, ingress: 50, want: 5, reason: ReasonSteady},
				{at: 3 * m, ingress: 10, want: 5, reason: ReasonScaleDownDelayed},
				{at: 6 * m, ingress: 10, want: 5, reason: ReasonScaleDownDelayed},
				{at: 8*m - s, ingress: 10, want: 5, reason: ReasonScaleDownDelayed},
				{at: 8 * m, ingress: 10, want: 1, reason: ReasonScaledDown},
			},
		},
		{
			name:   "falling demand steps down to the highest demand within the delay",
			policy: basePolicy(),
			steps: []step{
				{at: 0, ingress: 100, want: 10, reason: ReasonScaledUp},
				{at: 1 * m, ingress: 60, want: 10, reason: ReasonScaleDownDelayed},
				{at: 2 * m, ingress: 20, want: 10, reason: ReasonScaleDownDelayed},
				{at: 6 * m, ingress: 20, want: 6, reason: ReasonScaledDown},
				{at: 7 * m, ingress: 20, want: 2, reason: ReasonScaledDown},
				{at: 8 * m, ingress: 20, want: 2, reason: ReasonSteady},
			},
		},
		{
			name:   "idle scales to zero after the delay",
			policy: basePolicy(),
			steps: []step{
				{at: 0, ingress: 5, want: 1, reason: ReasonScaledUp},
				{at: 1 * s, want: 1, reason: ReasonScaleDownDelayed},
				{at: 5*m + 1*s - 1, want: 1, reason: ReasonScaleDownDelayed},
				{at: 5*m + 1*s, want: 0, reason: ReasonIdle},
				{at: 6 * m, want: 0, reason: ReasonIdle},
				{at: 6*m + 2*s, ingress: 1, want: 1, reason: ReasonScaledUp},
			},
		},
		{
			name:   "idle keeps min 1",
			policy: with(basePolicy(), func(p *Policy) { p.MinReplicas = 1 }),
			steps: []step{
				{at: 0, want: 1, reason: ReasonScaledUp},
				{at: 2 * s, ingress: 30, want: 3, reason: ReasonScaledUp},
				{at: 4 * s, want: 3, reason: ReasonScaleDownDelayed},
				{at: 4*s + 5*m, want: 1, reason: ReasonIdle},
				{at: 6 * m, want: 1, reason: ReasonIdle},
			},
		},
		{
			name:    "min 2 holds while demand is lower",
			policy:  with(basePolicy(), func(p *Policy) { p.MinReplicas = 2 }),
			current: 2,
			steps: []step{
				{at: 0, ingress: 5, want: 2, reason: ReasonSteady},
				{at: 2 * s, want: 2, reason: ReasonIdle},
				{at: 10 * m, want: 2, reason: ReasonIdle},
			},
		},
		{
			name:    "workers busy with in-flight vCons are not removed",
			policy:  basePolicy(),
			current: 10,
			steps: []step{
				{at: 0, inFlight: 12, want: 10, reason: ReasonScaleDownDelayed},
				{at: 5 * m, inFlight: 12, want: 6, reason: ReasonScaledDown},
				{at: 10 * m, inFlight: 12, want: 6, reason: ReasonSteady},
				{at: 10*m + 2*s, want: 6, reason: ReasonScaleDownDelayed},
				{at: 15*m + 2*s, want: 0, reason: ReasonIdle},
			},
		},
		{
			name: "the busy floor outweighs a large target on the way down",
			policy: with(basePolicy(), func(p *Policy) {
				p.TargetQueueDepth = 100
				p.Concurrency = 1
			}),
			steps: []step{
				{at: 0, ingress: 1000, want: 10, reason: ReasonScaledUp},
				{at: 10 * s, inFlight: 8, want: 10, reason: ReasonScaleDownDelayed},
				{at: 10*s + 5*m, inFlight: 8, want: 8, reason: ReasonScaledDown},
			},
		},
		{
			name:    "DLQ storm holds replicas until the DLQ stops growing",
			policy:  with(basePolicy(), func(p *Policy) { p.MaxReplicas = 20 }),
			current: 2,
			steps: []step{
				{at: 0, ingress: 20, want: 2, reason: ReasonSteady},
				{at: 10 * s, ingress: 20, inFlight: 4, dlq: 15, want: 2, reason: ReasonDLQStorm, storm: true,
					msgHas: "grew by 15 in 10s (90.0/min)"},
				{at: 20 * s, ingress: 250, dlq: 30, want: 2, reason: ReasonDLQStorm, storm: true, limited: true,
					msgHas: "instead of the 20"},
				{at: 1 * m, ingress: 250, dlq: 30, want: 2, reason: ReasonDLQStorm, storm: true, limited: true},
				{at: 1*m + 25*s, ingress: 250, dlq: 30, want: 20, reason: ReasonAtMaxReplicas, limited: true},
			},
		},
		{
			name:    "a large but stable DLQ does not hold scale-up",
			policy:  with(basePolicy(), func(p *Policy) { p.MaxReplicas = 20 }),
			current: 2,
			steps: []step{
				{at: 0, ingress: 20, dlq: 500, want: 2, reason: ReasonSteady},
				{at: 10 * s, ingress: 20, inFlight: 4, dlq: 500, want: 3, reason: ReasonScaledUp},
				{at: 20 * s, ingress: 250, dlq: 500, want: 20, reason: ReasonAtMaxReplicas, limited: true},
			},
		},
		{
			name:    "a trickle of dead letters is not a storm",
			policy:  with(basePolicy(), func(p *Policy) { p.MaxReplicas = 20 }),
			current: 2,
			steps: []step{
				{at: 0, ingress: 20, want: 2, reason: ReasonSteady},
				{at: 10 * s, ingress: 20, inFlight: 4, dlq: StormMinDeadLetters - 1, want: 3, reason: ReasonScaledUp},
			},
		},
		{
			name:   "dead letters well below throughput are not a storm",
			policy: with(basePolicy(), func(p *Policy) { p.MaxReplicas = 20 }),
			steps: []step{
				{at: 0, ingress: 100, want: 10, reason: ReasonScaledUp},
				{at: 10 * s, ingress: 50, dlq: 20, want: 10, reason: ReasonScaleDownDelayed},
				{at: 20 * s, ingress: 300, dlq: 25, want: 20, reason: ReasonAtMaxReplicas, limited: true},
			},
		},
		{
			name:    "half of the finished vCons dead-lettered is a storm",
			policy:  with(basePolicy(), func(p *Policy) { p.MaxReplicas = 20 }),
			current: 10,
			steps: []step{
				{at: 0, ingress: 100, want: 10, reason: ReasonSteady},
				{at: 10 * s, ingress: 60, dlq: 20, want: 10, reason: ReasonDLQStorm, storm: true},
				{at: 20 * s, ingress: 300, dlq: 20, want: 10, reason: ReasonDLQStorm, storm: true, limited: true},
			},
		},
		{
			name:   "a storm still starts one worker from zero",
			policy: basePolicy(),
			steps: []step{
				{at: 0, want: 0, reason: ReasonIdle},
				{at: 10 * s, ingress: 50, dlq: 20, want: 1, reason: ReasonDLQStorm, storm: true},
				{at: 20 * s, ingress: 60, dlq: 40, want: 1, reason: ReasonDLQStorm, storm: true},
			},
		},
		{
			name:    "a storm does not block scale-down",
			policy:  with(basePolicy(), func(p *Policy) { p.MaxReplicas = 20 }),
			current: 10,
			steps: []step{
				{at: 0, ingress: 100, want: 10, reason: ReasonSteady},
				{at: 10 * s, dlq: 100, want: 10, reason: ReasonDLQStorm, storm: true, msgHas: "adding none"},
				{at: 5 * m, dlq: 120, want: 10, reason: ReasonScaleDownDelayed},
				{at: 5*m + 10*s, dlq: 140, want: 0, reason: ReasonIdle, storm: true},
			},
		},
		{
			name:   "stale figures change nothing",
			policy: basePolicy(),
			steps: []step{
				{at: 0, ingress: 50, want: 5, reason: ReasonScaledUp},
				{at: 10 * s, stale: true, want: 5, reason: ReasonStale},
				{at: 20 * s, stale: true, ingress: 500, want: 5, reason: ReasonStale},
			},
		},
		{
			name:   "stale figures do not start workers",
			policy: basePolicy(),
			steps:  []step{{at: 0, stale: true, ingress: 50, want: 0, reason: ReasonStale}},
		},
		{
			name:   "a Redis outage restarts the scale-down clock",
			policy: basePolicy(),
			steps: []step{
				{at: 0, ingress: 50, want: 5, reason: ReasonScaledUp},
				{at: 1 * m, want: 5, reason: ReasonScaleDownDelayed},
				{at: 3 * m, stale: true, want: 5, reason: ReasonStale},
				{at: 6 * m, want: 5, reason: ReasonScaleDownDelayed},
				{at: 11*m - s, want: 5, reason: ReasonScaleDownDelayed},
				{at: 11 * m, want: 0, reason: ReasonIdle},
			},
		},
		{
			name:    "max lowered below current applies at once",
			policy:  basePolicy(),
			current: 15,
			steps: []step{
				{at: 0, ingress: 150, want: 10, reason: ReasonScaledDown, limited: true, msgHas: "new maximum"},
			},
		},
		{
			name:    "min raised above current applies at once",
			policy:  with(basePolicy(), func(p *Policy) { p.MinReplicas = 3 }),
			current: 1,
			steps:   []step{{at: 0, want: 3, reason: ReasonScaledUp}},
		},
		{
			name:   "a clock going backwards restarts the delay",
			policy: basePolicy(),
			steps: []step{
				{at: 10 * m, ingress: 50, want: 5, reason: ReasonScaledUp},
				{at: 5 * m, want: 5, reason: ReasonScaleDownDelayed},
				{at: 10*m - s, want: 5, reason: ReasonScaleDownDelayed},
				{at: 10 * m, want: 0, reason: ReasonIdle},
			},
		},
		{
			name:   "no delay scales down at once",
			policy: with(basePolicy(), func(p *Policy) { p.ScaleDownDelay = 0 }),
			steps: []step{
				{at: 0, ingress: 50, want: 5, reason: ReasonScaledUp},
				{at: 2 * s, ingress: 10, want: 1, reason: ReasonScaledDown},
				{at: 4 * s, want: 0, reason: ReasonIdle},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var st State
			current := tt.current
			for i, s := range tt.steps {
				obs := observed(t0.Add(s.at), s.ingress, s.inFlight, s.dlq, s.stale)
				var d Decision
				d, st = Decide(tt.policy, obs, obs.At, current, st)
				if d.Replicas != s.want || d.Reason != s.reason || d.Limited != s.limited || d.DLQStorm != s.storm {
					t.Fatalf("step %d (t+%s, current %d): got replicas=%d reason=%s limited=%t storm=%t (%q), want replicas=%d reason=%s limited=%t storm=%t",
						i, s.at, current, d.Replicas, d.Reason, d.Limited, d.DLQStorm, d.Message, s.want, s.reason, s.limited, s.storm)
				}
				if !strings.Contains(d.Message, s.msgHas) {
					t.Fatalf("step %d: message %q does not contain %q", i, d.Message, s.msgHas)
				}
				current = d.Replicas
			}
		})
	}
}

func TestDecideSingleCall(t *testing.T) {
	tests := []struct {
		name    string
		policy  Policy
		obs     observer.Observation
		current int32
		want    Decision // Message is checked only for being non-empty
	}{
		{
			name:    "disabled runs no workers whatever the queue",
			policy:  with(basePolicy(), func(p *Policy) { p.Enabled = false }),
			obs:     observed(t0, 1000, 0, 0, false),
			current: 5,
			want:    Decision{Replicas: 0, Reason: ReasonDisabled},
		},
		{
			name:    "disabled wins over an invalid policy",
			policy:  Policy{MaxReplicas: -1},
			obs:     observed(t0, 1000, 0, 0, false),
			current: 5,
			want:    Decision{Replicas: 0, Reason: ReasonDisabled},
		},
		{
			name:    "invalid policy keeps current",
			policy:  with(basePolicy(), func(p *Policy) { p.MinReplicas, p.MaxReplicas = 5, 3 }),
			obs:     observed(t0, 1000, 0, 0, false),
			current: 4,
			want:    Decision{Replicas: 4, Desired: 4, MaxReplicas: 3, Reason: ReasonInvalidPolicy},
		},
		{
			name:    "negative current is read as zero",
			policy:  basePolicy(),
			obs:     observed(t0, 15, 0, 0, false),
			current: -3,
			want:    Decision{Replicas: 2, Desired: 2, MaxReplicas: 10, Reason: ReasonScaledUp},
		},
		{
			name:   "desired is uncapped and counts in-flight",
			policy: basePolicy(),
			obs:    observed(t0, 150, 1, 0, false),
			want:   Decision{Replicas: 10, Desired: 16, MaxReplicas: 10, Reason: ReasonAtMaxReplicas, Limited: true},
		},
		{
			name:   "huge figures saturate instead of overflowing",
			policy: with(basePolicy(), func(p *Policy) { p.TargetQueueDepth = 1 }),
			obs:    observed(t0, math.MaxInt64, math.MaxInt64, 0, false),
			want:   Decision{Replicas: 10, Desired: math.MaxInt32, MaxReplicas: 10, Reason: ReasonAtMaxReplicas, Limited: true},
		},
		{
			name:   "negative figures are read as zero",
			policy: basePolicy(),
			obs:    observed(t0, -5, -5, -5, false),
			want:   Decision{Replicas: 0, Desired: 0, MaxReplicas: 10, Reason: ReasonIdle},
		},
		{
			name:    "not measured yet keeps current",
			policy:  basePolicy(),
			obs:     observer.Observation{},
			current: 3,
			want:    Decision{Replicas: 3, Desired: 3, MaxReplicas: 10, Reason: ReasonStale},
		},
		{
			name:   "demand exactly at max is not limited",
			policy: basePolicy(),
			obs:    observed(t0, 100, 0, 0, false),
			want:   Decision{Replicas: 10, Desired: 10, MaxReplicas: 10, Reason: ReasonScaledUp},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := Decide(tt.policy, tt.obs, tt.obs.At, tt.current, State{})
			if got.Message == "" {
				t.Errorf("empty message")
			}
			got.Message = ""
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Policy)
		wantErr string
	}{
		{name: "valid", edit: func(*Policy) {}},
		{name: "min equals max", edit: func(p *Policy) { p.MinReplicas, p.MaxReplicas = 3, 3 }},
		{name: "negative min", edit: func(p *Policy) { p.MinReplicas = -1 }, wantErr: "minReplicas"},
		{name: "max zero", edit: func(p *Policy) { p.MaxReplicas = 0 }, wantErr: "at least 1"},
		{name: "max below min", edit: func(p *Policy) { p.MinReplicas, p.MaxReplicas = 4, 2 }, wantErr: "below minReplicas"},
		{name: "target zero", edit: func(p *Policy) { p.TargetQueueDepth = 0 }, wantErr: "targetQueueDepth"},
		{name: "concurrency zero", edit: func(p *Policy) { p.Concurrency = 0 }, wantErr: "concurrency"},
		{name: "negative delay", edit: func(p *Policy) { p.ScaleDownDelay = -time.Second }, wantErr: "scaleDownDelay"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := with(basePolicy(), tt.edit)
			err := p.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want one mentioning %q", err, tt.wantErr)
			}
			d, _ := Decide(p, observed(t0, 100, 0, 0, false), t0, 2, State{})
			if d.Replicas != 2 || d.Reason != ReasonInvalidPolicy || !strings.Contains(d.Message, tt.wantErr) {
				t.Fatalf("Decide with invalid policy: got %+v", d)
			}
		})
	}
}

// A slow ramp-down within one delay is the worst case for the scale-down
// window: every poll is a new, lower peak, so entries must be merged. The
// merged window may overstate demand, never understate it.
func TestStateStaysBoundedAndConservative(t *testing.T) {
	p := with(basePolicy(), func(p *Policy) {
		p.MaxReplicas = 1000
		p.TargetQueueDepth = 1
		p.ScaleDownDelay = 10 * time.Minute
	})
	type seen struct {
		at   time.Time
		need int64
	}
	var history []seen
	var st State
	current := int32(0)
	for i := 0; i < 1500; i++ {
		at := t0.Add(time.Duration(i) * 2 * time.Second)
		ingress := int64(max(0, 1000-i))
		history = append(history, seen{at, ingress})
		var d Decision
		d, st = Decide(p, observed(at, ingress, 0, int64(i), false), at, current, st)
		if len(st.samples) > maxSamples || len(st.peaks) > maxPeaks {
			t.Fatalf("step %d: state grew to %d samples, %d peaks", i, len(st.samples), len(st.peaks))
		}
		// A need holds until the next poll replaced it, and for the delay after.
		var truePeak int64
		for j, h := range history {
			if j == len(history)-1 || at.Sub(history[j+1].at) < p.ScaleDownDelay {
				truePeak = max(truePeak, h.need)
			}
		}
		if st.windowPeak() < truePeak {
			t.Fatalf("step %d: window peak %d below the true peak %d", i, st.windowPeak(), truePeak)
		}
		if int64(d.Replicas) < min(truePeak, int64(current)) {
			t.Fatalf("step %d: scaled from %d to %d while demand within the delay reached %d", i, current, d.Replicas, truePeak)
		}
		current = d.Replicas
	}
	if current != 0 {
		t.Fatalf("ended at %d replicas, want 0 once idle for the delay", current)
	}
}

func TestDecideDoesNotModifyGivenState(t *testing.T) {
	p := basePolicy()
	var st State
	for i := 0; i < 20; i++ {
		_, st = Decide(p, observed(t0.Add(time.Duration(i)*time.Second), int64(100-5*i), 0, int64(3*i), false), t0.Add(time.Duration(i)*time.Second), 10, st)
	}
	before := State{
		samples: append([]sample(nil), st.samples...),
		peaks:   append([]peak(nil), st.peaks...),
		since:   st.since,
	}
	next := observed(t0.Add(time.Hour), 0, 0, 0, false)
	first, _ := Decide(p, next, next.At, 10, st)
	if !reflect.DeepEqual(st, before) {
		t.Fatalf("Decide modified the state it was given")
	}
	second, _ := Decide(p, next, next.At, 10, st)
	if first != second {
		t.Fatalf("same inputs, different decisions: %+v and %+v", first, second)
	}
}

// fuzzZones are time zones with and without DST, on both sides of UTC.
var fuzzZones = []string{"UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata"}

// FuzzDecide drives random poll sequences through Decide, applying each
// decision as the operator would, and checks the invariants the rest of the
// operator relies on. The policy may have one schedule (from its start to
// its end hour every day, in one of fuzzZones) and an activation threshold.
func FuzzDecide(f *testing.F) {
	f.Add(int8(0), int8(10), uint8(10), uint8(2), uint16(300), uint8(0), uint16(0), uint32(0), []byte{1, 200, 0, 0, 1, 2, 0, 30, 0, 1, 200, 0, 0, 0, 1})
	f.Add(int8(1), int8(3), uint8(1), uint8(1), uint16(0), uint8(5), uint16(30), uint32(0x01020309), []byte{5, 9, 9, 50, 1, 5, 9, 9, 50, 7, 5, 0, 0, 50, 1})
	f.Add(int8(2), int8(2), uint8(5), uint8(4), uint16(60), uint8(50), uint16(0), uint32(0x0517090c), []byte{0, 0, 0, 0, 0, 255, 255, 255, 255, 255})
	f.Add(int8(3), int8(1), uint8(0), uint8(0), uint16(10), uint8(0), uint16(0), uint32(0), []byte{1, 2, 3, 4, 5})
	f.Add(int8(0), int8(4), uint8(10), uint8(2), uint16(60), uint8(20), uint16(90), uint32(0x03081608), []byte{200, 1, 0, 0, 7, 250, 2, 0, 0, 14, 100, 0, 0, 0, 21, 3, 30, 1, 0, 1})
	f.Fuzz(func(t *testing.T, minR, maxR int8, target, concurrency uint8, delaySeconds uint16, actDepth uint8, actDelaySeconds uint16, schedule uint32, steps []byte) {
		p := Policy{
			Enabled:              true,
			MinReplicas:          int32(minR),
			MaxReplicas:          int32(maxR),
			TargetQueueDepth:     int64(target),
			Concurrency:          int32(concurrency),
			ScaleDownDelay:       time.Duration(delaySeconds) * time.Second,
			ActivationQueueDepth: int64(actDepth),
			ActivationDelay:      time.Duration(actDelaySeconds) * time.Second,
		}
		// schedule's bytes: start hour, end hour, min, max (low 4 bits) and
		// zone (high 4 bits); zero is none.
		if schedule != 0 {
			b := []byte{byte(schedule >> 24), byte(schedule >> 16), byte(schedule >> 8), byte(schedule)}
			s, err := ParseSchedule(fmt.Sprintf("0 %d * * *", b[0]%24), fmt.Sprintf("30 %d * * *", b[1]%24),
				fuzzZones[int(b[3]>>4)%len(fuzzZones)], int32(b[2]%8), int32(b[3]&0x0f))
			if err != nil {
				t.Fatalf("parse the fuzzed schedule: %v", err)
			}
			p.Schedules = []Schedule{s}
		}
		valid := p.Validate() == nil
		var st State
		at := t0
		runStart := time.Time{} // first fresh observation since the last stale one
		current := int32(0)
		var dlq int64
		for len(steps) >= 5 {
			b := steps[:5]
			steps = steps[5:]
			at = at.Add(time.Duration(b[0]) * time.Second)
			if b[4]%7 == 0 {
				at = at.Add(time.Duration(b[0]) * time.Minute) // across a schedule's edges
			}
			dlq += int64(b[3] % 40)
			obs := observed(at, int64(b[1])*7, int64(b[2]), dlq, b[4]%11 == 0)
			obs.OldestAge = time.Duration(b[3]) * time.Second
			now := at.Add(time.Duration(b[4]%3) * time.Second) // the reconcile may come a little after the poll
			if b[4]%13 == 0 {
				current = int32(b[4] % 20) // someone scaled the Deployment by hand
			}

			d, next := Decide(p, obs, now, current, st)
			again, _ := Decide(p, obs, now, current, st)
			if d != again {
				t.Fatalf("same inputs, different decisions: %+v and %+v", d, again)
			}
			if len(next.samples) > maxSamples || len(next.peaks) > maxPeaks {
				t.Fatalf("state grew to %d samples, %d peaks", len(next.samples), len(next.peaks))
			}
			minNow, maxNow, _ := p.Bounds(now)
			switch {
			case !valid:
				if d.Replicas != current || d.Reason != ReasonInvalidPolicy {
					t.Fatalf("invalid policy: got %+v, want current %d kept", d, current)
				}
			case obs.Stale:
				runStart = time.Time{}
				if d.Replicas != current || d.Reason != ReasonStale {
					t.Fatalf("stale: got %+v, want current %d kept", d, current)
				}
			default:
				if runStart.IsZero() {
					runStart = at
				}
				busy := min(ceilDiv(obs.InFlight, int64(p.Concurrency)), int64(maxNow))
				if d.Replicas < minNow || d.Replicas > maxNow {
					t.Fatalf("replicas %d outside [%d, %d] in force at %s: %+v", d.Replicas, minNow, maxNow, now, d)
				}
				if int64(d.Replicas) < busy {
					t.Fatalf("replicas %d below the %d busy with %d in-flight vCons", d.Replicas, busy, obs.InFlight)
				}
				waited := obs.OldestAge + now.Sub(obs.At)
				below := obs.Ingress < p.ActivationQueueDepth && (p.ActivationDelay == 0 || waited < p.ActivationDelay)
				if current == 0 && minNow == 0 && obs.InFlight == 0 && below && d.Replicas != 0 {
					t.Fatalf("started %d workers from zero for %d queued (activation at %d), the oldest %s old (activation at %s)",
						d.Replicas, obs.Ingress, p.ActivationQueueDepth, waited, p.ActivationDelay)
				}
				if obs.Ingress+obs.InFlight > 0 && d.Replicas == 0 && !(current == 0 && below) {
					t.Fatalf("work waiting and no worker: %+v", d)
				}
				if d.Replicas < min(current, maxNow) && at.Sub(runStart) < p.ScaleDownDelay {
					t.Fatalf("scaled down from %d to %d only %s into a run of fresh figures (delay %s)", current, d.Replicas, at.Sub(runStart), p.ScaleDownDelay)
				}
				if d.DLQStorm && d.Replicas > max(current, minNow, int32(busy), 1) {
					t.Fatalf("DLQ storm yet scaled from %d to %d", current, d.Replicas)
				}
				if d.MaxReplicas != maxNow {
					t.Fatalf("decision says maximum %d, %d in force", d.MaxReplicas, maxNow)
				}
				if d.Limited != (int64(d.Desired) > int64(maxNow)) {
					t.Fatalf("limited %t with desired %d, max %d", d.Limited, d.Desired, maxNow)
				}
			}
			st = next
			current = d.Replicas
		}
	})
}
