package autoscale

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// cronParser reads the five standard fields only: no seconds, no
// descriptors such as @daily or @every (a window needs two instants, not a
// period), so a schedule reads the same here as in a crontab.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// neverBefore is any instant: a cron that fires at all fires within the
// five years its Next looks ahead (29 February included).
var neverBefore = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Schedule is a window of time in which other replica bounds apply, such
// as more workers during business hours. A window opens when Start fires
// and closes when End fires, both read in Location. This is the shape of
// KEDA's cron scaler ({start, end, timezone}): two crons say when a window
// opens and when it closes without a duration to add up across midnight or
// a DST change, and a schedule that has no window (minReplicas and
// maxReplicas only) would not say when it ends.
type Schedule struct {
	// Name is the schedule as written (its start, end and time zone), for
	// messages.
	Name        string
	start, end  cron.Schedule
	location    *time.Location
	MinReplicas int32
	MaxReplicas int32
}

// ParseSchedule reads a schedule's crons and time zone. The error says what
// is wrong in words a Chain's author can act on.
func ParseSchedule(start, end, timeZone string, minReplicas, maxReplicas int32) (Schedule, error) {
	s := Schedule{
		Name:        fmt.Sprintf("%q to %q in %s", start, end, timeZone),
		MinReplicas: minReplicas,
		MaxReplicas: maxReplicas,
	}
	if timeZone == "" {
		return s, fmt.Errorf("schedule %s: timeZone is empty; name an IANA time zone such as Europe/Berlin or UTC", s.Name)
	}
	loc, err := time.LoadLocation(timeZone)
	if err != nil {
		return s, fmt.Errorf("schedule %s: timeZone %q is not an IANA time zone (such as Europe/Berlin or UTC): %v", s.Name, timeZone, err)
	}
	s.location = loc
	for _, c := range []struct {
		field, spec string
		into        *cron.Schedule
	}{{"start", start, &s.start}, {"end", end, &s.end}} {
		if strings.Contains(c.spec, "TZ=") {
			return s, fmt.Errorf("schedule %s: %s %q names a time zone; set it in timeZone instead", s.Name, c.field, c.spec)
		}
		parsed, err := cronParser.Parse(c.spec)
		if err != nil {
			return s, fmt.Errorf("schedule %s: %s %q is not a 5-field cron expression (minute hour day-of-month month day-of-week, such as \"0 9 * * 1-5\"): %v", s.Name, c.field, c.spec, err)
		}
		if parsed.Next(neverBefore).IsZero() {
			return s, fmt.Errorf("schedule %s: %s %q never fires (a day that no month has?)", s.Name, c.field, c.spec)
		}
		*c.into = parsed
	}
	return s, nil
}

// Active is whether t is within one of the schedule's windows: the start
// fired last, later than the end. A window is [start, end): active from
// the second its start fires, no longer from the second its end fires
// (when both fire at once, the end wins). A start that fires again within
// an open window changes nothing, and a window stays open until an end
// fires, however many days that takes. Firings are read in the schedule's
// time zone, so "0 9 * * 1-5" opens at nine on the wall clock whatever the
// UTC offset that day; a start in the hour a DST change skips does not
// fire that day, and one in the hour it repeats fires once.
//
// Looking back rather than ahead matters there: "the end fires before the
// next start" (KEDA's reading) would hold for the whole day before a
// skipped start, opening a window of a day.
func (s Schedule) Active(t time.Time) bool {
	if s.start == nil || s.end == nil {
		return false
	}
	started := previous(s.start, t.In(s.location))
	return !started.IsZero() && started.After(previous(s.end, t.In(s.location)))
}

// lookBack is how far previous searches: robfig/cron's Next looks five
// years ahead, and as far back finds any cron that fires at all.
const lookBack = 5 * 366 * 24 * time.Hour

// previous is the latest firing of c at or before t, zero when there is
// none within lookBack. cron only says what comes next, so this bisects
// for the last instant whose next firing is still at or before t: about
// 30 calls to Next, whatever the cron.
func previous(c cron.Schedule, t time.Time) time.Time {
	lo, hi := t.Add(-lookBack), t
	if next := c.Next(lo); next.IsZero() || next.After(t) {
		return time.Time{}
	}
	for hi.Sub(lo) > time.Second {
		mid := lo.Add(hi.Sub(lo) / 2)
		if c.Next(mid).After(t) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return c.Next(lo)
}

// nextChange is the first instant after t at which the schedule may open
// or close; zero when it never does.
func (s Schedule) nextChange(t time.Time) time.Time {
	if s.start == nil || s.end == nil {
		return time.Time{}
	}
	from := t.In(s.location)
	return earliest(s.start.Next(from), s.end.Next(from))
}

// Bounds are the minimum and maximum replicas in force at t: the policy's
// own outside every schedule; within schedules, the highest minReplicas
// and the highest maxReplicas of those active, so that one schedule never
// takes away capacity that another one asked for. A schedule replaces the
// policy's bounds rather than adding to them, so a night schedule can
// lower maxReplicas as much as a day schedule raises minReplicas.
func (p Policy) Bounds(t time.Time) (minReplicas, maxReplicas int32, active []string) {
	minReplicas, maxReplicas = -1, -1
	for _, s := range p.Schedules {
		if s.Active(t) {
			minReplicas = max(minReplicas, s.MinReplicas)
			maxReplicas = max(maxReplicas, s.MaxReplicas)
			active = append(active, s.Name)
		}
	}
	if active == nil {
		return p.MinReplicas, p.MaxReplicas, nil
	}
	return minReplicas, maxReplicas, active
}

// NextScheduleChange is the first instant after t at which a schedule
// opens or closes, so that the caller can decide again then without
// waiting for the queue to change; zero when the policy has no schedule
// that ever changes.
func (p Policy) NextScheduleChange(t time.Time) time.Time {
	var next time.Time
	for _, s := range p.Schedules {
		next = earliest(next, s.nextChange(t))
	}
	return next
}

// earliest is the earlier of two instants, a zero one meaning never.
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}
