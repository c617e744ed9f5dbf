package vcon

import (
	"strings"
	"time"
)

// createdAtLayouts are tried in order. Producers in the wild write Python's
// isoformat() (microseconds, "+00:00"), JavaScript's toISOString() ("Z"),
// SQL-style timestamps with a space, and offsets without a colon; conserver
// accepts all of them through pydantic, so refusing one would break a
// producer that works today. A timestamp without an offset is read as UTC,
// as pydantic does.
var createdAtLayouts = []string{
	"2006-01-02T15:04:05Z07:00",
	"2006-01-02T15:04:05Z0700",
	"2006-01-02T15:04:05Z07",
	"2006-01-02T15:04:05",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04",
	"2006-01-02",
}

// ParseTime reads an ISO-8601 / RFC 3339 timestamp leniently (see
// createdAtLayouts). Fractional seconds of any precision are accepted.
func ParseTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if len(s) < len("2006-01-02") || len(s) > 64 {
		return time.Time{}, false
	}
	// time.Parse wants the "T" and "Z" upper-case; ISO 8601 allows both cases
	// and a space as the date/time separator.
	s = strings.ToUpper(s)
	if len(s) > 10 && s[10] == ' ' {
		s = s[:10] + "T" + s[11:]
	}
	for _, layout := range createdAtLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// CreatedAt returns the document's created_at, when it is a string that
// ParseTime accepts.
func CreatedAt(v *VCon) (time.Time, bool) {
	s, ok := v.tree()["created_at"].(string)
	if !ok {
		return time.Time{}, false
	}
	return ParseTime(s)
}
