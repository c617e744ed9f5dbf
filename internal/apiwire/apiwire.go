// Package apiwire holds what the conserver HTTP API (internal/api) and its
// clients (kubectl vcon push, hack/bench/api) agree on: the header the
// token travels in, and where and for how long a POSTed vCon is kept in
// Redis, which `kubectl vcon push --direct` writes the same way (a trace
// context's time to live is queue.DefaultContextTTL, beside the code that
// writes it). The worker (internal/pipeline) keeps bodies for the same
// time, from the same setting. It has no dependencies, so a
// client names these without linking the server.
package apiwire

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// Defaults, from conserver's settings.
const (
	// DefaultHeaderName is the API token header (CONSERVER_HEADER_NAME).
	DefaultHeaderName = "x-conserver-api-token"
	// DefaultSortedSet is the listing index of vCons by creation time
	// (VCON_SORTED_SET_NAME).
	DefaultSortedSet = "vcons"
	// DefaultVconTTL is the time to live of a POSTed body, and of a body
	// the worker reads back from storage (VCON_REDIS_EXPIRY).
	DefaultVconTTL = 3600 * time.Second
	// DefaultQueuedRetention is the least time to live of a body queued
	// on an ingress or egress list, in flight or waiting for a retry
	// (VCON_QUEUED_RETENTION, ours): three days, so that a long weekend's
	// backlog or an outage never expires bodies before they are
	// processed. The API gives a queued body this TTL (or
	// VCON_REDIS_EXPIRY when longer); the worker extends it when it takes
	// the vCon and when it pushes it on, and gives a body at the end of
	// its chains VCON_REDIS_EXPIRY back.
	DefaultQueuedRetention = 72 * time.Hour
)

// EnvSeconds reads one of these settings as the operator and the worker
// do: a whole number of seconds; def when unset, not a number or not
// positive. (The API refuses a bad value instead, at start.)
func EnvSeconds(name string, def time.Duration) time.Duration {
	n, err := strconv.ParseInt(strings.TrimSpace(os.Getenv(name)), 10, 64)
	if err != nil || n <= 0 {
		return def
	}
	return time.Duration(n) * time.Second
}
