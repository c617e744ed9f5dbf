package httpx

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/ratelimit"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

// TestCallThroughGate: with a Link's budget in the context, a 429 slows
// the shared budget and the retry waits there instead of in the back-off;
// the tokens charged are those the vendor reports.
func TestCallThroughGate(t *testing.T) {
	rdb := testenv.StartRedis(t).Client()
	for i, tc := range []struct {
		name    string
		gated   bool
		replies []reply
		tokens  int64
		// wantSleeps are the waits Retry itself makes.
		wantSleeps    []time.Duration
		wantThrottled string
		wantTokens    string
	}{
		{name: "429 paced by the budget", gated: true,
			replies:    []reply{{status: 429, header: map[string]string{"Retry-After": "1"}}, {status: 200, body: `{"usage":{"total_tokens":40}}`}},
			wantSleeps: []time.Duration{0}, wantThrottled: "1", wantTokens: "40"}, // the refused attempt used none
		{name: "429 without a budget backs off", gated: false,
			replies:    []reply{{status: 429, header: map[string]string{"Retry-After": "1"}}, {status: 200}},
			wantSleeps: []time.Duration{time.Second}},
		{name: "503 still backs off", gated: true,
			replies:    []reply{{status: 503}, {status: 200, body: `{}`}},
			wantSleeps: []time.Duration{250 * time.Millisecond}, wantTokens: "1000"}, // a failed attempt keeps its estimate
		{name: "estimate corrected down", gated: true, tokens: 1000,
			replies:    []reply{{status: 200, body: `{"usage":{"total_tokens":7}}`}},
			wantSleeps: nil, wantTokens: "7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := scripted(t, tc.replies...)
			var mu sync.Mutex
			var sleeps []time.Duration
			budget := "gate-" + strconv.Itoa(i)
			ctx := context.Background()
			if tc.gated {
				ctx = WithGate(ctx, ratelimit.New(rdb, ratelimit.Limits{RequestsPerMinute: 6000, TokensPerMinute: 1_000_000}, ratelimit.Options{Budget: budget, Party: "c", Holder: "p"}))
			}
			tokens := tc.tokens
			if tokens == 0 {
				tokens = 500
			}
			call := &Call{
				Vendor: "v", Operation: "op", Tokens: tokens,
				Policy: Policy{Retries: 2, Base: 250 * time.Millisecond, Max: time.Second, MaxRetryAfter: time.Minute, Sleep: func(ctx context.Context, d time.Duration) error {
					mu.Lock()
					sleeps = append(sleeps, d)
					mu.Unlock()
					return nil
				}},
				Usage: func(body []byte) int64 {
					var v struct {
						Usage struct {
							Total int64 `json:"total_tokens"`
						} `json:"usage"`
					}
					_ = json.Unmarshal(body, &v)
					return v.Usage.Total
				},
				NewRequest: func(ctx context.Context) (*http.Request, error) {
					return http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, nil)
				},
			}
			if _, err := call.Do(ctx, srv.Client()); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(sleeps, tc.wantSleeps) {
				t.Fatalf("Retry waited %v, want %v", sleeps, tc.wantSleeps)
			}
			if !tc.gated {
				return
			}
			h := rdb.HGetAll(ctx, ratelimit.Keys(budget)[0]).Val()
			if h["throttled"] != tc.wantThrottled || h["tokens"] != tc.wantTokens {
				t.Fatalf("budget recorded throttled=%q tokens=%q, want %q and %q", h["throttled"], h["tokens"], tc.wantThrottled, tc.wantTokens)
			}
		})
	}
}
