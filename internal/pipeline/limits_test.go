package pipeline

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vcon-operator/vcon-operator/internal/httpx"
	"github.com/vcon-operator/vcon-operator/internal/links"
	"github.com/vcon-operator/vcon-operator/internal/ratelimit"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// vendorLink POSTs each vCon's uuid to a vendor through httpx, with
// retries, as the vendor links do: the pipeline's Gate admits each attempt.
type vendorLink struct{ url string }

func (l vendorLink) Run(ctx context.Context, v *vcon.VCon) (links.Result, error) {
	t, err := httpx.ParseTarget(l.url)
	if err != nil {
		return links.Result{}, err
	}
	post := httpx.Post{Client: http.DefaultClient, Timeout: 10 * time.Second}
	_, err = httpx.Retry(ctx, httpx.Policy{Retries: 3, Base: time.Millisecond, Max: time.Millisecond, MaxRetryAfter: time.Minute}, func(ctx context.Context) error {
		return post.Send(ctx, t, v.UUID(), []byte(`{}`))
	})
	return links.Continue, err
}

// concurrencyVendor answers after a pause and records the most calls it
// ever had at once.
type concurrencyVendor struct {
	now, peak atomic.Int64
	calls     atomic.Int64
}

func (s *concurrencyVendor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.now.Add(1)
	defer s.now.Add(-1)
	s.calls.Add(1)
	for {
		p := s.peak.Load()
		if n <= p || s.peak.CompareAndSwap(p, n) {
			break
		}
	}
	time.Sleep(20 * time.Millisecond)
	w.WriteHeader(http.StatusOK)
}

// TestLinkLimitsHoldAcrossWorkers: two workers of one Chain, eight slots
// each, never call the vendor more often at once than the Link allows;
// the permits all come back.
func TestLinkLimitsHoldAcrossWorkers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		limits map[string]LinkLimits
		// the vendor's peak concurrency must lie in [atLeast, atMost]
		atLeast, atMost int64
	}{
		{name: "max_concurrent 3", limits: map[string]LinkLimits{"vendor": {Budget: "team/vendor", Limits: ratelimit.Limits{MaxConcurrent: 3}}}, atLeast: 2, atMost: 3},
		{name: "no limits", atLeast: 4, atMost: 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			vendor := &concurrencyVendor{}
			srv := httptest.NewServer(vendor)
			defer srv.Close()
			const n = 60
			ch := Chain{Name: "main", Ingress: []string{"in"}, Egress: []string{"out"},
				Links: []Step{{Name: "vendor", Link: vendorLink{url: srv.URL}}}, Limits: tc.limits}
			var regs []*prometheus.Registry
			var stops []func() (error, time.Duration)
			for _, id := range []string{"w1", "w2"} {
				p, _, reg := e.processor(ch, testOptions(), id)
				regs = append(regs, reg)
				stops = append(stops, startRunner(t, NewRunner(p, RunnerOptions{Concurrency: 8}, e.log)))
			}
			for i := range n {
				u := testUUID(i)
				e.putBody(t, u, document(u, 500), 0)
				e.rdb.RPush(ctx, "in", u)
			}
			waitFor(t, "every vCon at egress", 60*time.Second, func() bool { return e.rdb.LLen(ctx, "out").Val() == n })
			for _, stop := range stops {
				stop()
			}
			if p := vendor.peak.Load(); p < tc.atLeast || p > tc.atMost {
				t.Fatalf("vendor saw %d calls at once, want %d to %d", p, tc.atLeast, tc.atMost)
			}
			if c := vendor.calls.Load(); c != n {
				t.Fatalf("vendor saw %d calls, want %d", c, n)
			}
			if tc.limits == nil {
				return
			}
			if held := e.rdb.ZCard(ctx, ratelimit.Keys("team/vendor")[1]).Val(); held != 0 {
				t.Fatalf("%d permits still held after the run", held)
			}
			for _, reg := range regs {
				if v, ok := linkSeries(t, reg, "vcon_link_permits_in_use", "vendor"); !ok || v != 0 {
					t.Fatalf("vcon_link_permits_in_use = %v (present %v) after the run, want 0", v, ok)
				}
			}
		})
	}
}

// linkSeries is the value of a link's series of a gauge or counter.
func linkSeries(t *testing.T, reg *prometheus.Registry, name, link string) (float64, bool) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "link" && lp.GetValue() == link {
					if m.GetCounter() != nil {
						return m.GetCounter().GetValue(), true
					}
					return m.GetGauge().GetValue(), true
				}
			}
		}
	}
	return 0, false
}

// throttlingVendor answers 429 with Retry-After to its first call.
type throttlingVendor struct {
	calls atomic.Int64
}

func (s *throttlingVendor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.calls.Add(1) == 1 {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// TestLinkThrottleReachesTheBudget: a 429 seen by one worker is counted,
// and the budget every worker shares records it.
func TestLinkThrottleReachesTheBudget(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	vendor := &throttlingVendor{}
	srv := httptest.NewServer(vendor)
	defer srv.Close()
	ch := Chain{Name: "main", Ingress: []string{"in"}, Egress: []string{"out"},
		Links:  []Step{{Name: "vendor", Link: vendorLink{url: srv.URL}}},
		Limits: map[string]LinkLimits{"vendor": {Budget: "vendor", Limits: ratelimit.Limits{RequestsPerMinute: 600}}}}
	p, _, reg := e.processor(ch, testOptions(), "w1")
	stop := startRunner(t, NewRunner(p, RunnerOptions{Concurrency: 2}, e.log))
	defer stop()
	u := testUUID(1)
	e.putBody(t, u, document(u, 500), 0)
	e.rdb.RPush(ctx, "in", u)
	waitFor(t, "the vCon at egress", 30*time.Second, func() bool { return e.rdb.LLen(ctx, "out").Val() == 1 })
	if got, _ := linkSeries(t, reg, "vcon_link_throttled_total", "vendor"); got != 1 {
		t.Fatalf("vcon_link_throttled_total = %v, want 1", got)
	}
	if got := e.rdb.HGet(ctx, ratelimit.Keys("vendor")[0], "throttled").Val(); got != "1" {
		t.Fatalf("the shared budget recorded %q 429s, want 1", got)
	}
	if f := e.rdb.HGet(ctx, ratelimit.Keys("vendor")[0], "factor").Val(); f == "" || f == "1" {
		t.Fatalf("the shared rate was not cut: factor %q", f)
	}
}
