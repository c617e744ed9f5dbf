// Command operator measures the operator at scale: 1,000 and then 10,000
// Chains, each run on its own kube-apiserver (envtest) and redis-server,
// the operator running in-process exactly as cmd/manager wires it
// (controllers.CacheOptions, its API client limits and concurrent
// reconciles, observer, collector, the three reconcilers) with the default
// 2 s queue poll. It prints a Markdown section for docs/benchmarks.md
// (hack/bench.sh runs it).
//
//	go run ./hack/bench/operator/
//
// It reports the time from creating the Chains to all of them Ready and
// measured (with the reconciles and API requests per Chain that took),
// Redis round trips per poll (from the observer's counters, corroborated
// by the commands redis-server processed per poll), the time from a burst
// of uuids on a Chain's ingress list to its Deployment's new replica
// count, status writes per minute while idle, and the process's peak RSS.
// Settings: BENCH_CHAINS (run sizes, 1000,10000), BENCH_BURSTS (20),
// BENCH_BURST_SIZE (250 uuids), BENCH_IDLE_SECONDS (60), BENCH_POLL (2s),
// BENCH_KUBE_API_QPS, BENCH_KUBE_API_BURST and
// BENCH_MAX_CONCURRENT_RECONCILES (cmd/manager's defaults).
package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/controllers"
	"github.com/vcon-operator/vcon-operator/hack/bench/benchutil"
	"github.com/vcon-operator/vcon-operator/internal/observer"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
	"github.com/vcon-operator/vcon-operator/internal/workload"
)

const namespace = "bench"

var progress = benchutil.Progress("operator")

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench operator:", err)
		os.Exit(1)
	}
}

type settings struct {
	sizes             []int // Chains per run, each on a fresh API server and Redis
	bursts, burstSize int
	idle, poll        time.Duration
	// cmd/manager's --kube-api-qps, --kube-api-burst and
	// --max-concurrent-reconciles, their defaults unless set.
	qps                float64
	burst, concurrency int
}

// result is what one run measured.
type result struct {
	chains                            int
	created, converged                time.Duration
	reconcilesPerChain                float64
	requestsPerChain                  string
	polls, trips                      int64
	scriptsPerPoll                    float64
	reactions                         []time.Duration
	idleFor                           time.Duration
	idleChainWrites, idleDeployWrites int64
	cpuIdle                           time.Duration
	hwm, rss, heapInuse               float64 // bytes
	loadStart, loadEnd                string
	want                              int32
}

func run() error {
	s := settings{
		bursts:      benchutil.EnvInt("BENCH_BURSTS", 20),
		burstSize:   benchutil.EnvInt("BENCH_BURST_SIZE", 250),
		idle:        time.Duration(benchutil.EnvInt("BENCH_IDLE_SECONDS", 60)) * time.Second,
		qps:         float64(benchutil.EnvInt("BENCH_KUBE_API_QPS", controllers.DefaultKubeAPIQPS)),
		burst:       benchutil.EnvInt("BENCH_KUBE_API_BURST", controllers.DefaultKubeAPIBurst),
		concurrency: benchutil.EnvInt("BENCH_MAX_CONCURRENT_RECONCILES", controllers.DefaultMaxConcurrentReconciles),
	}
	var err error
	if s.sizes, err = envInts("BENCH_CHAINS", "1000,10000"); err != nil {
		return err
	}
	if s.poll, err = benchutil.EnvDuration("BENCH_POLL", 2*time.Second); err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.Level(zapcore.ErrorLevel), zap.WriteTo(os.Stderr)))
	var results []result
	for _, n := range s.sizes {
		r, err := measure(s, n)
		if err != nil {
			return fmt.Errorf("%d Chains: %w", n, err)
		}
		results = append(results, r)
		// A long run's figures survive a later one that fails.
		progress(fmt.Sprintf("%d Chains: Ready and measured after %v (%.1f reconciles, %s requests per Chain); %.2f Redis round trips per poll; burst p95 %v; VmHWM %.0f MiB; load %s",
			n, r.converged.Round(time.Second), r.reconcilesPerChain, r.requestsPerChain, ratio(r.trips, r.polls),
			quantile(r.reactions, 0.95).Round(10*time.Millisecond), r.hwm/(1<<20), r.loadEnd))
	}
	return report(s, results)
}

// measure runs the operator over n Chains on a fresh kube-apiserver, etcd
// and redis-server.
func measure(s settings, n int) (r result, err error) {
	r.chains, r.loadStart = n, loadAverage()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	progress(fmt.Sprintf("%d Chains: starting kube-apiserver and etcd", n))
	kube, err := testenv.StartKubeEnv()
	if err != nil {
		return r, err
	}
	defer func() { _ = kube.Stop() }()
	addr, stopRedis, err := startRedis()
	if err != nil {
		return r, err
	}
	defer stopRedis()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()

	requests := &requestCounter{}
	obs, stopOperator, err := startOperator(ctx, kube, "redis://"+addr, s, requests)
	if err != nil {
		return r, err
	}
	defer stopOperator()

	c := kube.Client
	wc, err := client.NewWithWatch(kube.Config, client.Options{Scheme: kube.Scheme})
	if err != nil {
		return r, err
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		return r, err
	}

	// Count every write to a Chain and a Deployment from here on.
	chainWrites, err := countModified(ctx, wc, &vconv1.ChainList{})
	if err != nil {
		return r, err
	}
	deploymentWrites, err := countModified(ctx, wc, &appsv1.DeploymentList{})
	if err != nil {
		return r, err
	}

	progress(fmt.Sprintf("creating %d Chains", n))
	requests0, reconciles0 := requests.snapshot(), reconciles()
	start := time.Now()
	if err := createChains(ctx, c, n); err != nil {
		return r, err
	}
	r.created = time.Since(start)
	if err := waitAllRunning(ctx, c, n, 30*time.Minute); err != nil {
		return r, err
	}
	r.converged = time.Since(start)
	r.requestsPerChain, r.reconcilesPerChain = perChain(requests0, requests.snapshot(), n), (reconciles()-reconciles0)/float64(n)
	progress(fmt.Sprintf("all %d Chains Ready and measured after %v", n, r.converged.Round(time.Second)))

	// Idle: let the creation wave's writes end, then watch a window.
	if err := waitQuiet(ctx, chainWrites, 3*s.poll, 10*time.Minute); err != nil {
		return r, err
	}
	progress(fmt.Sprintf("idle window of %v", s.idle))
	cw0, dw0 := chainWrites.Load(), deploymentWrites.Load()
	polls0, trips0 := obs.Polls(), obs.RoundTrips()
	stats0, err := commandStats(ctx, rdb)
	if err != nil {
		return r, err
	}
	cpu0 := cpuTime()
	idleStart := time.Now()
	select {
	case <-time.After(s.idle):
	case <-ctx.Done():
		return r, ctx.Err()
	}
	r.idleFor = time.Since(idleStart)
	r.cpuIdle = cpuTime() - cpu0
	stats1, err := commandStats(ctx, rdb)
	if err != nil {
		return r, err
	}
	r.polls, r.trips = obs.Polls()-polls0, obs.RoundTrips()-trips0
	r.idleChainWrites, r.idleDeployWrites = chainWrites.Load()-cw0, deploymentWrites.Load()-dw0
	if r.polls > 0 {
		r.scriptsPerPoll = float64(stats1["eval"]+stats1["evalsha"]-stats0["eval"]-stats0["evalsha"]) / float64(r.polls)
	}

	// Bursts: a Chain idle at zero workers gets burstSize uuids at a random
	// moment of the poll cycle; the clock stops when its Deployment says
	// the new replica count.
	progress(fmt.Sprintf("%d bursts of %d uuids", s.bursts, s.burstSize))
	r.want = int32(math.Ceil(float64(s.burstSize) / 100)) // targetQueueDepth 100
	for i := range s.bursts {
		name := chainName(i * max(n/s.bursts, 1))
		d, err := burst(ctx, rdb, wc, name, s.burstSize, r.want, rand.N(s.poll))
		if err != nil {
			return r, err
		}
		r.reactions = append(r.reactions, d)
	}
	slices.Sort(r.reactions)

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.hwm, r.rss, r.heapInuse = 1024*procStatus("VmHWM"), 1024*procStatus("VmRSS"), float64(ms.HeapInuse)
	r.loadEnd = loadAverage()
	return r, nil
}

// report prints the Markdown section, one column per run.
func report(s settings, results []result) error {
	var out bytes.Buffer
	sizes := make([]string, len(results))
	for i, r := range results {
		sizes[i] = fmt.Sprintf("%d Chains", r.chains)
	}
	row := func(measure, target string, cell func(r result) string) {
		cells := make([]string, len(results))
		for i, r := range results {
			cells[i] = cell(r)
		}
		fmt.Fprintf(&out, "| %s | %s | %s |\n", measure, strings.Join(cells, " | "), target)
	}
	host, _ := os.Hostname()
	fmt.Fprintf(&out, "## Operator\n\n")
	fmt.Fprintf(&out, "Measured %s on %s (%s, %d CPUs, %s) with %s, each run on its own envtest kube-apiserver + etcd and redis-server, all on the same machine; "+
		"the operator runs in the benchmark's process as cmd/manager wires it (controllers.CacheOptions, observer, metrics collector, Chain/Link/Storage reconcilers) "+
		"with --kube-api-qps %g, --kube-api-burst %d, --max-concurrent-reconciles %d and queue poll %v. "+
		"Each Chain has its own ingress list and the CRD's default scaling (targetQueueDepth 100, maxReplicas 10, minReplicas 0). No kubelet runs: figures are about the Deployments' spec.\n\n",
		time.Now().UTC().Format("2006-01-02"), host, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), strings.Join(sizes, " then "), s.qps, s.burst, s.concurrency, s.poll)
	fmt.Fprintf(&out, "| measure | %s | target |\n|---|%s---|\n", strings.Join(sizes, " | "), strings.Repeat("---:|", len(results)))
	row("Chains created → all Ready and measured", "< 30 s for 1,000", func(r result) string { return "**" + r.converged.Round(time.Second).String() + "**" })
	row("… of which creating them (8 clients)", "", func(r result) string { return r.created.Round(time.Second).String() })
	row("… reconciles per Chain; the operator's API requests per Chain", "", func(r result) string {
		return fmt.Sprintf("%.1f; %s", r.reconcilesPerChain, r.requestsPerChain)
	})
	row("Redis round trips per poll (all Chains)", "1", func(r result) string {
		return fmt.Sprintf("**%.2f** (%d in %d polls)", ratio(r.trips, r.polls), r.trips, r.polls)
	})
	row("scripts (reap + measure) redis-server ran per poll", "one per ingress list, in that round trip", func(r result) string { return fmt.Sprintf("%.0f", r.scriptsPerPoll) })
	row("burst → Deployment replicas 0→N, p50", "", func(r result) string {
		return fmt.Sprintf("%s (N=%d)", quantile(r.reactions, 0.5).Round(10*time.Millisecond), r.want)
	})
	row("burst → Deployment replicas 0→N, p95", "< 3 s", func(r result) string {
		return "**" + quantile(r.reactions, 0.95).Round(10*time.Millisecond).String() + "**"
	})
	row("burst → Deployment replicas, max", "", func(r result) string {
		return fmt.Sprintf("%s (of %d)", r.reactions[len(r.reactions)-1].Round(10*time.Millisecond), len(r.reactions))
	})
	row("Chain status writes per minute, idle", "near 0", func(r result) string {
		return fmt.Sprintf("**%.1f** (%d in %v)", float64(r.idleChainWrites)/r.idleFor.Minutes(), r.idleChainWrites, r.idleFor.Round(time.Second))
	})
	row("Deployment writes per minute, idle", "0", func(r result) string { return fmt.Sprintf("%.1f", float64(r.idleDeployWrites)/r.idleFor.Minutes()) })
	row("CPU while idle", "", func(r result) string {
		return fmt.Sprintf("%.1f%% of one core", 100*r.cpuIdle.Seconds()/r.idleFor.Seconds())
	})
	row("peak RSS of the process (VmHWM)", "< 500 MiB at 10,000", func(r result) string {
		return fmt.Sprintf("**%.0f MiB** (now %.0f MiB; Go heap in use %.0f MiB)", r.hwm/(1<<20), r.rss/(1<<20), r.heapInuse/(1<<20))
	})
	row("load average at the start; at the end", "", func(r result) string { return r.loadStart + "; " + r.loadEnd })
	fmt.Fprintln(&out)
	for _, r := range results {
		fmt.Fprintf(&out, "Reaction times with %d Chains, sorted: %s.\n\n", r.chains, joinDurations(r.reactions))
	}
	fmt.Fprintf(&out, "Round trips are the observer's count of pipelines sent (internal/observer's tests check the same "+
		"with a go-redis hook); redis-server's own command statistics show that the one pipeline per poll carries a script for every Chain. "+
		"Requests are counted on the operator's rest.Config (a wrapped transport), by method; WATCH is a watch opened.\n\n")
	fmt.Fprintf(&out, "For comparison, KEDA's defaults (not measured here): its Redis lists scaler polls every 30 s, "+
		"and beyond the first replica the HPA acts at its 15 s sync, so a burst waits up to 30 s to be seen and up to "+
		"45 s for N replicas; with the %v poll the wait to be seen is at most %v, and the replica count is set in the same reconcile. "+
		"The RSS is the whole benchmark process: it includes the benchmark's own API clients and watches and, for the second run, "+
		"whatever the first left (VmHWM only grows), but not the API server and etcd, which are other processes.\n", s.poll, s.poll)
	out.WriteString("Reproduce: `make bench` (or `go run ./hack/bench/operator/`). Settings: BENCH_CHAINS (sizes, 1000,10000), BENCH_BURSTS (20), " +
		"BENCH_BURST_SIZE (250 uuids), BENCH_IDLE_SECONDS (60), BENCH_POLL (2s), BENCH_KUBE_API_QPS, BENCH_KUBE_API_BURST, BENCH_MAX_CONCURRENT_RECONCILES (cmd/manager's defaults).\n")
	_, err := os.Stdout.Write(out.Bytes())
	return err
}

// envInts reads a comma-separated list of positive integers.
func envInts(name, def string) ([]int, error) {
	v := os.Getenv(name)
	if v == "" {
		v = def
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s=%q: want positive integers separated by commas", name, v)
		}
		out = append(out, n)
	}
	return out, nil
}

// loadAverage is /proc/loadavg's three figures: the machine is shared.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// startOperator runs the manager as cmd/manager does, minus leader
// election and the HTTP endpoints.
func startOperator(ctx context.Context, kube *testenv.Kube, redisURL string, s settings, requests *requestCounter) (*observer.Observer, func(), error) {
	poll := s.poll
	// cmd/manager's settings, not envtest's nearly unthrottled client: the
	// creation wave is paced as in a cluster.
	cfg := rest.CopyConfig(kube.Config)
	cfg.QPS, cfg.Burst = float32(s.qps), s.burst
	cfg.Wrap(requests.wrap)
	cacheOptions, err := controllers.CacheOptions(nil)
	if err != nil {
		return nil, nil, err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 kube.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cacheOptions,
		Controller: config.Controller{
			MaxConcurrentReconciles: s.concurrency,
			// One manager per run, in one process.
			SkipNameValidation: ptr.To(true),
		},
	})
	if err != nil {
		return nil, nil, err
	}
	obs := observer.New(poll, ctrl.Log.WithName("observer"))
	if err := mgr.Add(obs); err != nil {
		return nil, nil, err
	}
	chains := &controllers.ChainReconciler{
		Client:          mgr.GetClient(),
		APIReader:       mgr.GetAPIReader(),
		Recorder:        mgr.GetEventRecorderFor("vcon-operator"), //nolint:staticcheck // as cmd/manager
		Observer:        obs,
		DefaultRedisURL: redisURL,
		WorkerImage:     "bench:latest",
		PollInterval:    poll,
	}
	if err := chains.SetupWithManager(mgr); err != nil {
		return nil, nil, err
	}
	if err := (&controllers.StepReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		return nil, nil, err
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(mctx); err != nil {
			fmt.Fprintln(os.Stderr, "bench operator: manager:", err)
		}
	}()
	return obs, func() { cancel(); <-done }, nil
}

func chainName(i int) string { return fmt.Sprintf("chain-%04d", i) }

func createChains(ctx context.Context, c client.Client, n int) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range n {
		g.Go(func() error {
			ch := &vconv1.Chain{
				ObjectMeta: metav1.ObjectMeta{Name: chainName(i), Namespace: namespace},
				Spec: vconv1.ChainSpec{
					IngressLists: []string{"ingress-" + chainName(i)},
					EgressLists:  []string{"egress-" + chainName(i)},
					// The CRD's defaults, spelled out: the typed struct
					// would send zeros, which the schema refuses.
					Workers: vconv1.WorkerSpec{
						MinReplicas: 0, MaxReplicas: 10, TargetQueueDepth: 100, Concurrency: 4,
						ScaleDownDelay: &metav1.Duration{Duration: time.Minute},
					},
				},
			}
			if err := c.Create(ctx, ch); err != nil {
				return fmt.Errorf("create %s: %w", ch.Name, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// waitAllRunning waits until every Chain is Ready with its queues measured.
func waitAllRunning(ctx context.Context, c client.Client, n int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		ok, next := 0, ""
		// In pages: the benchmark's own memory is in the RSS it reports.
		for {
			var list vconv1.ChainList
			if err := c.List(ctx, &list, client.InNamespace(namespace), client.Limit(500), client.Continue(next)); err != nil {
				return err
			}
			for _, ch := range list.Items {
				if apimeta.IsStatusConditionTrue(ch.Status.Conditions, string(vconv1.ConditionReady)) &&
					apimeta.IsStatusConditionTrue(ch.Status.Conditions, string(vconv1.ConditionRedisReachable)) &&
					ch.Status.ObservedGeneration == ch.Generation {
					ok++
				}
			}
			if next = list.Continue; next == "" {
				break
			}
		}
		if ok == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d Chains Ready and measured after %v", ok, n, within)
		}
		// Each look lists every Chain: at 10,000 that is load on the API
		// server the operator competes with, so look less often.
		time.Sleep(time.Duration(max(1, n/2000)) * time.Second)
	}
}

// countModified counts MODIFIED events of a kind in the namespace.
func countModified(ctx context.Context, wc client.WithWatch, list client.ObjectList) (*atomic.Int64, error) {
	w, err := wc.Watch(ctx, list, client.InNamespace(namespace))
	if err != nil {
		return nil, err
	}
	var n atomic.Int64
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			if ev.Type == watch.Modified {
				n.Add(1)
			}
		}
	}()
	return &n, nil
}

// waitQuiet waits until the counter has not moved for quiet.
func waitQuiet(ctx context.Context, n *atomic.Int64, quiet, within time.Duration) error {
	deadline := time.Now().Add(within)
	last, since := n.Load(), time.Now()
	for time.Since(since) < quiet {
		if time.Now().After(deadline) {
			return fmt.Errorf("Chains still being written after %v", within)
		}
		time.Sleep(100 * time.Millisecond)
		if v := n.Load(); v != last {
			last, since = v, time.Now()
		}
	}
	return ctx.Err()
}

// burst waits offset (to land anywhere in the poll cycle), RPUSHes size
// uuids onto the Chain's ingress list and returns how long until the
// Deployment's spec.replicas is want, as seen by a watch opened before.
func burst(ctx context.Context, rdb *redis.Client, wc client.WithWatch, chain string, size int, want int32, offset time.Duration) (time.Duration, error) {
	w, err := wc.Watch(ctx, &appsv1.DeploymentList{}, client.InNamespace(namespace),
		client.MatchingFields{"metadata.name": workload.DeploymentName(chain)})
	if err != nil {
		return 0, err
	}
	defer w.Stop()
	time.Sleep(offset)
	items := make([]any, size)
	for i := range items {
		items[i] = fmt.Sprintf("%s-%06d", chain, i)
	}
	start := time.Now()
	if err := rdb.RPush(ctx, "ingress-"+chain, items...).Err(); err != nil {
		return 0, err
	}
	timeout := time.After(time.Minute)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				return 0, fmt.Errorf("%s: watch closed", chain)
			}
			if d, isDep := ev.Object.(*appsv1.Deployment); isDep && d.Spec.Replicas != nil && *d.Spec.Replicas == want {
				return time.Since(start), nil
			}
		case <-timeout:
			return 0, fmt.Errorf("%s: replicas not %d within a minute of the burst", chain, want)
		}
	}
}

// commandStats returns calls per command from INFO commandstats.
func commandStats(ctx context.Context, rdb *redis.Client) (map[string]int64, error) {
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				out[strings.TrimPrefix(name, "cmdstat_")], _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	return out, nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procStatus returns a /proc/self/status field in KiB.
func procStatus(field string) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb
		}
	}
	return 0
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}

func joinDurations(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.Round(10 * time.Millisecond).String()
	}
	return strings.Join(parts, ", ")
}

// startRedis runs a private redis-server on a free port until stop.
func startRedis() (addr string, stop func(), err error) {
	r, err := testenv.RunRedis()
	if err != nil {
		return "", nil, err
	}
	return r.Addr, r.Stop, nil
}

// requestCounter counts the operator's requests to the API server by
// method (watches apart), to show where a wave of new Chains spends its
// time.
type requestCounter struct {
	mu       sync.Mutex
	byMethod map[string]int64
}

func (c *requestCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		method := req.Method
		if req.URL.Query().Get("watch") == "true" {
			method = "WATCH"
		}
		c.mu.Lock()
		if c.byMethod == nil {
			c.byMethod = map[string]int64{}
		}
		c.byMethod[method]++
		c.mu.Unlock()
		return rt.RoundTrip(req)
	})
}

func (c *requestCounter) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.byMethod)
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// perChain formats requests by method since before, per Chain.
func perChain(before, after map[string]int64, chains int) string {
	var total int64
	var parts []string
	for _, m := range slices.Sorted(maps.Keys(after)) {
		n := after[m] - before[m]
		if n == 0 {
			continue
		}
		total += n
		parts = append(parts, fmt.Sprintf("%s %.1f", m, float64(n)/float64(chains)))
	}
	return fmt.Sprintf("%.1f (%s)", float64(total)/float64(chains), strings.Join(parts, ", "))
}

// reconciles is controller-runtime's count of the Chain controller's
// reconciles so far.
func reconciles() float64 {
	mfs, err := crmetrics.Registry.Gather()
	if err != nil {
		return math.NaN()
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == "chain" {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}
