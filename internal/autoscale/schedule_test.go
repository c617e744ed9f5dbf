package autoscale

import (
	"strings"
	"testing"
	"time"
)

func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func mustSchedule(t *testing.T, start, end, timeZone string, minR, maxR int32) Schedule {
	t.Helper()
	s, err := ParseSchedule(start, end, timeZone, minR, maxR)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestScheduleActive(t *testing.T) {
	berlin := zone(t, "Europe/Berlin")
	utc := time.UTC
	type at struct {
		t      time.Time
		active bool
	}
	tests := []struct {
		name           string
		start, end, tz string
		checks         []at
	}{
		{
			name: "business hours Monday to Friday", start: "0 9 * * 1-5", end: "0 17 * * 1-5", tz: "Europe/Berlin",
			checks: []at{
				{time.Date(2025, 6, 2, 8, 59, 59, 0, berlin), false}, // a Monday
				{time.Date(2025, 6, 2, 9, 0, 0, 0, berlin), true},
				{time.Date(2025, 6, 2, 16, 59, 59, 999, berlin), true},
				{time.Date(2025, 6, 2, 17, 0, 0, 0, berlin), false},
				{time.Date(2025, 6, 6, 12, 0, 0, 0, berlin), true},  // Friday
				{time.Date(2025, 6, 7, 12, 0, 0, 0, berlin), false}, // Saturday
				{time.Date(2025, 6, 2, 7, 0, 0, 0, utc), true},      // 09:00 CEST
				{time.Date(2025, 6, 2, 6, 59, 0, 0, utc), false},
			},
		},
		{
			name: "a window across midnight", start: "0 22 * * *", end: "0 6 * * *", tz: "UTC",
			checks: []at{
				{time.Date(2025, 1, 1, 21, 59, 59, 0, utc), false},
				{time.Date(2025, 1, 1, 22, 0, 0, 0, utc), true},
				{time.Date(2025, 1, 2, 0, 0, 0, 0, utc), true},
				{time.Date(2025, 1, 2, 5, 59, 59, 0, utc), true},
				{time.Date(2025, 1, 2, 6, 0, 0, 0, utc), false},
				{time.Date(2025, 1, 2, 12, 0, 0, 0, utc), false},
			},
		},
		{
			name: "a weekend window from Friday evening to Monday morning", start: "0 18 * * 5", end: "0 8 * * 1", tz: "UTC",
			checks: []at{
				{time.Date(2025, 6, 6, 17, 0, 0, 0, utc), false},
				{time.Date(2025, 6, 7, 3, 0, 0, 0, utc), true},
				{time.Date(2025, 6, 9, 7, 59, 0, 0, utc), true},
				{time.Date(2025, 6, 9, 8, 0, 0, 0, utc), false},
			},
		},
		{
			name: "nine on the wall clock on both sides of the spring DST change", start: "0 9 * * *", end: "0 17 * * *", tz: "Europe/Berlin",
			checks: []at{
				{time.Date(2025, 3, 29, 7, 59, 0, 0, utc), false}, // CET, UTC+1
				{time.Date(2025, 3, 29, 8, 0, 0, 0, utc), true},
				{time.Date(2025, 3, 30, 6, 59, 0, 0, utc), false}, // CEST, UTC+2
				{time.Date(2025, 3, 30, 7, 0, 0, 0, utc), true},
				{time.Date(2025, 3, 30, 14, 59, 0, 0, utc), true},
				{time.Date(2025, 3, 30, 15, 0, 0, 0, utc), false},
			},
		},
		{
			name: "a start in the hour spring skips does not open that day", start: "30 2 * * *", end: "0 4 * * *", tz: "Europe/Berlin",
			checks: []at{
				{time.Date(2025, 3, 29, 2, 45, 0, 0, berlin), true},
				{time.Date(2025, 3, 30, 1, 59, 0, 0, berlin), false},
				{time.Date(2025, 3, 30, 3, 30, 0, 0, berlin), false},
				{time.Date(2025, 3, 31, 2, 45, 0, 0, berlin), true},
			},
		},
		{
			name: "a start in the hour autumn repeats opens at its first pass", start: "30 2 * * *", end: "0 3 * * *", tz: "Europe/Berlin",
			checks: []at{
				{time.Date(2025, 10, 26, 0, 29, 0, 0, utc), false}, // 02:29 CEST
				{time.Date(2025, 10, 26, 0, 30, 0, 0, utc), true},  // 02:30 CEST
				{time.Date(2025, 10, 26, 1, 15, 0, 0, utc), true},  // 02:15 CET, the hour again
				{time.Date(2025, 10, 26, 2, 0, 0, 0, utc), false},  // 03:00 CET
			},
		},
		{
			name: "a start that fires again within the window changes nothing", start: "0 * * * *", end: "0 17 * * *", tz: "UTC",
			checks: []at{
				{time.Date(2025, 1, 1, 0, 0, 0, 0, utc), true},
				{time.Date(2025, 1, 1, 16, 59, 0, 0, utc), true},
				{time.Date(2025, 1, 1, 17, 0, 0, 0, utc), false},
				{time.Date(2025, 1, 1, 17, 59, 59, 0, utc), false},
				{time.Date(2025, 1, 1, 18, 0, 0, 0, utc), true},
			},
		},
		{
			name: "when start and end fire at once the end wins", start: "0 9 * * *", end: "0 9 * * *", tz: "UTC",
			checks: []at{
				{time.Date(2025, 1, 1, 9, 0, 0, 0, utc), false},
				{time.Date(2025, 1, 1, 12, 0, 0, 0, utc), false},
			},
		},
		{
			name: "a rare start is found far back", start: "0 0 29 2 *", end: "0 0 1 3 *", tz: "UTC",
			checks: []at{
				{time.Date(2028, 2, 29, 12, 0, 0, 0, utc), true},
				{time.Date(2028, 3, 1, 0, 0, 0, 0, utc), false},
				{time.Date(2027, 2, 28, 12, 0, 0, 0, utc), false},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustSchedule(t, tt.start, tt.end, tt.tz, 1, 5)
			for _, c := range tt.checks {
				if got := s.Active(c.t); got != c.active {
					t.Errorf("Active(%s) = %t, want %t", c.t, got, c.active)
				}
			}
		})
	}
}

func TestBoundsAndNextChange(t *testing.T) {
	utc := time.UTC
	p := basePolicy() // 0 to 10
	p.Schedules = []Schedule{
		mustSchedule(t, "0 9 * * 1-5", "0 17 * * 1-5", "UTC", 3, 10),
		mustSchedule(t, "0 12 * * *", "0 14 * * *", "UTC", 1, 20),
		mustSchedule(t, "0 22 * * *", "0 6 * * *", "UTC", 0, 2),
	}
	mon := func(h, m int) time.Time { return time.Date(2025, 6, 2, h, m, 0, 0, utc) }
	tests := []struct {
		at       time.Time
		min, max int32
		active   int
		next     time.Time
	}{
		{at: mon(8, 0), min: 0, max: 10, next: mon(9, 0)},
		{at: mon(9, 0), min: 3, max: 10, active: 1, next: mon(12, 0)},
		{at: mon(13, 0), min: 3, max: 20, active: 2, next: mon(14, 0)},
		{at: mon(14, 0), min: 3, max: 10, active: 1, next: mon(17, 0)},
		{at: mon(18, 0), min: 0, max: 10, next: mon(22, 0)},
		{at: mon(23, 0), min: 0, max: 2, active: 1, next: mon(24+6, 0)},
		{at: time.Date(2025, 6, 7, 13, 0, 0, 0, utc), min: 1, max: 20, active: 1, next: time.Date(2025, 6, 7, 14, 0, 0, 0, utc)}, // Saturday
	}
	for _, tt := range tests {
		minR, maxR, active := p.Bounds(tt.at)
		if minR != tt.min || maxR != tt.max || len(active) != tt.active {
			t.Errorf("Bounds(%s) = %d, %d, %v; want %d, %d with %d active", tt.at, minR, maxR, active, tt.min, tt.max, tt.active)
		}
		if got := p.NextScheduleChange(tt.at); !got.Equal(tt.next) {
			t.Errorf("NextScheduleChange(%s) = %s, want %s", tt.at, got, tt.next)
		}
	}
	if got := basePolicy().NextScheduleChange(mon(8, 0)); !got.IsZero() {
		t.Errorf("NextScheduleChange without schedules = %s, want zero", got)
	}
}

func TestParseSchedule(t *testing.T) {
	tests := []struct {
		name, start, end, tz string
		wantErr              string
	}{
		{name: "valid", start: "0 9 * * 1-5", end: "0 17 * * MON-FRI", tz: "America/New_York"},
		{name: "empty time zone", start: "0 9 * * *", end: "0 17 * * *", tz: "", wantErr: "timeZone is empty"},
		{name: "unknown time zone", start: "0 9 * * *", end: "0 17 * * *", tz: "Mars/Olympus", wantErr: "not an IANA time zone"},
		{name: "six fields", start: "0 0 9 * * *", end: "0 17 * * *", tz: "UTC", wantErr: "start \"0 0 9 * * *\" is not a 5-field cron"},
		{name: "descriptor", start: "@daily", end: "0 17 * * *", tz: "UTC", wantErr: "is not a 5-field cron"},
		{name: "out of range", start: "0 9 * * *", end: "0 25 * * *", tz: "UTC", wantErr: "end \"0 25 * * *\""},
		{name: "time zone in the cron", start: "CRON_TZ=UTC 0 9 * * *", end: "0 17 * * *", tz: "UTC", wantErr: "set it in timeZone"},
		{name: "never fires", start: "0 0 30 2 *", end: "0 17 * * *", tz: "UTC", wantErr: "never fires"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSchedule(tt.start, tt.end, tt.tz, 0, 1)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}
