package autoscale

import (
	"strings"
	"testing"
	"time"
)

// poll is one reconcile at now of the figures measured at at, with the
// oldest queued vCon oldest old then.
type poll struct {
	at, now           time.Time
	ingress, inFlight int64
	oldest            time.Duration

	want   int32
	reason string
	msgHas string
}

func runPolls(t *testing.T, p Policy, current int32, polls []poll) {
	t.Helper()
	var st State
	for i, pl := range polls {
		obs := observed(pl.at, pl.ingress, pl.inFlight, 0, false)
		obs.OldestAge = pl.oldest
		now := pl.now
		if now.IsZero() {
			now = pl.at
		}
		var d Decision
		d, st = Decide(p, obs, now, current, st)
		if d.Replicas != pl.want || d.Reason != pl.reason || !strings.Contains(d.Message, pl.msgHas) {
			t.Fatalf("poll %d (%s, current %d): got replicas=%d reason=%s (%q), want replicas=%d reason=%s with %q",
				i, now, current, d.Replicas, d.Reason, d.Message, pl.want, pl.reason, pl.msgHas)
		}
		current = d.Replicas
	}
}

func TestDecideActivation(t *testing.T) {
	const s = time.Second
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	depth := func(n int64, delay time.Duration) Policy {
		return with(basePolicy(), func(p *Policy) { p.ActivationQueueDepth, p.ActivationDelay = n, delay })
	}
	tests := []struct {
		name    string
		policy  Policy
		current int32
		polls   []poll
	}{
		{
			name:   "the default wakes on a single vCon",
			policy: depth(0, 0),
			polls:  []poll{{at: at(0), ingress: 1, want: 1, reason: ReasonScaledUp}},
		},
		{
			name:   "no worker until the depth is reached",
			policy: depth(10, 0),
			polls: []poll{
				{at: at(0), ingress: 9, oldest: time.Hour, want: 0, reason: ReasonBelowActivation, msgHas: "9 queued, below activationQueueDepth 10"},
				{at: at(2 * s), ingress: 10, want: 1, reason: ReasonScaledUp},
			},
		},
		{
			name:   "a large batch scales in one call once it activates",
			policy: depth(10, 0),
			polls:  []poll{{at: at(0), ingress: 35, want: 4, reason: ReasonScaledUp}},
		},
		{
			name:   "the oldest vCon's wait activates below the depth",
			policy: depth(10, time.Minute),
			polls: []poll{
				{at: at(0), ingress: 3, oldest: 30 * s, want: 0, reason: ReasonBelowActivation, msgHas: "waited 30s of activationDelay 1m0s"},
				{at: at(28 * s), ingress: 3, oldest: 58 * s, want: 0, reason: ReasonBelowActivation},
				{at: at(30 * s), ingress: 3, oldest: time.Minute, want: 1, reason: ReasonScaledUp},
			},
		},
		{
			name:   "the wait counts on past the poll to the reconcile",
			policy: depth(10, time.Minute),
			polls: []poll{
				{at: at(0), now: at(5 * s), ingress: 3, oldest: 54 * s, want: 0, reason: ReasonBelowActivation},
				{at: at(0), now: at(6 * s), ingress: 3, oldest: 54 * s, want: 1, reason: ReasonScaledUp},
			},
		},
		{
			name:   "once running, activation no longer applies",
			policy: depth(10, 0),
			polls: []poll{
				{at: at(0), ingress: 20, want: 2, reason: ReasonScaledUp},
				{at: at(10 * s), ingress: 3, want: 2, reason: ReasonScaleDownDelayed},
				{at: at(10*s + 5*time.Minute), ingress: 3, want: 1, reason: ReasonScaledDown},
				{at: at(11*s + 5*time.Minute), ingress: 0, want: 1, reason: ReasonScaleDownDelayed},
				{at: at(11*s + 10*time.Minute), ingress: 0, want: 0, reason: ReasonIdle},
				{at: at(12*s + 10*time.Minute), ingress: 3, want: 0, reason: ReasonBelowActivation},
			},
		},
		{
			name:   "in-flight vCons get their workers whatever the depth",
			policy: depth(10, 0),
			polls:  []poll{{at: at(0), inFlight: 3, want: 2, reason: ReasonScaledUp}},
		},
		{
			name:   "a minimum above zero is not held by activation",
			policy: with(depth(10, 0), func(p *Policy) { p.MinReplicas = 1 }),
			polls:  []poll{{at: at(0), ingress: 3, want: 1, reason: ReasonScaledUp}},
		},
		{
			name:   "nothing queued is idle, not below activation",
			policy: depth(10, time.Minute),
			polls:  []poll{{at: at(0), want: 0, reason: ReasonIdle}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runPolls(t, tt.policy, tt.current, tt.polls) })
	}
}

func TestDecideSchedules(t *testing.T) {
	berlin := zone(t, "Europe/Berlin")
	// 2025-06-02 is a Monday; Berlin is UTC+2 then.
	mon := func(h, m, s int) time.Time { return time.Date(2025, 6, 2, h, m, s, 0, berlin) }
	business := with(basePolicy(), func(p *Policy) {
		p.Schedules = []Schedule{mustSchedule(t, "0 9 * * 1-5", "0 17 * * 1-5", "Europe/Berlin", 3, 20)}
	})
	night := with(basePolicy(), func(p *Policy) {
		p.Schedules = []Schedule{mustSchedule(t, "0 22 * * *", "0 6 * * *", "Europe/Berlin", 0, 2)}
	})
	tests := []struct {
		name    string
		policy  Policy
		current int32
		polls   []poll
	}{
		{
			name:   "business hours raise the minimum at nine, on a figure a poll old",
			policy: business,
			polls: []poll{
				{at: mon(8, 59, 58), want: 0, reason: ReasonIdle},
				{at: mon(8, 59, 58), now: mon(9, 0, 0), want: 3, reason: ReasonScaledUp, msgHas: "minimum 3 and maximum 20 from the schedule"},
				{at: mon(12, 0, 0), ingress: 150, want: 15, reason: ReasonScaledUp},
				{at: mon(12, 0, 2), ingress: 250, want: 20, reason: ReasonAtMaxReplicas},
				{at: mon(12, 0, 4), want: 20, reason: ReasonScaleDownDelayed},
				{at: mon(16, 0, 0), want: 3, reason: ReasonIdle},
			},
		},
		{
			name:    "after hours the minimum goes once demand stayed lower for the delay",
			policy:  business,
			current: 3,
			polls: []poll{
				{at: mon(16, 50, 0), want: 3, reason: ReasonIdle},
				{at: mon(16, 59, 59), want: 3, reason: ReasonIdle},
				{at: mon(17, 0, 0), want: 0, reason: ReasonIdle},
			},
		},
		{
			name:    "a schedule's end waits for the scale-down delay of a fresh run",
			policy:  business,
			current: 3,
			polls: []poll{
				{at: mon(17, 0, 0), want: 3, reason: ReasonScaleDownDelayed},
				{at: mon(17, 5, 0), want: 0, reason: ReasonIdle},
			},
		},
		{
			name:    "the night maximum cuts at once, like a lowered maxReplicas",
			policy:  night,
			current: 8,
			polls: []poll{
				{at: mon(21, 59, 0), ingress: 80, want: 8, reason: ReasonSteady},
				{at: mon(22, 0, 0), ingress: 80, want: 2, reason: ReasonScaledDown, msgHas: "new maximum"},
				{at: time.Date(2025, 6, 3, 6, 0, 0, 0, berlin), ingress: 80, want: 8, reason: ReasonScaledUp},
			},
		},
		{
			name:   "a schedule's minimum starts workers whatever the activation depth",
			policy: with(business, func(p *Policy) { p.ActivationQueueDepth = 100 }),
			polls: []poll{
				{at: mon(8, 0, 0), ingress: 5, want: 0, reason: ReasonBelowActivation},
				{at: mon(9, 0, 0), ingress: 5, want: 3, reason: ReasonScaledUp},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runPolls(t, tt.policy, tt.current, tt.polls) })
	}
}

func TestValidateSchedules(t *testing.T) {
	s := mustSchedule(t, "0 9 * * *", "0 17 * * *", "UTC", 0, 1)
	tests := []struct {
		name    string
		edit    func(*Policy)
		wantErr string
	}{
		{name: "negative activation depth", edit: func(p *Policy) { p.ActivationQueueDepth = -1 }, wantErr: "activationQueueDepth"},
		{name: "negative activation delay", edit: func(p *Policy) { p.ActivationDelay = -time.Second }, wantErr: "activationDelay"},
		{name: "schedule max below min", edit: func(p *Policy) { s := s; s.MinReplicas, s.MaxReplicas = 5, 3; p.Schedules = []Schedule{s} }, wantErr: "below minReplicas 5"},
		{name: "schedule max zero", edit: func(p *Policy) { s := s; s.MaxReplicas = 0; p.Schedules = []Schedule{s} }, wantErr: "maxReplicas is 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := with(basePolicy(), tt.edit).Validate()
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}
