package httpx

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// Gate admits a Link's calls within the Link's limits, shared by every
// worker (internal/ratelimit's Limiter). The pipeline puts the running
// link's Gate in the context, so that every call the link makes (each
// attempt of a Call, of a step's POST) is admitted through it, however the
// link spreads its work.
type Gate interface {
	// Acquire waits for a permit for one call of about tokens tokens (0
	// when not metered in tokens); release takes the tokens used.
	Acquire(ctx context.Context, tokens int64) (release func(actualTokens int64), err error)
	// Throttled reports the vendor's 429 (with its Retry-After, 0 when
	// none) to the shared budget.
	Throttled(ctx context.Context, retryAfter time.Duration) error
}

type gateKey struct{}

// WithGate returns ctx carrying g; a nil g leaves calls unlimited.
func WithGate(ctx context.Context, g Gate) context.Context {
	if g == nil {
		return ctx
	}
	return context.WithValue(ctx, gateKey{}, g)
}

// GateFrom is the Gate in ctx, nil when none.
func GateFrom(ctx context.Context) Gate {
	g, _ := ctx.Value(gateKey{}).(Gate)
	return g
}

// Admit runs one attempt of a call through the Gate in ctx, when there is
// one. The permit is held only while the attempt runs, never across the
// back-off before the next: attempt returns the tokens the vendor reported
// (0 when it did not say; the estimate is kept, except for a refused call,
// which used none). A 429 (marked by
// Throttled) is reported to the shared budget, and the error says the
// budget now paces the retry, so Retry does not add its own back-off to
// the budget's.
func Admit(ctx context.Context, tokens int64, attempt func(ctx context.Context) (usedTokens int64, err error)) error {
	g := GateFrom(ctx)
	if g == nil {
		_, err := attempt(ctx)
		return err
	}
	release, err := g.Acquire(ctx, tokens)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return Retryable(err, 0)
	}
	used, err := attempt(ctx)
	var re *retryableError
	throttled := errors.As(err, &re) && re.throttled
	switch {
	case throttled:
		used = 0 // refused: the vendor counted no tokens
	case used <= 0:
		used = tokens
	}
	release(used)
	if throttled {
		// Reported without the caller's context: a 429 must slow the fleet
		// even when this vCon's time ran out with it.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = g.Throttled(rctx, re.retryAfter)
		cancel()
		re.paced = true
	}
	return err
}

// Throttled marks err as a vendor's "too many requests" (HTTP 429), worth
// trying again after retryAfter; the Gate of the link is told.
func Throttled(err error, retryAfter time.Duration) error {
	if err == nil {
		return nil
	}
	return &retryableError{err: err, retryAfter: retryAfter, throttled: true}
}

// RetryableAnswer marks the error of a retryable HTTP status: Throttled for
// 429, Retryable for the others, with the answer's Retry-After.
func RetryableAnswer(err error, resp *http.Response) error {
	ra := RetryAfter(resp.Header, time.Now())
	if resp.StatusCode == http.StatusTooManyRequests {
		return Throttled(err, ra)
	}
	return Retryable(err, ra)
}
