// Command worker benchmarks the conserver worker: the throughput of 20,000
// vCons (about 5 KB each) through [links.tag] + storage.redis_storage +
// egress at concurrency 32, against a floor measured in the same run on
// the same redis-server: a minimal Go loop of 32 goroutines issuing the
// same Redis commands per vCon as the worker (BLMOVE; PTTL, JSON.GET, GETRANGE,
// PEXPIRE GT, LPOP context, HMGET state in one pipeline; one outcome script
// (queue.ExecChecked) with SET KEEPTTL, PEXPIRE GT, SET EX, [RPUSH + EXPIRE
// context,] RPUSH egress, LREM and, as the busy worker does, the LMOVE that
// takes the next uuid) with no pipeline machinery, and with the worker's GOGC (400).
// redis-server's command statistics confirm that both send the same
// commands. Two series: the default configuration (no trace context, no
// exporter) and a traced one (a producer context on every vCon, spans
// exported over OTLP to a receiver in this process). It also reads the
// worker's peak RSS (VmHWM) and its CPU while idle.
//
// It prints its section of docs/benchmarks.md (markdown) on stdout; run it
// through hack/bench.sh. Needs redis-server in PATH.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/hack/bench/benchutil"
	"github.com/vcon-operator/vcon-operator/internal/apiwire"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/vcon/sample"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

func main() {
	n := flag.Int("n", 20000, "vCons per run")
	size := flag.Int("size", 5000, "approximate vCon size in bytes")
	concurrency := flag.Int("concurrency", 32, "worker concurrency and floor goroutines")
	rounds := flag.Int("rounds", 7, "rounds per series, each a floor run then a worker run")
	flag.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the worker's last run of a series to this file")
	flag.StringVar(&profileSeries, "profile-series", "default", "the series -cpuprofile profiles: default or traced")
	flag.StringVar(&floorProfile, "floor-cpuprofile", "", "write a CPU profile of the benchmark process during the floor's last run of the -profile-series series")
	flag.IntVar(&profileSeconds, "profile-seconds", 2, "how long -cpuprofile profiles the worker, from its run's start")
	flag.Parse()
	if err := run(*n, *size, *concurrency, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "bench worker:", err)
		os.Exit(1)
	}
}

var cpuProfile, profileSeries string

var profileSeconds int

// floorProfile, when set, is where the floor's CPU profile goes: the
// same stages as the worker's, to see which of them the worker adds.
var floorProfile string

// floorGCPercent is the GOGC the floor runs with: the worker's default
// (cmd/conserver's defaultGCPercent).
const floorGCPercent = 400

// traceContext is a trace context record as the worker writes it for
// egress (conserver's format).
const traceContext = `{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","trace_flags":1,"is_sampled":true}`

const (
	in  = "bench-in"
	out = "bench-out"
)

func run(n, size, concurrency, rounds int) error {
	rig, err := benchutil.NewWorkerRig("worker")
	if err != nil {
		return err
	}
	defer rig.Close()
	dir, bin, srv, rdb := rig.Dir, rig.Bin, rig.Redis, rig.Client
	addr := srv.Addr
	opts, _ := redis.ParseURL("redis://" + addr)
	ctx := context.Background()

	cfg := filepath.Join(dir, "conserver.yml")
	if err := os.WriteFile(cfg, []byte(`
links:
  tag: {module: links.tag, options: {tags: [benchmarked]}}
storages:
  copy: {module: storage.redis_storage}
chains:
  bench: {links: [tag], storages: [copy], ingress_lists: [`+in+`], egress_lists: [`+out+`]}
`), 0o600); err != nil {
		return err
	}

	// A local OTLP receiver for the traced series: it reads and drops
	// what the worker exports.
	var exported atomic.Int64
	otlp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, _ := io.Copy(io.Discard, r.Body)
		exported.Add(m)
	}))
	defer otlp.Close()

	modes := []mode{
		{name: "default", env: nil},
		{name: "traced", traced: true, env: []string{
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=" + otlp.URL + "/v1/traces", "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"}},
	}
	series := make([][2][]result, len(modes))
	var peakRSS int64
	for i, m := range modes {
		for r := range rounds {
			fprofile := ""
			if r == rounds-1 && m.name == profileSeries {
				fprofile = floorProfile
			}
			f, err := floorRun(ctx, rdb, opts, srv.PID, n, size, concurrency, m.traced, fprofile)
			if err != nil {
				return fmt.Errorf("%s floor run %d: %w", m.name, r+1, err)
			}
			profile := ""
			if r == rounds-1 && m.name == profileSeries {
				profile = cpuProfile
			}
			w, err := workerRun(ctx, rdb, bin, cfg, addr, srv.PID, dir, n, size, concurrency, m, profile)
			if err != nil {
				return fmt.Errorf("%s worker run %d: %w", m.name, r+1, err)
			}
			series[i][0] = append(series[i][0], f)
			series[i][1] = append(series[i][1], w)
			peakRSS = max(peakRSS, w.rss)
			fmt.Fprintf(os.Stderr, "%s round %d: floor %s (%.0f/s, %s CPU/vCon, redis %s), worker %s (%.0f/s, %s CPU/vCon, redis %s, mean in flight %.1f), ratio %.0f%%, worker peak RSS %.1f MiB\n",
				m.name, r+1, f.elapsed.Round(time.Millisecond), rate(n, f.elapsed), perVCon(f.clientCPU, n), perVCon(f.redisCPU, n),
				w.elapsed.Round(time.Millisecond), rate(n, w.elapsed), perVCon(w.clientCPU, n), perVCon(w.redisCPU, n), w.meanInFlight,
				100*float64(f.elapsed)/float64(w.elapsed), float64(w.rss)/(1<<20))
		}
		fmt.Fprintf(os.Stderr, "%s: redis-server µs per vCon inside commands, last round: floor %s; worker %s\n", m.name,
			commandMicros(series[i][0][rounds-1].commands, n), commandMicros(series[i][1][rounds-1].commands, n))
		fmt.Fprintf(os.Stderr, "%s: redis commands per vCon, last round: floor %s; worker %s\n", m.name,
			perVConCalls(series[i][0][rounds-1].commands, n), perVConCalls(series[i][1][rounds-1].commands, n))
	}
	if exported.Load() == 0 {
		return errors.New("the traced series exported no spans: the comparison would not be traced")
	}

	host, _ := os.Hostname()
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf(`## Worker

Run %s on %s (%s, %d CPUs, load average at the end: %s; Go %s, redis-server on loopback, no RedisJSON so bodies are plain strings).
%d vCons of about %d bytes through [links.tag] + storage.redis_storage + egress at concurrency %d; %d rounds per series, each a floor run then a worker run on the same redis-server.
The floor is %d goroutines issuing the same Redis commands per vCon as the worker (redis-server's command statistics below show it) through the same client functions (queue.ExecChecked for the outcome), taking as the worker does (one fetcher blocked in BLMOVE hands uuids to idle goroutines; a busy one takes its successor in its outcome script), with no pipeline machinery, and with the worker's GOGC (400).

| series | floor, best | worker, best | best / best | median of the rounds' ratios | client CPU per vCon (best runs), floor / worker | redis-server CPU per vCon (best runs), floor / worker |
|---|---|---|---|---|---|---|
`, time.Now().UTC().Format("2006-01-02"), host, runtime.GOARCH, runtime.NumCPU(), strings.Join(strings.Fields(string(load))[:3], " "), runtime.Version(),
		n, size, concurrency, rounds, concurrency)
	var defaultRatio, defaultBest float64
	medians := make([]float64, len(modes))   // throughput, worker / floor
	cpuRatios := make([]float64, len(modes)) // client CPU per vCon, worker / floor
	workerCPU := make([]float64, len(modes)) // client CPU per vCon, worker, median
	var maxIdle time.Duration
	for i := range modes {
		for _, w := range series[i][1] {
			maxIdle = max(maxIdle, w.idleCPU)
		}
	}
	for i, m := range modes {
		floors, workers := series[i][0], series[i][1]
		ratios := make([]float64, rounds)
		for r := range rounds {
			ratios[r] = float64(floors[r].elapsed) / float64(workers[r].elapsed)
		}
		sort.Float64s(ratios)
		median := ratios[rounds/2]
		if rounds%2 == 0 {
			median = (ratios[rounds/2-1] + ratios[rounds/2]) / 2
		}
		medians[i] = median
		cpu := make([]float64, rounds)
		wcpu := make([]float64, rounds)
		for r := range rounds {
			cpu[r] = float64(workers[r].clientCPU) / float64(max(floors[r].clientCPU, 1))
			wcpu[r] = float64(workers[r].clientCPU) / float64(n)
		}
		cpuRatios[i], workerCPU[i] = medianOf(cpu), medianOf(wcpu)
		bf, bw := best(floors), best(workers)
		ratio := float64(bf.elapsed) / float64(bw.elapsed)
		if i == 0 {
			defaultRatio, defaultBest = median, ratio
		}
		fmt.Printf("| %s | %.0f vCons/s | %.0f vCons/s | %.0f%% | **%.0f%%** | %s / %s | %s / %s |\n", m.description(),
			rate(n, bf.elapsed), rate(n, bw.elapsed), 100*ratio, 100*median,
			perVCon(bf.clientCPU, n), perVCon(bw.clientCPU, n), perVCon(bf.redisCPU, n), perVCon(bw.redisCPU, n))
	}
	fmt.Printf(`
- Worker throughput / floor, default configuration: **%.0f%%** as the median of the rounds' ratios (each round's floor and worker ran back to back), %.0f%% best against best (the targets are in the table below). The median is the headline: on this shared machine single runs swing by tens of percent either way, and a pair of adjacent runs shares the machine's state.
- Worker peak RSS (VmHWM), all runs: **%.1f MiB** (target under 100 MiB).
- Idle worker (every fetcher blocked in BLMOVE, %s before each run's pushes): at most **%.2f%% of one core** over all runs; one 10 ms clock tick in that window, the resolution of the measurement, is %.2f%% (target about 0).
- Redis commands per vCon (redis-server's commandstats over the last round; JSON.GET, unknown to a server without RedisJSON, is sent by both and not counted): default, floor %s, worker %s; traced, floor %s, worker %s.
- Run times, default: floor %s; worker %s. Traced: floor %s; worker %s.

What the worker does per vCon: it takes the uuid (BLMOVE when idle; while busy, the take of the next uuid rides in the previous vCon's outcome script); reads the body, its type and TTL and the producer's trace context in one pipeline; decodes, validates and normalises the document, runs the link, encodes it; writes the outcome (body, storage copy, egress push, in-flight removal) in one type-checked script (queue.ExecChecked). The traced series adds a producer trace context per vCon, which the worker continues (a span per vCon, link and storage, exported over OTLP http/protobuf to a receiver in the benchmark process) and writes for egress; its floor writes the same context records.
The worker runs with its default GOGC of 400 (cmd/conserver; lowered only while the live heap exceeds 16 MiB, see the memory section; GOGC in the environment overrides it).
Profile: `+"`go run ./hack/bench/worker -cpuprofile worker.prof`"+` (the worker serves pprof with `+"`--pprof-addr`"+`); with `+"`-floor-cpuprofile floor.prof`"+` too it prints where each vCon's client CPU goes, stage by stage, in the floor and the worker.
Reproduce: `+"`make bench`"+` (or `+"`go run ./hack/bench/worker`"+`).
`, 100*defaultRatio, 100*defaultBest, float64(peakRSS)/(1<<20), idleWindow, 100*maxIdle.Seconds()/idleWindow.Seconds(), 100*0.01/idleWindow.Seconds(),
		perVConCalls(series[0][0][rounds-1].commands, n), perVConCalls(series[0][1][rounds-1].commands, n),
		perVConCalls(series[1][0][rounds-1].commands, n), perVConCalls(series[1][1][rounds-1].commands, n),
		durations(series[0][0]), durations(series[0][1]), durations(series[1][0]), durations(series[1][1]))
	traceCost := workerCPU[1] / workerCPU[0]
	fmt.Printf(`
Targets (issue #21), each the median over the rounds of this run:

| target | measured | result |
|---|---|---|
| untraced worker throughput at least 90%% of the floor's | %.0f%% | %s |
| traced worker throughput at least 80%% of the floor's | %.0f%% | %s |
| untraced worker client CPU per vCon at most 110%% of the floor's | %.0f%% | %s |
| traced worker client CPU per vCon at most 115%% of the untraced worker's | %.0f%% | %s |
`, 100*medians[0], verdict(medians[0] >= 0.90), 100*medians[1], verdict(medians[1] >= 0.80),
		100*cpuRatios[0], verdict(cpuRatios[0] <= 1.10), 100*traceCost, verdict(traceCost <= 1.15))
	fmt.Fprintf(os.Stderr, "targets: untraced %.0f%% (>= 90%%: %s), traced %.0f%% (>= 80%%: %s), client CPU worker/floor %.0f%% (<= 110%%: %s), traced/untraced worker CPU %.0f%% (<= 115%%: %s)\n",
		100*medians[0], verdict(medians[0] >= 0.90), 100*medians[1], verdict(medians[1] >= 0.80),
		100*cpuRatios[0], verdict(cpuRatios[0] <= 1.10), 100*traceCost, verdict(traceCost <= 1.15))
	if cpuProfile != "" && floorProfile != "" {
		for i, m := range modes {
			if m.name == profileSeries {
				return printStages(floorProfile, cpuProfile, series[i][0][rounds-1], series[i][1][rounds-1], n)
			}
		}
	}
	return nil
}

func verdict(pass bool) string {
	if pass {
		return "PASS"
	}
	return "FAIL"
}

// medianOf is the median of xs (sorted in place).
func medianOf(xs []float64) float64 {
	sort.Float64s(xs)
	if len(xs)%2 == 0 {
		return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
	}
	return xs[len(xs)/2]
}

// mode is one series of the comparison.
type mode struct {
	name   string
	traced bool     // producers attach trace context; the worker exports spans
	env    []string // the worker's environment on top of the benchmark's
}

func (m mode) description() string {
	if m.traced {
		return "traced: producer trace context on every vCon, spans exported over OTLP"
	}
	return "default: no trace context, no exporter"
}

func best(rs []result) result {
	b := rs[0]
	for _, r := range rs[1:] {
		if r.elapsed < b.elapsed {
			b = r
		}
	}
	return b
}

func rate(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }

func perVCon(cpu time.Duration, n int) string {
	return fmt.Sprintf("%.0f µs", float64(cpu.Microseconds())/float64(n))
}

func durations(rs []result) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.elapsed.Round(time.Millisecond).String())
	}
	return strings.Join(s, ", ")
}

// load empties Redis and stores n bodies; the uuids are returned to be
// pushed once the consumers wait.
func load(ctx context.Context, rdb *redis.Client, n, size int, traced bool) ([]any, error) {
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		return nil, err
	}
	uuids := make([]any, n)
	pipe := rdb.Pipeline()
	for i := range n {
		u := fmt.Sprintf("0190d6f0-1c2d-7a00-8000-%012d", i)
		uuids[i] = u
		pipe.Set(ctx, "vcon:"+u, sample.Document(u, size), 0)
		if traced {
			pipe.RPush(ctx, "context:"+in+":"+u, traceContext)
		}
		if pipe.Len() == 500 {
			if _, err := pipe.Exec(ctx); err != nil {
				return nil, err
			}
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	return uuids, nil
}

// pushAndWait queues every uuid in one command and waits until egress
// holds them all; the time between is the run's.
func pushAndWait(ctx context.Context, rdb *redis.Client, uuids []any, limit time.Duration, poll func()) (time.Duration, error) {
	start := time.Now()
	if err := rdb.RPush(ctx, in, uuids...).Err(); err != nil {
		return 0, err
	}
	for {
		if poll != nil {
			poll()
		}
		if rdb.LLen(ctx, out).Val() >= int64(len(uuids)) {
			return time.Since(start), nil
		}
		if time.Since(start) > limit {
			return 0, fmt.Errorf("only %d of %d done after %s", rdb.LLen(ctx, out).Val(), len(uuids), limit)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// result is one run: its time, and the CPU its client process and
// redis-server spent during it.
type result struct {
	elapsed, clientCPU, redisCPU time.Duration
	commands                     map[string]int64 // redis-server's calls per command during the run
	meanInFlight                 float64          // worker runs only
	rss                          int64            // worker runs only
	idleCPU                      time.Duration    // worker runs only: CPU used in idleWindow before the pushes
}

// idleWindow is how long each worker run first sits idle, its CPU measured.
const idleWindow = 3 * time.Second

// retention is the worker's default queued retention in milliseconds: it
// extends a body's TTL to it when it takes the vCon and again when it
// pushes it to egress (PEXPIRE ... GT), and so does the floor.
var retention = apiwire.DefaultQueuedRetention.Milliseconds()

func floorRun(ctx context.Context, rdb *redis.Client, opts *redis.Options, redisPID, n, size, concurrency int, traced bool, profile string) (result, error) {
	uuids, err := load(ctx, rdb, n, size, traced)
	if err != nil {
		return result{}, err
	}
	if profile != "" {
		// The whole run, pushes and the idle wait included (their stacks are in
		// pushAndWait, apart from the floor's).
		pf, err := os.Create(profile)
		if err != nil {
			return result{}, err
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			pf.Close()
			return result{}, err
		}
		defer func() {
			pprof.StopCPUProfile()
			pf.Close()
		}()
	}
	// The worker's collector setting (cmd/conserver's default GOGC):
	// at Go's default of 100 the floor spent about 8 µs per vCon
	// collecting, which made the worker look closer to it than it is.
	defer debug.SetGCPercent(debug.SetGCPercent(floorGCPercent))
	client := redis.NewClient(opts) // same pool settings as the worker's client
	defer client.Close()
	stop, cancel := context.WithCancel(ctx)
	// The worker's shape of taking (pipeline.Runner): one fetcher blocks
	// in BLMOVE and hands each uuid to an idle slot; a busy slot takes
	// its successor in its outcome script and goes back to waiting only
	// when the list is empty. One in-flight list, as the worker's. A
	// BLMOVE per slot instead holds a pooled connection for up to its
	// timeout: near the end of a run the idle slots' BLMOVEs held every
	// connection while the last vCons waited for one, a stall of a whole
	// second in some runs (the traced floor took 2.3 s instead of 1.35).
	inflight := queue.InFlightKey(in, "floor")
	handed := make(chan string)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for stop.Err() == nil {
			u, err := client.BLMove(stop, in, inflight, "LEFT", "RIGHT", time.Second).Result()
			if err != nil {
				continue
			}
			select {
			case handed <- u:
			case <-stop.Done():
			}
		}
	}()
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := "" // taken by the previous outcome, as the worker does while busy
			for stop.Err() == nil {
				u := next
				if u == "" {
					select {
					case u = <-handed:
					case <-stop.Done():
						return
					}
				}
				body := "vcon:" + u
				read := client.Pipeline()
				read.PTTL(stop, body) // first, as the worker's read (vconstore.QueueGet)
				read.Do(stop, "JSON.GET", body)
				get := read.GetRange(stop, body, 0, vconstore.DefaultMaxBodyBytes)
				read.Do(stop, "PEXPIRE", body, retention, "GT")
				read.LPop(stop, "context:"+in+":"+u)
				queue.QueueReadState(stop, read, in, u)
				_, _ = read.Exec(stop)
				data, _ := get.Bytes()
				// The worker's commit: one type-checked outcome script
				// with the body, the storage copy, the egress push (with
				// its trace context when traced), the in-flight removal.
				commit := client.Pipeline()
				commit.SetArgs(stop, body, data, redis.SetArgs{KeepTTL: true})
				commit.Do(stop, "PEXPIRE", body, retention, "GT")
				commit.Set(stop, "vcon_storage:"+u, data, 604800*time.Second)
				if traced {
					ctxKey := "context:" + out + ":" + u
					commit.RPush(stop, ctxKey, traceContext)
					commit.Expire(stop, ctxKey, queue.DefaultContextTTL)
				}
				commit.RPush(stop, out, u)
				commit.LRem(stop, inflight, 1, u)
				take := commit.LMove(stop, in, inflight, "LEFT", "RIGHT")
				if err := queue.ExecChecked(stop, client, commit); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, redis.Nil) {
					fmt.Fprintln(os.Stderr, "floor commit:", err)
				}
				next = take.Val()
			}
		}()
	}
	time.Sleep(200 * time.Millisecond) // let the fetcher block in BLMOVE
	self0, redis0, cmds0 := selfCPU(), procCPU(redisPID), commandCalls(ctx, rdb)
	d, err := pushAndWait(ctx, rdb, uuids, 10*time.Minute, nil)
	res := result{elapsed: d, clientCPU: selfCPU() - self0, redisCPU: procCPU(redisPID) - redis0, commands: diffCalls(commandCalls(ctx, rdb), cmds0)}
	cancel()
	wg.Wait()
	return res, err
}

func workerRun(ctx context.Context, rdb *redis.Client, bin, cfg, redisAddr string, redisPID int, dir string, n, size, concurrency int, m mode, profile string) (result, error) {
	uuids, err := load(ctx, rdb, n, size, m.traced)
	if err != nil {
		return result{}, err
	}
	port, err := benchutil.FreePort()
	if err != nil {
		return result{}, err
	}
	pprofPort, err := benchutil.FreePort()
	if err != nil {
		return result{}, err
	}
	httpAddr := "127.0.0.1:" + strconv.Itoa(port)
	logf, err := os.Create(filepath.Join(dir, "worker.log"))
	if err != nil {
		return result{}, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--config", cfg, "--redis-url", "redis://"+redisAddr, "--http-addr", httpAddr,
		"--concurrency", strconv.Itoa(concurrency), "--worker-id", "bench",
		"--pprof-addr", "127.0.0.1:"+strconv.Itoa(pprofPort))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), m.env...)
	stop, err := benchutil.StartWorker(cmd, httpAddr)
	if err != nil {
		return result{}, err
	}
	defer stop()
	// Idle: every fetcher blocks in BLMOVE; what the process spends now is
	// its heartbeat, reaping and the runtime's background work.
	time.Sleep(200 * time.Millisecond)
	idle0 := procCPU(cmd.Process.Pid)
	time.Sleep(idleWindow)
	idleCPU := procCPU(cmd.Process.Pid) - idle0
	profiled := make(chan error, 1)
	if profile != "" {
		// The profile covers most of the run; it starts with the pushes.
		go func() {
			profiled <- fetchProfile("http://127.0.0.1:"+strconv.Itoa(pprofPort)+"/debug/pprof/profile?seconds="+strconv.Itoa(profileSeconds), profile)
		}()
	} else {
		profiled <- nil
	}
	var inFlight inFlightSampler
	worker0, redis0, cmds0 := procCPU(cmd.Process.Pid), procCPU(redisPID), commandCalls(ctx, rdb)
	d, err := pushAndWait(ctx, rdb, uuids, 10*time.Minute, func() { inFlight.sample(ctx, rdb) })
	if err != nil {
		return result{}, err
	}
	res := result{elapsed: d, clientCPU: procCPU(cmd.Process.Pid) - worker0, redisCPU: procCPU(redisPID) - redis0,
		commands: diffCalls(commandCalls(ctx, rdb), cmds0), meanInFlight: inFlight.mean(), idleCPU: idleCPU}
	if err := <-profiled; err != nil {
		return result{}, fmt.Errorf("cpu profile: %w", err)
	}
	res.rss, err = benchutil.VmHWM(cmd.Process.Pid)
	return res, err
}

// inFlightSampler averages the length of the worker's in-flight list: how
// many of its slots held a vCon.
type inFlightSampler struct{ sum, n int64 }

func (s *inFlightSampler) sample(ctx context.Context, rdb *redis.Client) {
	if l, err := rdb.LLen(ctx, queue.InFlightKey(in, "bench")).Result(); err == nil {
		s.sum += l
		s.n++
	}
}

func (s *inFlightSampler) mean() float64 {
	if s.n == 0 {
		return 0
	}
	return float64(s.sum) / float64(s.n)
}

func fetchProfile(url, file string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// commandCalls reads redis-server's count of calls per command, and the
// microseconds it spent in each (as "<name> usec").
func commandCalls(ctx context.Context, rdb *redis.Client) map[string]int64 {
	info, _ := rdb.Info(ctx, "commandstats").Result()
	calls := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		// cmdstat_lmove:calls=20000,usec=31000,usec_per_call=1.55,...
		name, rest, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "cmdstat_"), ":calls=")
		if !ok {
			continue
		}
		fields := strings.Split(rest, ",")
		n, _ := strconv.ParseInt(fields[0], 10, 64)
		calls[name] = n
		if len(fields) > 1 {
			us, _ := strconv.ParseInt(strings.TrimPrefix(fields[1], "usec="), 10, 64)
			calls[name+" usec"] = us
		}
	}
	return calls
}

// diffCalls is the calls made between two readings, leaving out the
// benchmark's own polling (llen, info).
func diffCalls(after, before map[string]int64) map[string]int64 {
	d := map[string]int64{}
	for name, n := range after {
		if name == "llen" || name == "info" {
			continue
		}
		if n -= before[name]; n > 0 {
			d[name] = n
		}
	}
	return d
}

func perVConCalls(calls map[string]int64, n int) string {
	names := make([]string, 0, len(calls))
	var total int64
	for name, c := range calls {
		if strings.HasSuffix(name, " usec") {
			continue
		}
		names = append(names, name)
		total += c
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, name := range names {
		parts = append(parts, fmt.Sprintf("%s %.2f", name, float64(calls[name])/float64(n)))
	}
	return fmt.Sprintf("%.2f (%s)", float64(total)/float64(n), strings.Join(parts, ", "))
}

func commandMicros(calls map[string]int64, n int) string {
	var parts []string
	var total int64
	for name, us := range calls {
		if cmd, ok := strings.CutSuffix(name, " usec"); ok {
			parts = append(parts, fmt.Sprintf("%s %.1f", cmd, float64(us)/float64(n)))
			total += us
		}
	}
	sort.Strings(parts)
	return fmt.Sprintf("%.1f (%s)", float64(total)/float64(n), strings.Join(parts, ", "))
}

// procCPU is the user plus system CPU time a process has used so far.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name (which may hold spaces) start
	// after its closing parenthesis; utime and stime are the 14th and
	// 15th fields of the whole line, in clock ticks of 1/100 s.
	rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
	f := strings.Fields(rest)
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// selfCPU is this process's user plus system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
