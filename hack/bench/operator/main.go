// Command operator measures the operator at scale: 1,000 Chains on one
// kube-apiserver (envtest) and one redis-server, the operator running
// in-process exactly as cmd/manager wires it (observer, collector, the
// three reconcilers) with the default 2 s queue poll. It prints a Markdown
// section for docs/benchmarks.md (hack/bench.sh runs it).
//
//	go run ./hack/bench/operator/
//
// It reports Redis round trips per poll (from the observer's counters,
// corroborated by the commands redis-server processed per poll), the time
// from a burst of uuids on a Chain's ingress list to its Deployment's new
// replica count, status writes per minute while idle, and the process's
// peak RSS. Settings: BENCH_CHAINS (1000), BENCH_BURSTS (20),
// BENCH_BURST_SIZE (250 uuids), BENCH_IDLE_SECONDS (60), BENCH_POLL (2s).
package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
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
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
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
	chains, bursts, burstSize int
	idle, poll                time.Duration
}

func run() error {
	s := settings{
		chains:    benchutil.EnvInt("BENCH_CHAINS", 1000),
		bursts:    benchutil.EnvInt("BENCH_BURSTS", 20),
		burstSize: benchutil.EnvInt("BENCH_BURST_SIZE", 250),
		idle:      time.Duration(benchutil.EnvInt("BENCH_IDLE_SECONDS", 60)) * time.Second,
	}
	var err error
	if s.poll, err = benchutil.EnvDuration("BENCH_POLL", 2*time.Second); err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.Level(zapcore.ErrorLevel), zap.WriteTo(os.Stderr)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	progress("starting kube-apiserver and etcd")
	kube, err := testenv.StartKubeEnv()
	if err != nil {
		return err
	}
	defer func() { _ = kube.Stop() }()
	addr, stopRedis, err := startRedis()
	if err != nil {
		return err
	}
	defer stopRedis()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()

	obs, stopOperator, err := startOperator(ctx, kube, "redis://"+addr, s.poll)
	if err != nil {
		return err
	}
	defer stopOperator()

	c := kube.Client
	wc, err := client.NewWithWatch(kube.Config, client.Options{Scheme: kube.Scheme})
	if err != nil {
		return err
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		return err
	}

	// Count every write to a Chain and a Deployment from here on.
	chainWrites, err := countModified(ctx, wc, &vconv1.ChainList{})
	if err != nil {
		return err
	}
	deploymentWrites, err := countModified(ctx, wc, &appsv1.DeploymentList{})
	if err != nil {
		return err
	}

	progress(fmt.Sprintf("creating %d Chains", s.chains))
	start := time.Now()
	if err := createChains(ctx, c, s.chains); err != nil {
		return err
	}
	created := time.Since(start)
	if err := waitAllRunning(ctx, c, s.chains, 15*time.Minute); err != nil {
		return err
	}
	converged := time.Since(start)
	progress(fmt.Sprintf("all %d Chains Ready and measured after %v", s.chains, converged.Round(time.Second)))

	// Idle: let the creation wave's writes end, then watch a window.
	if err := waitQuiet(ctx, chainWrites, 3*s.poll, 5*time.Minute); err != nil {
		return err
	}
	progress(fmt.Sprintf("idle window of %v", s.idle))
	cw0, dw0 := chainWrites.Load(), deploymentWrites.Load()
	polls0, trips0 := obs.Polls(), obs.RoundTrips()
	stats0, err := commandStats(ctx, rdb)
	if err != nil {
		return err
	}
	cpu0 := cpuTime()
	idleStart := time.Now()
	select {
	case <-time.After(s.idle):
	case <-ctx.Done():
		return ctx.Err()
	}
	idleFor := time.Since(idleStart)
	cpuIdle := cpuTime() - cpu0
	stats1, err := commandStats(ctx, rdb)
	if err != nil {
		return err
	}
	polls, trips := obs.Polls()-polls0, obs.RoundTrips()-trips0
	idleChainWrites, idleDeploymentWrites := chainWrites.Load()-cw0, deploymentWrites.Load()-dw0
	perMinute := func(n int64) float64 { return float64(n) / idleFor.Minutes() }
	commandsPerPoll := map[string]float64{}
	for _, cmd := range []string{"eval", "evalsha"} {
		if polls > 0 {
			commandsPerPoll[cmd] = float64(stats1[cmd]-stats0[cmd]) / float64(polls)
		}
	}

	// Bursts: a Chain idle at zero workers gets burstSize uuids at a random
	// moment of the poll cycle; the clock stops when its Deployment says
	// the new replica count.
	progress(fmt.Sprintf("%d bursts of %d uuids", s.bursts, s.burstSize))
	want := int32(math.Ceil(float64(s.burstSize) / 100)) // targetQueueDepth 100
	var reactions []time.Duration
	for i := range s.bursts {
		name := chainName(i * max(s.chains/s.bursts, 1))
		d, err := burst(ctx, rdb, wc, name, s.burstSize, want, rand.N(s.poll))
		if err != nil {
			return err
		}
		reactions = append(reactions, d)
	}
	slices.Sort(reactions)

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	hwm, rss := procStatus("VmHWM"), procStatus("VmRSS")

	var out bytes.Buffer
	fmt.Fprintf(&out, "## Operator\n\n")
	fmt.Fprintf(&out, "Measured %s with %d Chains on one envtest kube-apiserver + etcd and one redis-server, all on the same machine; the operator "+
		"runs in the benchmark's process as cmd/manager wires it (observer, metrics collector, Chain/Link/Storage reconcilers), "+
		"queue poll %v. Each Chain has its own ingress list and the CRD's default scaling (targetQueueDepth 100, "+
		"maxReplicas 10, minReplicas 0). No kubelet runs: figures are about the Deployments' spec.\n\n",
		time.Now().UTC().Format("2006-01-02"), s.chains, s.poll)
	fmt.Fprintf(&out, "| measure | result | target |\n|---|---:|---|\n")
	fmt.Fprintf(&out, "| Redis round trips per poll (all %d Chains) | **%.2f** (%d in %d polls) | 1 |\n", s.chains, ratio(trips, polls), trips, polls)
	fmt.Fprintf(&out, "| scripts (reap + measure) redis-server ran per poll | %.0f | one per ingress list, in that round trip |\n",
		commandsPerPoll["eval"]+commandsPerPoll["evalsha"])
	fmt.Fprintf(&out, "| burst → Deployment replicas 0→%d, p50 | **%s** | |\n", want, reactions[len(reactions)/2].Round(10*time.Millisecond))
	fmt.Fprintf(&out, "| burst → Deployment replicas 0→%d, p95 | **%s** | < 3 s |\n", want, quantile(reactions, 0.95).Round(10*time.Millisecond))
	fmt.Fprintf(&out, "| burst → Deployment replicas, max (of %d) | %s | |\n", len(reactions), reactions[len(reactions)-1].Round(10*time.Millisecond))
	fmt.Fprintf(&out, "| Chain status writes per minute, idle | **%.1f** (%d in %v) | near 0 |\n", perMinute(idleChainWrites), idleChainWrites, idleFor.Round(time.Second))
	fmt.Fprintf(&out, "| Deployment writes per minute, idle | %.1f | 0 |\n", perMinute(idleDeploymentWrites))
	fmt.Fprintf(&out, "| CPU while idle | %.1f%% of one core | |\n", 100*cpuIdle.Seconds()/idleFor.Seconds())
	fmt.Fprintf(&out, "| peak RSS of the process (VmHWM) | **%.0f MiB** (now %.0f MiB; Go heap in use %.0f MiB) | < 200 MiB |\n",
		hwm/1024, rss/1024, float64(ms.HeapInuse)/(1<<20))
	fmt.Fprintf(&out, "| creating %d Chains; all Ready and measured | %v; %v | |\n\n", s.chains, created.Round(time.Second), converged.Round(time.Second))
	fmt.Fprintf(&out, "Reaction times, sorted: %s.\n\n", joinDurations(reactions))
	fmt.Fprintf(&out, "Round trips are the observer's count of pipelines sent (internal/observer's tests check the same "+
		"with a go-redis hook); redis-server's own command statistics show that the one pipeline per poll carries a script for every Chain.\n\n")
	fmt.Fprintf(&out, "For comparison, KEDA's defaults (not measured here): its Redis lists scaler polls every 30 s, "+
		"and beyond the first replica the HPA acts at its 15 s sync, so a burst waits up to 30 s to be seen and up to "+
		"45 s for N replicas; with the %v poll the wait to be seen is at most %v, and the replica count is set in the same reconcile. "+
		"The RSS includes the benchmark's own API and Redis clients (the API server and etcd are other processes).\n", s.poll, s.poll)
	_, err = os.Stdout.Write(out.Bytes())
	return err
}

// startOperator runs the manager as cmd/manager does, minus leader
// election and the HTTP endpoints.
func startOperator(ctx context.Context, kube *testenv.Kube, redisURL string, poll time.Duration) (*observer.Observer, func(), error) {
	cacheOptions, err := controllers.CacheOptions(nil)
	if err != nil {
		return nil, nil, err
	}
	mgr, err := ctrl.NewManager(kube.Config, ctrl.Options{
		Scheme:                 kube.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cacheOptions,
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
		var list vconv1.ChainList
		if err := c.List(ctx, &list, client.InNamespace(namespace)); err != nil {
			return err
		}
		ok := 0
		for _, ch := range list.Items {
			if apimeta.IsStatusConditionTrue(ch.Status.Conditions, string(vconv1.ConditionReady)) &&
				apimeta.IsStatusConditionTrue(ch.Status.Conditions, string(vconv1.ConditionRedisReachable)) &&
				ch.Status.ObservedGeneration == ch.Generation {
				ok++
			}
		}
		if ok == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d Chains Ready and measured after %v", ok, n, within)
		}
		time.Sleep(time.Second)
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
