package httpx

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRetry(t *testing.T) {
	errFinal := errors.New("refused")
	tests := []struct {
		name         string
		policy       Policy
		results      []error // one per attempt; the last repeats
		wantAttempts int
		wantErr      string
		wantWaits    []time.Duration
	}{
		{name: "success first time", results: []error{nil}, wantAttempts: 1},
		{name: "final error is not retried", policy: Policy{Retries: 3}, results: []error{errFinal}, wantAttempts: 1, wantErr: "refused"},
		{
			name:         "retryable until success, doubling",
			policy:       Policy{Retries: 3, Base: time.Second, Max: time.Minute},
			results:      []error{Retryable(errors.New("busy"), 0), Retryable(errors.New("busy"), 0), nil},
			wantAttempts: 3, wantWaits: []time.Duration{time.Second, 2 * time.Second},
		},
		{
			name:         "retries run out",
			policy:       Policy{Retries: 2, Base: time.Second, Max: 1500 * time.Millisecond},
			results:      []error{Retryable(errors.New("busy"), 0)},
			wantAttempts: 3, wantErr: "busy", wantWaits: []time.Duration{time.Second, 1500 * time.Millisecond},
		},
		{
			name:         "Retry-After longer than the back-off wins",
			policy:       Policy{Retries: 1, Base: time.Second, Max: time.Minute, MaxRetryAfter: time.Minute},
			results:      []error{Retryable(errors.New("slow down"), 7*time.Second), nil},
			wantAttempts: 2, wantWaits: []time.Duration{7 * time.Second},
		},
		{
			name:         "Retry-After is capped",
			policy:       Policy{Retries: 1, Base: time.Second, Max: time.Minute, MaxRetryAfter: 30 * time.Second},
			results:      []error{Retryable(errors.New("slow down"), time.Hour), nil},
			wantAttempts: 2, wantWaits: []time.Duration{30 * time.Second},
		},
		{
			name:         "Retry-After shorter than the back-off does not shorten it",
			policy:       Policy{Retries: 1, Base: 4 * time.Second, Max: time.Minute, MaxRetryAfter: time.Minute},
			results:      []error{Retryable(errors.New("slow down"), time.Second), nil},
			wantAttempts: 2, wantWaits: []time.Duration{4 * time.Second},
		},
		{
			name:         "Retry-After ignored without a cap",
			policy:       Policy{Retries: 1, Base: time.Second, Max: time.Minute},
			results:      []error{Retryable(errors.New("slow down"), time.Hour), nil},
			wantAttempts: 2, wantWaits: []time.Duration{time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var waits []time.Duration
			tt.policy.Sleep = func(_ context.Context, d time.Duration) error {
				waits = append(waits, d)
				return nil
			}
			n := 0
			attempts, err := Retry(context.Background(), tt.policy, func(context.Context) error {
				r := tt.results[min(n, len(tt.results)-1)]
				n++
				return r
			})
			if attempts != tt.wantAttempts || n != tt.wantAttempts {
				t.Errorf("attempts = %d (ran %d), want %d", attempts, n, tt.wantAttempts)
			}
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
			if len(waits) != len(tt.wantWaits) {
				t.Fatalf("waits = %v, want %v", waits, tt.wantWaits)
			}
			for i := range waits {
				if waits[i] != tt.wantWaits[i] {
					t.Errorf("waits = %v, want %v", waits, tt.wantWaits)
				}
			}
		})
	}
}

func TestRetryStopsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	attempts, err := Retry(ctx, Policy{Retries: 10, Base: time.Hour, Max: time.Hour}, func(context.Context) error {
		return Retryable(errors.New("502 from upstream"), 0)
	})
	if attempts != 1 || err == nil || !strings.Contains(err.Error(), "502 from upstream") || !strings.Contains(err.Error(), "gave up waiting to retry") {
		t.Fatalf("attempts, err = %d, %v; want 1 and the last failure with why it stopped", attempts, err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err %v does not wrap the context's error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Retry took %s after its context ended", d)
	}
}

func TestBackoffJitterGrowsAndIsCapped(t *testing.T) {
	p := Policy{Base: 500 * time.Millisecond, Max: 10 * time.Second, Jitter: true}
	for retry, want := range map[int][2]time.Duration{
		1:  {250 * time.Millisecond, 500 * time.Millisecond},
		2:  {500 * time.Millisecond, time.Second},
		3:  {time.Second, 2 * time.Second},
		20: {5 * time.Second, 10 * time.Second},
	} {
		for range 50 {
			if d := p.Backoff(retry); d < want[0] || d > want[1] {
				t.Fatalf("Backoff(%d) = %s, want within [%s, %s]", retry, d, want[0], want[1])
			}
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		header map[string]string
		want   time.Duration
	}{
		{map[string]string{}, 0},
		{map[string]string{"Retry-After": "3"}, 3 * time.Second},
		{map[string]string{"Retry-After": "0.5"}, 500 * time.Millisecond},
		{map[string]string{"Retry-After": now.Add(9 * time.Second).Format(http.TimeFormat)}, 9 * time.Second},
		{map[string]string{"Retry-After": now.Add(-9 * time.Second).Format(http.TimeFormat)}, 0},
		{map[string]string{"Retry-After": "soon"}, 0},
		{map[string]string{"Retry-After": "99999"}, 99999 * time.Second},
		{map[string]string{"Retry-After-Ms": "250", "Retry-After": "3"}, 250 * time.Millisecond},
	}
	for _, tt := range tests {
		h := http.Header{}
		for k, v := range tt.header {
			h.Set(k, v)
		}
		if got := RetryAfter(h, now); got != tt.want {
			t.Errorf("RetryAfter(%v) = %v, want %v", tt.header, got, tt.want)
		}
	}
}
