// Command limits benchmarks a Link's fleet-wide limits against a vendor
// that enforces its own: a local OpenAI-compatible server that allows 600
// requests per minute (10 a second, a second's worth of burst) and 20
// calls at once, answers 429 with Retry-After: 1 beyond them, and takes
// 200 to 800 ms per call. Ten worker processes at concurrency 32 drain
// 3,000 vCons through links.analyze, once with the Link's limits set to
// the vendor's and once without, in the same run. It reports goodput (calls
// answered 200 per minute, as a fraction of the vendor's limit), the share
// of calls answered 429, the vCons dead-lettered and the p95 time per vCon
// (take to outcome, from the workers' vcon_processing_duration_seconds).
// A last phase runs two Chains sharing the Link, one with eight workers and
// one with two, and reports each one's share of the vCons done.
//
// The full size takes about five minutes per phase at 600 requests per
// minute; LIMITS_VCONS, LIMITS_WORKERS and LIMITS_CONCURRENCY shrink it.
// It prints its section of docs/benchmarks.md on stdout; run it through
// hack/bench.sh. Needs redis-server in PATH.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/hack/bench/benchutil"
	"github.com/vcon-operator/vcon-operator/internal/vcon/sample"
)

const (
	vendorRPM        = 600
	vendorConcurrent = 20
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench limits:", err)
		os.Exit(1)
	}
}

type result struct {
	name                string
	ok, throttled       int64
	deadLettered        int64
	elapsed             time.Duration
	p95                 float64
	goodput, throttleFr float64
}

func run() error {
	n := benchutil.EnvInt("LIMITS_VCONS", 3000)
	workers := benchutil.EnvInt("LIMITS_WORKERS", 10)
	concurrency := benchutil.EnvInt("LIMITS_CONCURRENCY", 32)
	progress := benchutil.Progress("limits")
	rig, err := benchutil.NewWorkerRig("limits")
	if err != nil {
		return err
	}
	defer rig.Close()
	v := newVendor()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: v}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	base := "http://" + ln.Addr().String() + "/v1"

	var results []result
	for _, limited := range []bool{true, false} {
		name := "without limits"
		if limited {
			name = "limits = the vendor's"
		}
		progress(fmt.Sprintf("%s: %d vCons, %d workers x %d", name, n, workers, concurrency))
		r, err := drain(rig, v, base, name, limited, n, workers, concurrency)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		results = append(results, r)
	}
	progress("two chains sharing the link")
	shareA, shareB, err := fairness(rig, v, base, max(n/5, 200), concurrency)
	if err != nil {
		return fmt.Errorf("fairness: %w", err)
	}

	fmt.Println("## Link limits against a vendor's limit")
	fmt.Println()
	fmt.Printf("A local OpenAI-compatible vendor allows %d requests/min and %d at once (429 with Retry-After: 1 beyond), each call 200-800 ms. %d worker processes at concurrency %d drain %d vCons through links.analyze. Goodput is calls answered 200 per minute over the drain, as a fraction of the vendor's limit; time per vCon is take to outcome (p95 from the workers' histogram, interpolated within its bucket).\n\n",
		vendorRPM, vendorConcurrent, workers, concurrency, n)
	fmt.Println("| Link limits | goodput / vendor limit | calls answered 429 | dead-lettered | p95 time per vCon | drain time |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, r := range results {
		fmt.Printf("| %s | %.1f%% | %.1f%% (%d of %d) | %d | %.1f s | %s |\n", r.name, 100*r.goodput, 100*r.throttleFr, r.throttled, r.ok+r.throttled, r.deadLettered, r.p95, r.elapsed.Round(time.Second))
	}
	fmt.Println()
	fmt.Printf("Two Chains sharing the Link (limits = the vendor's), one with 8 workers and one with 2, each %d vCons queued: while both had work, the 8-worker Chain got %.0f%% of the vCons done and the 2-worker Chain %.0f%% (a fair share is 50%%).\n",
		max(n/5, 200), 100*shareA, 100*shareB)
	fmt.Println()
	fmt.Println("Target with limits: goodput at least 95% of the limit, 429s under 1% of calls.")
	return nil
}

// drain runs one phase: workers on a fresh Redis drain n vCons.
func drain(rig *benchutil.WorkerRig, v *vendor, base, name string, limited bool, n, workers, concurrency int) (result, error) {
	ctx := context.Background()
	if err := rig.Client.FlushAll(ctx).Err(); err != nil {
		return result{}, err
	}
	cfg, err := writeConfig(rig.Dir, base, limited, []string{"bench"})
	if err != nil {
		return result{}, err
	}
	if err := push(ctx, rig.Client, "in-bench", n); err != nil {
		return result{}, err
	}
	v.reset()
	start := time.Now()
	var stops []func()
	var addrs []string
	defer func() {
		for _, s := range stops {
			s()
		}
	}()
	for i := range workers {
		stop, addr, err := startWorker(rig, cfg, "bench", fmt.Sprintf("w%d", i), concurrency)
		if err != nil {
			return result{}, err
		}
		stops, addrs = append(stops, stop), append(addrs, addr)
	}
	if err := benchutil.WaitFor(2*time.Hour, func() bool {
		done := rig.Client.LLen(ctx, "out-bench").Val() + rig.Client.LLen(ctx, "DLQ:in-bench").Val()
		return done >= int64(n)
	}); err != nil {
		return result{}, err
	}
	r := result{name: name, elapsed: time.Since(start), deadLettered: rig.Client.LLen(ctx, "DLQ:in-bench").Val()}
	r.p95, err = p95(addrs)
	if err != nil {
		return result{}, err
	}
	r.ok, r.throttled = v.ok.Load(), v.throttled.Load()
	first, last := v.span()
	if span := last.Sub(first); span > 0 && r.ok > 1 {
		r.goodput = float64(r.ok-1) / span.Minutes() / vendorRPM
	}
	if total := r.ok + r.throttled; total > 0 {
		r.throttleFr = float64(r.throttled) / float64(total)
	}
	return r, nil
}

// fairness runs two Chains on the same Link: 8 workers for a, 2 for b.
// It returns each one's share of the vCons done when the first drains.
func fairness(rig *benchutil.WorkerRig, v *vendor, base string, n, concurrency int) (float64, float64, error) {
	ctx := context.Background()
	if err := rig.Client.FlushAll(ctx).Err(); err != nil {
		return 0, 0, err
	}
	cfg, err := writeConfig(rig.Dir, base, true, []string{"a", "b"})
	if err != nil {
		return 0, 0, err
	}
	for _, c := range []string{"a", "b"} {
		if err := push(ctx, rig.Client, "in-"+c, n); err != nil {
			return 0, 0, err
		}
	}
	v.reset()
	var stops []func()
	defer func() {
		for _, s := range stops {
			s()
		}
	}()
	for i := range 10 {
		chain := "a"
		if i >= 8 {
			chain = "b"
		}
		stop, _, err := startWorker(rig, cfg, chain, fmt.Sprintf("%s%d", chain, i), concurrency)
		if err != nil {
			return 0, 0, err
		}
		stops = append(stops, stop)
	}
	var a, b int64
	if err := benchutil.WaitFor(time.Hour, func() bool {
		a, b = rig.Client.LLen(ctx, "out-a").Val(), rig.Client.LLen(ctx, "out-b").Val()
		return a >= int64(n) || b >= int64(n)
	}); err != nil {
		return 0, 0, err
	}
	return float64(a) / float64(a+b), float64(b) / float64(a+b), nil
}

func writeConfig(dir, base string, limited bool, chains []string) (string, error) {
	limits := ""
	if limited {
		limits = fmt.Sprintf("    limits: {requests_per_minute: %d, max_concurrent: %d}\n", vendorRPM, vendorConcurrent)
	}
	cfg := fmt.Sprintf(`links:
  analyze:
    module: links.analyze
    options:
      OPENAI_API_KEY: sk-bench-key-000000
      base_url: %s
      model: gpt-4o-mini
      source: {analysis_type: transcript, text_location: body}
%schains:
`, base, limits)
	for _, c := range chains {
		cfg += fmt.Sprintf("  %s: {links: [analyze], ingress_lists: [in-%s], egress_lists: [out-%s], timeout: 3600}\n", c, c, c)
	}
	path := filepath.Join(dir, "limits.yml")
	return path, os.WriteFile(path, []byte(cfg), 0o600)
}

func push(ctx context.Context, rdb *redis.Client, list string, n int) error {
	pipe := rdb.Pipeline()
	for i := range n {
		u := fmt.Sprintf("0190d6f0-1c2d-7a00-8000-%s%09d", hexList(list), i)
		pipe.Set(ctx, "vcon:"+u, sample.Document(u, 2000), 0)
		pipe.RPush(ctx, list, u)
	}
	_, err := pipe.Exec(ctx)
	return err
}

// hexList gives each list's uuids their own prefix.
func hexList(list string) string {
	var h uint32
	for _, c := range list {
		h = h*31 + uint32(c)
	}
	return fmt.Sprintf("%03x", h%4096)
}

func startWorker(rig *benchutil.WorkerRig, cfg, chain, id string, concurrency int) (func(), string, error) {
	port, err := benchutil.FreePort()
	if err != nil {
		return nil, "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(rig.Bin, "--config", cfg, "--chain", chain, "--redis-url", "redis://"+rig.Redis.Addr, "--http-addr", addr,
		"--concurrency", strconv.Itoa(concurrency), "--worker-id", id, "--grace-period", "1s")
	cmd.Stderr = io.Discard
	stop, err := benchutil.StartWorker(cmd, addr)
	return stop, addr, err
}

// p95 reads vcon_processing_duration_seconds from every worker, sums the
// buckets, and interpolates the 95th percentile within its bucket.
func p95(addrs []string) (float64, error) {
	buckets := map[float64]float64{}
	for _, a := range addrs {
		resp, err := http.Get("http://" + a + "/metrics")
		if err != nil {
			return 0, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return 0, err
		}
		for _, line := range strings.Split(string(body), "\n") {
			if !strings.HasPrefix(line, "vcon_processing_duration_seconds_bucket{") {
				continue
			}
			i := strings.Index(line, `le="`)
			j := strings.Index(line[i+4:], `"`)
			le, err := strconv.ParseFloat(line[i+4:i+4+j], 64)
			if err != nil {
				le = math.Inf(1)
			}
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			buckets[le] += v
		}
	}
	var les []float64
	for le := range buckets {
		les = append(les, le)
	}
	sort.Float64s(les)
	if len(les) == 0 {
		return 0, fmt.Errorf("no vcon_processing_duration_seconds from the workers")
	}
	total := buckets[les[len(les)-1]]
	want := 0.95 * total
	prevLe, prevCount := 0.0, 0.0
	for _, le := range les {
		c := buckets[le]
		if c >= want {
			if math.IsInf(le, 1) {
				return prevLe, nil
			}
			return prevLe + (le-prevLe)*(want-prevCount)/max(c-prevCount, 1), nil
		}
		prevLe, prevCount = le, c
	}
	return prevLe, nil
}

// vendor is an OpenAI-compatible chat endpoint with the limits of a real
// account: a token bucket of vendorRPM a minute holding a second's worth,
// and vendorConcurrent calls at once. A refused call uses no token.
type vendor struct {
	mu          sync.Mutex
	tokens      float64
	refilled    time.Time
	first, last time.Time
	inFlight    atomic.Int64
	ok          atomic.Int64
	throttled   atomic.Int64
}

func newVendor() *vendor {
	v := &vendor{}
	v.reset()
	return v
}

func (v *vendor) reset() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.tokens, v.refilled = vendorRPM/60, time.Now()
	v.first, v.last = time.Time{}, time.Time{}
	v.ok.Store(0)
	v.throttled.Store(0)
}

func (v *vendor) span() (time.Time, time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.first, v.last
}

// admit takes a token from the bucket, refilled at vendorRPM a minute.
func (v *vendor) admit() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := time.Now()
	v.tokens = min(v.tokens+now.Sub(v.refilled).Seconds()*vendorRPM/60, vendorRPM/60)
	v.refilled = now
	if v.tokens < 1 {
		return false
	}
	v.tokens--
	return true
}

func (v *vendor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	n := v.inFlight.Add(1)
	defer v.inFlight.Add(-1)
	if n > vendorConcurrent || !v.admit() {
		v.throttled.Add(1)
		w.Header().Set("Retry-After", "1")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"error":{"code":"rate_limit_exceeded","message":"Rate limit reached"}}`)
		return
	}
	time.Sleep(200*time.Millisecond + rand.N(600*time.Millisecond))
	v.ok.Add(1)
	v.mu.Lock()
	now := time.Now()
	if v.first.IsZero() {
		v.first = now
	}
	v.last = now
	v.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"choices": []any{map[string]any{"message": map[string]any{"role": "assistant", "content": "A customer asked about an order."}, "finish_reason": "stop"}},
		"usage":   map[string]any{"prompt_tokens": 600, "completion_tokens": 12, "total_tokens": 612},
	})
}
