// Package httpx is the HTTP plumbing shared by the links and storages that
// call other services: one retry loop with Retry-After, one vendor call
// (per-attempt timeout, bounded answer, errors scrubbed of URLs and
// credentials), one JSON POST for webhooks, and a client that refuses
// internal addresses for URLs that come from vCons.
//
// Errors from this package never carry a URL (webhook and pre-signed URLs
// are secrets), a credential or a request body: their text becomes a
// dead-letter reason and a log line.
package httpx

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Policy says how often and how patiently a failed call is tried again.
type Policy struct {
	// Retries is how many times a retryable failure is tried again after
	// the first attempt.
	Retries int
	// Base is the wait before the first retry; it doubles per retry up to
	// Max.
	Base, Max time.Duration
	// Jitter makes each wait a random time between half the back-off and
	// all of it, so that workers retrying the same server do not beat in
	// step.
	Jitter bool
	// MaxRetryAfter caps a server's Retry-After, so that one answer cannot
	// park a worker for hours; 0 ignores Retry-After.
	MaxRetryAfter time.Duration
	// Sleep waits d or until ctx ends; nil uses a timer. Tests record the
	// waits with it.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Backoff is the wait before retry number retry (1-based).
func (p Policy) Backoff(retry int) time.Duration {
	d := p.Base
	for i := 1; i < retry && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	if p.Jitter && d > 0 {
		d = d/2 + rand.N(d/2+1)
	}
	return d
}

func (p Policy) sleep(ctx context.Context, d time.Duration) error {
	if p.Sleep != nil {
		return p.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// retryableError marks a failure that may go away when tried again: a
// transport error, a timeout, 408, 429 or 5xx.
type retryableError struct {
	err        error
	retryAfter time.Duration
	// throttled is a 429; paced says a Gate took it and now paces the
	// retry (Admit), so Retry adds no wait of its own.
	throttled, paced bool
}

func (e *retryableError) Error() string { return e.err.Error() }
func (e *retryableError) Unwrap() error { return e.err }

// Retryable says the failure may pass: the worker's delayed retries
// (internal/pipeline) read it once the call's own retries are spent.
func (e *retryableError) Retryable() bool { return true }

// RetryAfter is the wait the server asked for, 0 when none.
func (e *retryableError) RetryAfter() time.Duration { return e.retryAfter }

// Retryable marks err as worth trying again, after at least retryAfter
// when the server asked for a wait (0 when it did not); nil stays nil.
func Retryable(err error, retryAfter time.Duration) error {
	if err == nil {
		return nil
	}
	return &retryableError{err: err, retryAfter: retryAfter}
}

// IsRetryable reports whether err, or an error it wraps, was marked by
// Retryable.
func IsRetryable(err error) bool {
	var re *retryableError
	return errors.As(err, &re)
}

// Retry runs attempt until it succeeds, returns an error not marked
// Retryable, or p.Retries retries are spent. The wait before a retry is
// the back-off, or the server's Retry-After (capped by p.MaxRetryAfter)
// when that is longer: a server that asks for time gets it, and one that
// asks for less than the back-off does not make a struggling server busier.
// It returns the last error and how many attempts were made. When ctx ends
// while waiting, the error says so and still wraps the last failure.
func Retry(ctx context.Context, p Policy, attempt func(ctx context.Context) error) (attempts int, err error) {
	for {
		err = attempt(ctx)
		attempts++
		if err == nil {
			return attempts, nil
		}
		var re *retryableError
		if !errors.As(err, &re) || attempts > p.Retries || ctx.Err() != nil {
			return attempts, err
		}
		wait := p.Backoff(attempts)
		if p.MaxRetryAfter > 0 {
			wait = max(wait, min(re.retryAfter, p.MaxRetryAfter))
		}
		if re.paced {
			// The shared budget holds every worker until the vendor's
			// Retry-After and has cut its rate: the next attempt waits
			// there, for its turn, not here as well.
			wait = 0
		}
		if serr := p.sleep(ctx, wait); serr != nil {
			return attempts, fmt.Errorf("%w (gave up waiting to retry: %w)", err, serr)
		}
	}
}

// RetryAfter reads how long a server asked us to wait: Retry-After-Ms
// (OpenAI), or Retry-After in seconds or as an HTTP date; 0 when absent,
// unreadable or in the past.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	var d time.Duration
	if ms, err := strconv.ParseFloat(strings.TrimSpace(h.Get("Retry-After-Ms")), 64); err == nil && ms > 0 {
		d = time.Duration(ms * float64(time.Millisecond))
	} else if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseFloat(v, 64); err == nil {
			if secs > 0 {
				d = time.Duration(secs * float64(time.Second))
			}
		} else if t, err := http.ParseTime(v); err == nil {
			d = t.Sub(now)
		}
	}
	return max(d, 0)
}

// RetryableStatus reports whether an HTTP status may be different when the
// request is sent again: 408 (the server gave up waiting for it), 429 (too
// many requests) and 5xx.
func RetryableStatus(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500
}
