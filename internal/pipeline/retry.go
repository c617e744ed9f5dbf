package pipeline

import (
	"context"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"syscall"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/storage"
)

// RetryPolicy is when a vCon that failed for a reason that may pass (a
// vendor's 5xx or 429, a timeout, a refused connection, a storage write)
// is tried again, later, instead of being dead-lettered at once. While it
// waits it holds no worker slot: it sits in its ingress list's retry set
// (queue.RetryKey) until due.
type RetryPolicy struct {
	// Attempts is the number of runs in all, the first included: 1 (or 0)
	// dead-letters at the first failure, as conserver does.
	Attempts int
	// InitialBackoff is the wait before the second attempt, doubled for
	// each one after, up to MaxBackoff.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// Jitter spreads each wait by up to ± that fraction (0 to 1), so that
	// a backlog failed by one outage does not come due in one instant.
	Jitter float64
}

// Defaults of a retry policy whose attempts are set but not its waits.
const (
	DefaultRetryInitialBackoff = 30 * time.Second
	DefaultRetryMaxBackoff     = 10 * time.Minute
)

// DefaultMaxDeliveries is how many deliveries without an outcome (the
// worker died holding the vCon) make a vCon a poison pill.
const DefaultMaxDeliveries = 3

func (r RetryPolicy) withDefaults() RetryPolicy {
	if r.InitialBackoff <= 0 {
		r.InitialBackoff = DefaultRetryInitialBackoff
	}
	if r.MaxBackoff <= 0 {
		r.MaxBackoff = max(DefaultRetryMaxBackoff, r.InitialBackoff)
	}
	r.Jitter = min(max(r.Jitter, 0), 1)
	return r
}

// backoff is the wait after the failed attempt number failed (1 for the
// first run), jittered by u in [0, 1).
func (r RetryPolicy) backoff(failed int, u float64) time.Duration {
	wait := float64(r.InitialBackoff) * math.Pow(2, float64(failed-1))
	wait = min(wait, float64(r.MaxBackoff))
	wait *= 1 + r.Jitter*(2*u-1)
	return time.Duration(wait)
}

// nextAttempt says when a vCon whose attempt number failed (1 for the first
// run) with err runs again, and false when its attempts are spent. A
// vendor's Retry-After longer than the backoff wins, up to MaxBackoff.
func (r RetryPolicy) nextAttempt(failed int, err error, now time.Time) (time.Time, bool) {
	if failed >= r.Attempts {
		return time.Time{}, false
	}
	wait := r.backoff(failed, rand.Float64())
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		wait = max(wait, min(ra.RetryAfter(), r.MaxBackoff))
	}
	return now.Add(wait), true
}

// Retryable is implemented by errors that know whether trying again later
// can succeed (an HTTP status error: 5xx and 429 can, 400 cannot).
type Retryable interface {
	Retryable() bool
}

// mayPass says whether a step's error may pass on its own: the error says
// so itself, or it is a network failure or a timeout. Anything else (a jq
// error, a 400, a document a link rejects) fails the same way next time.
func mayPass(err error) bool {
	var r Retryable
	if errors.As(err, &r) {
		return r.Retryable()
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// retryable says whether a failure of reason with err may be tried again.
func retryable(reason string, err error) bool {
	switch reason {
	case ReasonTimeout:
		return true
	case ReasonStorageError:
		return !storage.IsPermanent(err)
	case ReasonLinkError:
		return mayPass(err)
	}
	return false
}
