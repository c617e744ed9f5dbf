// Package autoscale decides how many workers a Chain's Deployment runs.
//
// The operator polls the Chain's Redis lists every couple of seconds, calls
// Decide and writes the result straight to the Deployment: there is no HPA in
// between, so 0↔N and 1↔N are decided here, in one place, from the whole
// picture (ingress, in-flight and dead letters) rather than from one list
// length. Decide is pure: the caller passes the time and keeps the State.
package autoscale

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/observer"
)

// Reasons are CamelCase so that they can be used as-is in a
// metav1.Condition and in Events.
const (
	ReasonDisabled         = "Disabled"
	ReasonInvalidPolicy    = "InvalidPolicy"
	ReasonStale            = "Stale"
	ReasonScaledUp         = "ScaledUp"
	ReasonScaledDown       = "ScaledDown"
	ReasonScaleDownDelayed = "ScaleDownDelayed"
	ReasonAtMaxReplicas    = "AtMaxReplicas"
	ReasonDLQStorm         = "DLQStorm"
	ReasonIdle             = "Idle"
	ReasonSteady           = "Steady"
	// ReasonBelowActivation: no worker runs and the queue has not reached
	// ActivationQueueDepth nor waited ActivationDelay yet.
	ReasonBelowActivation = "BelowActivation"
	// ReasonLinkLimit: a link's limits bind, and more workers than they
	// can use would only wait for permits.
	ReasonLinkLimit = "LinkLimit"
)

const (
	// StormWindow is how far back dead-letter growth is compared with
	// throughput. A minute spans enough polls to smooth out a single batch of
	// failures, and is short enough that scale-up resumes soon after the
	// downstream recovers.
	StormWindow = time.Minute

	// StormMinDeadLetters is the dead-letter growth within StormWindow below
	// which there is no storm whatever the ratio. Queue lengths only bound
	// throughput from below (see detectStorm), so without this floor a few
	// malformed vCons during a growing backlog would freeze scale-up.
	StormMinDeadLetters = 10

	// maxSamples bounds the storm history when the caller polls faster than
	// expected; the window then covers fewer seconds, which only makes the
	// detector slower to trigger.
	maxSamples = 64

	// maxPeaks bounds the scale-down window. It only fills when demand falls
	// in many small steps within one ScaleDownDelay; merging then errs on
	// the side of keeping replicas longer.
	maxPeaks = 32
)

// Policy is a Chain's scaling configuration.
type Policy struct {
	// Enabled false means the chain runs no workers at all.
	Enabled bool
	// MinReplicas may be 0: an idle chain then costs nothing.
	MinReplicas int32
	MaxReplicas int32
	// TargetQueueDepth is how many work items (queued plus in-flight) one
	// replica is expected to absorb.
	TargetQueueDepth int64
	// Concurrency is how many vCons one worker processes at once. It sets
	// the in-flight floor: ceil(inFlight/Concurrency) workers are busy and
	// are not removed.
	Concurrency int32
	// ScaleDownDelay is how long demand must stay lower before replicas are
	// removed. Scale-up is never delayed.
	ScaleDownDelay time.Duration
	// ActivationQueueDepth is how many vCons must be queued before a first
	// worker starts from zero; 0 or 1 is any. It only holds a chain at zero:
	// once a worker runs, scaling follows the figures.
	ActivationQueueDepth int64
	// ActivationDelay, when positive, starts a first worker anyway once the
	// oldest queued vCon has waited that long, however few are queued.
	ActivationDelay time.Duration
	// Schedules replace MinReplicas and MaxReplicas while they are active
	// (Bounds).
	Schedules []Schedule
	// Links are the limits of the Chain's links that have them, as the
	// Links specify them now (a raised limit counts before the workers
	// roll).
	Links []LinkLimit
}

// LinkLimit is one link's limits; 0 leaves a dimension unlimited.
type LinkLimit struct {
	Link                                              string
	RequestsPerMinute, TokensPerMinute, MaxConcurrent int64
}

// Validate reports the first inconsistency in an enabled policy. The CRD
// validates the same rules; this is the defence for objects that predate a
// rule or bypassed admission.
func (p Policy) Validate() error {
	switch {
	case p.MinReplicas < 0:
		return fmt.Errorf("minReplicas is %d; set it to 0 or more", p.MinReplicas)
	case p.MaxReplicas < 1:
		return fmt.Errorf("maxReplicas is %d; an enabled chain needs at least 1 (disable the chain to run none)", p.MaxReplicas)
	case p.MaxReplicas < p.MinReplicas:
		return fmt.Errorf("maxReplicas %d is below minReplicas %d; raise maxReplicas or lower minReplicas", p.MaxReplicas, p.MinReplicas)
	case p.TargetQueueDepth < 1:
		return fmt.Errorf("targetQueueDepth is %d; set it to 1 or more", p.TargetQueueDepth)
	case p.Concurrency < 1:
		return fmt.Errorf("concurrency is %d; set it to 1 or more", p.Concurrency)
	case p.ScaleDownDelay < 0:
		return errors.New("scaleDownDelay is negative; set it to 0 or a positive duration")
	case p.ActivationQueueDepth < 0:
		return fmt.Errorf("activationQueueDepth is %d; set it to 0 or more", p.ActivationQueueDepth)
	case p.ActivationDelay < 0:
		return errors.New("activationDelay is negative; set it to 0 or a positive duration")
	}
	for _, s := range p.Schedules {
		switch {
		case s.MinReplicas < 0:
			return fmt.Errorf("schedule %s: minReplicas is %d; set it to 0 or more", s.Name, s.MinReplicas)
		case s.MaxReplicas < 1:
			return fmt.Errorf("schedule %s: maxReplicas is %d; set it to 1 or more", s.Name, s.MaxReplicas)
		case s.MaxReplicas < s.MinReplicas:
			return fmt.Errorf("schedule %s: maxReplicas %d is below minReplicas %d; raise maxReplicas or lower minReplicas", s.Name, s.MaxReplicas, s.MinReplicas)
		}
	}
	return nil
}

// State is what Decide remembers between calls for one Chain. The zero value
// is the state of a Chain never seen before. Keep one per Chain in memory and
// pass back the State that Decide returned; Decide never modifies the State
// it is given, so a caller may keep an old one (for example after a failed
// Deployment update) and retry with it. Its size is bounded.
type State struct {
	// samples are the fresh observations within StormWindow, oldest first.
	samples []sample
	// peaks is a sliding-window maximum of the replicas needed over the last
	// ScaleDownDelay: wants strictly decrease from front to back, the back
	// is the latest observation.
	peaks []peak
	// since is when the current unbroken run of fresh observations began.
	// Before since+ScaleDownDelay we have not watched demand long enough to
	// say it stayed lower, so nothing is removed (after an operator restart
	// or a Redis outage as much as at creation).
	since time.Time
}

type sample struct {
	at      time.Time
	backlog int64 // ingress + in-flight
	dlq     int64
}

type peak struct {
	want int64
	// until is when the next observation replaced this one, zero for the
	// latest. The scale-down delay is counted from there: a want stops
	// holding replicas ScaleDownDelay after demand was first seen lower.
	until time.Time
}

// Decision is what to do with the Deployment.
type Decision struct {
	// Replicas is the count to set on the Deployment.
	Replicas int32
	// Desired is what the figures call for before MinReplicas, MaxReplicas
	// and the DLQ storm hold: max(ceil(work/TargetQueueDepth),
	// ceil(inFlight/Concurrency)). It equals Replicas for Stale and
	// InvalidPolicy decisions, which do not read the figures.
	Desired int32
	Reason  string
	// Message is a sentence for a condition or an Event.
	Message string
	// MaxReplicas is the maximum in force: the policy's, or the highest
	// of the open schedules'. 0 when disabled.
	MaxReplicas int32
	// Limited is Desired > MaxReplicas, for a ScalingLimited condition.
	Limited bool
	// LimitedBy, when set, is the link whose limits bind: Desired is what
	// they can use, below what the queues call for.
	LimitedBy *LimitBinding
	// DLQStorm is set while dead letters grow as fast as vCons finish. It is
	// reported even when Reason is about a scale-down, so that a condition
	// can track it separately.
	DLQStorm bool
}

// Decide returns the replica count for a Chain's workers given its policy,
// the latest observation (the observer's, as measured), the time now (at
// which the policy's schedules are read: the observation may be a poll
// old), the replicas currently set on the Deployment, and the State
// returned by the previous call. An observation that is stale or not
// measured yet changes nothing.
//
// MinReplicas and MaxReplicas below are those in force now (Bounds). From
// zero, a first worker waits for ActivationQueueDepth queued vCons or for
// the oldest to have waited ActivationDelay, unless the minimum asks for
// workers or vCons are in flight.
//
// Scale-up is immediate, to ceil((ingress+inFlight)/TargetQueueDepth) capped
// at MaxReplicas; any work starts a worker unless activation holds it. Scale-down waits until
// demand has stayed lower for ScaleDownDelay and then goes to the highest
// demand seen during that delay, never below the workers busy with in-flight
// vCons. While the DLQ is growing as fast as vCons finish the fault is
// downstream, and more workers would only fail faster: no replicas are added
// then, except one from zero so that work is still attempted.
func Decide(p Policy, obs observer.Observation, now time.Time, current int32, st State) (Decision, State) {
	current = max(current, 0)
	if !p.Enabled {
		return Decision{
			Reason:  ReasonDisabled,
			Message: "the chain is disabled, so it runs no workers",
		}, State{}
	}
	if err := p.Validate(); err != nil {
		return Decision{
			Replicas:    current,
			Desired:     current,
			MaxReplicas: p.MaxReplicas,
			Reason:      ReasonInvalidPolicy,
			Message:     fmt.Sprintf("keeping %s because the scaling policy is invalid: %v", replicas(current), err),
		}, st
	}
	var schedules []string
	p.MinReplicas, p.MaxReplicas, schedules = p.Bounds(now)
	if !obs.Fresh() {
		// Demand during the outage (or before the first poll) is unknown, so it cannot count towards
		// "stayed lower": the scale-down clock starts again afterwards.
		st.since = time.Time{}
		st.peaks = nil
		return Decision{
			Replicas:    current,
			Desired:     current,
			MaxReplicas: p.MaxReplicas,
			Reason:      ReasonStale,
			Message:     fmt.Sprintf("keeping %s until the queue figures can be read again", replicas(current)),
		}, st
	}

	ingress, inFlight, dlq := max(obs.Ingress, 0), max(obs.InFlight, 0), max(obs.DLQ, 0)
	work := addSaturating(ingress, inFlight)
	busy := ceilDiv(inFlight, int64(p.Concurrency))
	need := max(ceilDiv(work, p.TargetQueueDepth), busy)
	binding := limitBinding(p, obs)
	if binding != nil && binding.Replicas < need {
		binding.Wanted = need
		need = binding.Replicas
	} else {
		binding = nil
	}

	st = st.record(obs.At, sample{at: obs.At, backlog: work, dlq: dlq}, need, p.ScaleDownDelay)
	storm, stormy := detectStorm(st.samples)

	d := Decision{
		Desired:     toInt32(need),
		MaxReplicas: p.MaxReplicas,
		Limited:     need > int64(p.MaxReplicas),
		LimitedBy:   binding,
		DLQStorm:    stormy,
	}
	want := clamp(need, p)
	// The oldest vCon has waited at least OldestAge at the poll, and the
	// time since.
	oldest := max(obs.OldestAge, 0) + max(now.Sub(obs.At), 0)
	belowActivation := current == 0 && want > 0 && p.MinReplicas == 0 && inFlight == 0 &&
		ingress < p.ActivationQueueDepth && (p.ActivationDelay <= 0 || oldest < p.ActivationDelay)
	if belowActivation {
		want = 0
	}
	target := current
	switch {
	case want > current:
		target = want
		if stormy {
			// Min, the busy floor and a first worker are not "more
			// capacity for failing work", so the hold does not apply to
			// them.
			var first int32
			if work > 0 {
				first = 1
			}
			target = min(want, max(current, p.MinReplicas, clamp(busy, p), first))
		}
	case want < current:
		target = min(current, p.MaxReplicas)
		if peak := clamp(st.windowPeak(), p); peak < target && obs.At.Sub(st.since) >= p.ScaleDownDelay {
			target = peak
		}
	}
	d.Replicas = target

	switch {
	case target < current && work == 0 && target == p.MinReplicas:
		d.Reason = ReasonIdle
		d.Message = fmt.Sprintf("scaled from %d to %s, the minimum: nothing is queued or in flight and demand stayed at or below it for %s", current, replicas(target), p.ScaleDownDelay)
	case target < current && current > p.MaxReplicas && target == p.MaxReplicas:
		d.Reason = ReasonScaledDown
		d.Message = fmt.Sprintf("scaled from %d to %s, the new maximum", current, replicas(target))
	case target < current:
		d.Reason = ReasonScaledDown
		d.Message = fmt.Sprintf("scaled from %d to %s: demand stayed at or below that for %s (%d queued, %d in flight)", current, replicas(target), p.ScaleDownDelay, ingress, inFlight)
	case belowActivation:
		d.Reason = ReasonBelowActivation
		d.Message = fmt.Sprintf("no worker runs yet: %d queued, below activationQueueDepth %d", ingress, p.ActivationQueueDepth)
		if p.ActivationDelay > 0 {
			d.Message += fmt.Sprintf(", and the oldest has waited %s of activationDelay %s", oldest.Round(time.Second), p.ActivationDelay)
		}
	case stormy:
		d.Reason = ReasonDLQStorm
		d.Message = fmt.Sprintf("the DLQ grew by %d in %s (%.1f/min) out of at least %d vCons finished, so a downstream store or API is likely failing; ",
			storm.deadLettered, storm.span.Round(time.Second), storm.perMinute(), storm.finished)
		if want > target {
			d.Message += fmt.Sprintf("running %s instead of the %d demand calls for, as more workers would only fail faster", replicas(target), want)
		} else {
			d.Message += fmt.Sprintf("running %s and adding none while it lasts", replicas(target))
		}
	case binding != nil && target == clamp(need, p) && !d.Limited:
		d.Reason = ReasonLinkLimit
		d.Message = fmt.Sprintf("running %s, what %s can use, while %d queued and %d in-flight vCons call for %d: more workers would only wait for its permits",
			replicas(target), binding.Describe(), ingress, inFlight, binding.Wanted)
	case d.Limited && target == p.MaxReplicas:
		d.Reason = ReasonAtMaxReplicas
		d.Message = fmt.Sprintf("running %s, the maximum, while %d queued and %d in-flight vCons call for %d", replicas(target), ingress, inFlight, d.Desired)
	case target > current:
		d.Reason = ReasonScaledUp
		d.Message = fmt.Sprintf("scaled from %d to %s for %d queued and %d in-flight vCons", current, replicas(target), ingress, inFlight)
	case want < current:
		wait := st.scaleDownAt(current, p).Sub(obs.At).Round(time.Second)
		d.Reason = ReasonScaleDownDelayed
		d.Message = fmt.Sprintf("demand calls for %s; keeping %d for up to %s more so that a returning burst does not flap the Deployment", replicas(want), current, wait)
	case work == 0 && target == p.MinReplicas:
		d.Reason = ReasonIdle
		d.Message = fmt.Sprintf("nothing is queued or in flight; running %s, the minimum", replicas(target))
	default:
		d.Reason = ReasonSteady
		d.Message = fmt.Sprintf("running %s for %d queued and %d in-flight vCons", replicas(target), ingress, inFlight)
	}
	if schedules != nil {
		d.Message += fmt.Sprintf(" (minimum %d and maximum %d from the schedule %s)", p.MinReplicas, p.MaxReplicas, strings.Join(schedules, ", "))
	}
	return d, st
}

// LimitBinding is a link whose limits bind a Chain's scaling.
type LimitBinding struct {
	Link string
	// Limit is the dimension that binds ("requests", "tokens" or
	// "concurrency"), PerMinute the rate the budget allows now (after the
	// vendor's 429s; for concurrency, the permits).
	Limit     string
	PerMinute float64
	// Replicas are what the limit can use; Wanted what the queues call
	// for.
	Replicas, Wanted int64
}

// Describe names the link and the limit, for messages.
func (b LimitBinding) Describe() string {
	switch b.Limit {
	case "concurrency":
		return fmt.Sprintf("link %s's limit of %.0f concurrent calls", b.Link, b.PerMinute)
	case "tokens":
		return fmt.Sprintf("link %s's limit of %.0f tokens/min", b.Link, b.PerMinute)
	}
	return fmt.Sprintf("link %s's limit of %.0f requests/min", b.Link, b.PerMinute)
}

// limitBinding is the link whose limits allow the fewest replicas, nil
// when none binds. A limit binds while the Chain's vCons wait for its
// permits. Its replicas follow from Little's law: the slots not waiting
// for a permit are what the achieved rate needs, and the limit allows
// headroom times that (the budget's rate over the achieved one, or its
// permits over those in use: 1 while it binds as set, more right after a
// raise), spread over Concurrency slots a worker.
func limitBinding(p Policy, obs observer.Observation) *LimitBinding {
	var waiting int64
	for _, u := range obs.Links {
		waiting += max(u.Waiting, 0)
	}
	working := max(obs.InFlight-waiting, 0)
	var best *LimitBinding
	for _, u := range obs.Links {
		if u.Waiting <= 0 {
			continue
		}
		var lim LinkLimit
		for _, l := range p.Links {
			if l.Link == u.Link {
				lim = l
			}
		}
		b := LimitBinding{Link: u.Link}
		headroom := math.Inf(1)
		consider := func(limit string, allowed, used float64) {
			if allowed <= 0 || used <= 0 {
				return
			}
			if r := allowed / used; r < headroom {
				headroom, b.Limit, b.PerMinute = r, limit, allowed
			}
		}
		factor := u.Factor
		if factor <= 0 || factor > 1 {
			factor = 1
		}
		if u.RatesKnown {
			consider("requests", float64(lim.RequestsPerMinute)*factor, u.RequestsPerMinute)
			consider("tokens", float64(lim.TokensPerMinute)*factor, u.TokensPerMinute)
		}
		consider("concurrency", float64(lim.MaxConcurrent), float64(u.InUse))
		if math.IsInf(headroom, 1) {
			// Waiting, but nothing measured yet to say for what: hold the
			// workers that are working.
			headroom = 1
			switch {
			case lim.RequestsPerMinute > 0:
				b.Limit, b.PerMinute = "requests", float64(lim.RequestsPerMinute)*factor
			case lim.TokensPerMinute > 0:
				b.Limit, b.PerMinute = "tokens", float64(lim.TokensPerMinute)*factor
			default:
				b.Limit, b.PerMinute = "concurrency", float64(lim.MaxConcurrent)
			}
		}
		b.Replicas = max(int64(math.Ceil(float64(working)*headroom/float64(p.Concurrency))), 1)
		if best == nil || b.Replicas < best.Replicas {
			best = &b
		}
	}
	return best
}

// record returns st with a fresh observation added. It copies the slices so
// that the State the caller passed in stays valid.
func (st State) record(at time.Time, s sample, need int64, delay time.Duration) State {
	if n := len(st.samples); (n > 0 && at.Before(st.samples[n-1].at)) || at.Before(st.since) {
		// The clock went backwards: no duration in the history can be
		// trusted, so start over rather than scale down early.
		st = State{}
	}
	if st.since.IsZero() {
		st.since = at
	}

	keep := st.samples
	for len(keep) > 0 && at.Sub(keep[0].at) > StormWindow {
		keep = keep[1:]
	}
	if len(keep) >= maxSamples {
		keep = keep[len(keep)-maxSamples+1:]
	}
	samples := make([]sample, 0, len(keep)+1)
	st.samples = append(append(samples, keep...), s)

	peaks := append(make([]peak, 0, len(st.peaks)+1), st.peaks...)
	if n := len(peaks); n > 0 {
		peaks[n-1].until = at
	}
	for len(peaks) > 0 && at.Sub(peaks[0].until) >= delay {
		peaks = peaks[1:]
	}
	for len(peaks) > 0 && peaks[len(peaks)-1].want <= need {
		peaks = peaks[:len(peaks)-1]
	}
	peaks = append(peaks, peak{want: need})
	for len(peaks) > maxPeaks {
		// The front expires first, so stretching it over its successor
		// overstates demand for the shortest time.
		peaks[1].want = peaks[0].want
		peaks = peaks[1:]
	}
	st.peaks = peaks
	return st
}

// windowPeak is the highest need seen within the last ScaleDownDelay.
func (st State) windowPeak() int64 {
	if len(st.peaks) == 0 {
		return 0
	}
	return st.peaks[0].want
}

// scaleDownAt is the earliest time at which some replicas could go if demand
// stays as low as it is now.
func (st State) scaleDownAt(current int32, p Policy) time.Time {
	at := st.since.Add(p.ScaleDownDelay)
	for _, pk := range st.peaks {
		if !pk.until.IsZero() && clamp(pk.want, p) >= current {
			at = later(at, pk.until.Add(p.ScaleDownDelay))
		}
	}
	return at
}

type dlqStorm struct {
	deadLettered int64
	finished     int64
	span         time.Duration
}

func (s dlqStorm) perMinute() float64 {
	if s.span <= 0 {
		return 0
	}
	return float64(s.deadLettered) / s.span.Minutes()
}

// detectStorm compares dead-letter growth with vCons finished over the
// samples. Only list lengths are known, so the vCons finished between two
// polls are estimated from below: at least the backlog drop (arrivals can
// only hide completions), and at least the DLQ growth (every dead letter is
// a finished vCon). Summing per interval rather than end to end keeps a
// drain followed by a new burst from cancelling out, and a DLQ replayed back
// into ingress from counting as negative failures. A storm is at least half
// of the finished vCons dead-lettered, and at least StormMinDeadLetters.
func detectStorm(samples []sample) (dlqStorm, bool) {
	if len(samples) < 2 {
		return dlqStorm{}, false
	}
	var s dlqStorm
	for i := 1; i < len(samples); i++ {
		prev, cur := samples[i-1], samples[i]
		grew := max(cur.dlq-prev.dlq, 0)
		drained := max(prev.backlog-cur.backlog, 0)
		s.deadLettered += grew
		s.finished += max(grew, drained)
	}
	s.span = samples[len(samples)-1].at.Sub(samples[0].at)
	return s, s.deadLettered >= StormMinDeadLetters && 2*s.deadLettered >= s.finished
}

func clamp(n int64, p Policy) int32 {
	return int32(min(max(n, int64(p.MinReplicas)), int64(p.MaxReplicas)))
}

func ceilDiv(n, d int64) int64 {
	q := n / d
	if n%d != 0 {
		q++
	}
	return q
}

func addSaturating(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func toInt32(n int64) int32 {
	return int32(min(n, math.MaxInt32))
}

func replicas(n int32) string {
	if n == 1 {
		return "1 replica"
	}
	return fmt.Sprintf("%d replicas", n)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
