// Command worker benchmarks the conserver worker: the throughput of 20,000
// vCons (about 5 KB each) through [links.tag] + storage.redis_storage +
// egress at concurrency 32, against a floor measured in the same run on
// the same redis-server: a minimal Go loop of 32 goroutines issuing the
// same Redis commands per vCon (BLMOVE; JSON.GET, GET, PTTL, LPOP context
// in one pipeline; SET KEEPTTL, SET EX, RPUSH egress, LREM in another) with
// no pipeline machinery. It also reads the worker's peak RSS (VmHWM).
//
// It prints its section of docs/benchmarks.md (markdown) on stdout; run it
// through hack/bench.sh. Needs redis-server in PATH.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

func main() {
	n := flag.Int("n", 20000, "vCons per run")
	size := flag.Int("size", 5000, "approximate vCon size in bytes")
	concurrency := flag.Int("concurrency", 32, "worker concurrency and floor goroutines")
	rounds := flag.Int("rounds", 3, "runs of each; the best of each is compared")
	flag.Parse()
	if err := run(*n, *size, *concurrency, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "bench worker:", err)
		os.Exit(1)
	}
}

const (
	in  = "bench-in"
	out = "bench-out"
)

func run(n, size, concurrency, rounds int) error {
	dir, err := os.MkdirTemp("", "bench-worker-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	bin := filepath.Join(dir, "conserver")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/conserver")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build conserver (run from the repository root): %w", err)
	}

	port, err := freePort()
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	srv := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	srv.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	opts, _ := redis.ParseURL("redis://" + addr)
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	ctx := context.Background()
	if err := waitFor(10*time.Second, func() bool { return rdb.Ping(ctx).Err() == nil }); err != nil {
		return fmt.Errorf("redis-server did not start: %w", err)
	}

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

	var floors, workers []time.Duration
	var peakRSS int64
	for r := range rounds {
		d, err := floorRun(ctx, rdb, opts, n, size, concurrency)
		if err != nil {
			return fmt.Errorf("floor run %d: %w", r+1, err)
		}
		floors = append(floors, d)
		d, rss, err := workerRun(ctx, rdb, bin, cfg, addr, dir, n, size, concurrency)
		if err != nil {
			return fmt.Errorf("worker run %d: %w", r+1, err)
		}
		workers = append(workers, d)
		peakRSS = max(peakRSS, rss)
		fmt.Fprintf(os.Stderr, "round %d: floor %s (%.0f/s), worker %s (%.0f/s), worker peak RSS %.1f MiB\n",
			r+1, floors[r].Round(time.Millisecond), rate(n, floors[r]), workers[r].Round(time.Millisecond), rate(n, workers[r]), float64(rss)/(1<<20))
	}
	sort.Slice(floors, func(i, j int) bool { return floors[i] < floors[j] })
	sort.Slice(workers, func(i, j int) bool { return workers[i] < workers[j] })
	ratio := rate(n, workers[0]) / rate(n, floors[0])

	host, _ := os.Hostname()
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf(`## Worker

Run %s on %s (%s, %d CPUs, load average at the end: %s; Go %s, redis-server on loopback, no RedisJSON so bodies are plain strings).
%d vCons of about %d bytes through [links.tag] + storage.redis_storage + egress at concurrency %d; best of %d runs each, floor and worker alternating on the same redis-server.

| | time | vCons/s |
|---|---|---|
| floor: 32 goroutines issuing the same Redis commands per vCon, no pipeline machinery | %s | %.0f |
| worker (cmd/conserver) | %s | %.0f |

- Worker throughput / floor: **%.0f%%** (target at least 80%%).
- Worker peak RSS (VmHWM): **%.1f MiB** (target under 100 MiB).
- All runs, floor: %s; worker: %s.

Per vCon, both issue: a move from ingress to in-flight (the floor: BLMOVE; the worker: BLMOVE, then LMOVEs for the free slots pipelined in one round trip); one pipeline of JSON.GET, GET and PTTL of the body and LPOP of its trace context; one pipeline of SET body KEEPTTL, SET storage copy EX, RPUSH egress and LREM in-flight. The worker adds its heartbeat (every 5 s), the link, normalisation and JSON decoding and encoding.
Where the gap goes: `+"`go test -run X -bench Process -cpuprofile cpu.prof ./internal/pipeline/`"+` profiles one vCon through the processor: of about 100 µs of worker CPU per 5 KB vCon, decoding the document into a map (internal/vcon, encoding/json) takes about half and encoding it back a fifth; the floor does neither, so on a small, shared machine where the run is CPU-bound that work is most of the difference.
Reproduce: `+"`make bench`"+` (or `+"`go run ./hack/bench/worker`"+`).
`,
		time.Now().UTC().Format("2006-01-02"), host, runtime.GOARCH, runtime.NumCPU(), strings.Join(strings.Fields(string(load))[:3], " "), runtime.Version(),
		n, size, concurrency, rounds,
		floors[0].Round(time.Millisecond), rate(n, floors[0]),
		workers[0].Round(time.Millisecond), rate(n, workers[0]),
		ratio*100, float64(peakRSS)/(1<<20),
		durations(floors), durations(workers))
	return nil
}

func rate(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }

func durations(ds []time.Duration) string {
	var s []string
	for _, d := range ds {
		s = append(s, d.Round(time.Millisecond).String())
	}
	return strings.Join(s, ", ")
}

// load empties Redis and stores n bodies; the uuids are returned to be
// pushed once the consumers wait.
func load(ctx context.Context, rdb *redis.Client, n, size int) ([]any, error) {
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		return nil, err
	}
	uuids := make([]any, n)
	pipe := rdb.Pipeline()
	for i := range n {
		u := fmt.Sprintf("0190d6f0-1c2d-7a00-8000-%012d", i)
		uuids[i] = u
		pipe.Set(ctx, "vcon:"+u, document(u, size), 0)
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
func pushAndWait(ctx context.Context, rdb *redis.Client, uuids []any, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	if err := rdb.RPush(ctx, in, uuids...).Err(); err != nil {
		return 0, err
	}
	for {
		if rdb.LLen(ctx, out).Val() >= int64(len(uuids)) {
			return time.Since(start), nil
		}
		if time.Since(start) > limit {
			return 0, fmt.Errorf("only %d of %d done after %s", rdb.LLen(ctx, out).Val(), len(uuids), limit)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func floorRun(ctx context.Context, rdb *redis.Client, opts *redis.Options, n, size, concurrency int) (time.Duration, error) {
	uuids, err := load(ctx, rdb, n, size)
	if err != nil {
		return 0, err
	}
	client := redis.NewClient(opts) // same pool settings as the worker's client
	defer client.Close()
	stop, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for g := range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inflight := fmt.Sprintf("floor-inflight:{%s}:%d", in, g)
			for stop.Err() == nil {
				u, err := client.BLMove(stop, in, inflight, "LEFT", "RIGHT", time.Second).Result()
				if err != nil {
					continue
				}
				body := "vcon:" + u
				read := client.Pipeline()
				read.Do(stop, "JSON.GET", body)
				get := read.Get(stop, body)
				read.PTTL(stop, body)
				read.LPop(stop, "context:"+in+":"+u)
				_, _ = read.Exec(stop)
				data, _ := get.Bytes()
				commit := client.Pipeline()
				commit.SetArgs(stop, body, data, redis.SetArgs{KeepTTL: true})
				commit.Set(stop, "vcon_storage:"+u, data, 604800*time.Second)
				commit.RPush(stop, out, u)
				commit.LRem(stop, inflight, 1, u)
				if _, err := commit.Exec(stop); err != nil && !errors.Is(err, context.Canceled) {
					fmt.Fprintln(os.Stderr, "floor commit:", err)
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond) // let every goroutine block in BLMOVE
	d, err := pushAndWait(ctx, rdb, uuids, 10*time.Minute)
	cancel()
	wg.Wait()
	return d, err
}

func workerRun(ctx context.Context, rdb *redis.Client, bin, cfg, redisAddr, dir string, n, size, concurrency int) (time.Duration, int64, error) {
	uuids, err := load(ctx, rdb, n, size)
	if err != nil {
		return 0, 0, err
	}
	port, err := freePort()
	if err != nil {
		return 0, 0, err
	}
	httpAddr := "127.0.0.1:" + strconv.Itoa(port)
	logf, err := os.Create(filepath.Join(dir, "worker.log"))
	if err != nil {
		return 0, 0, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--config", cfg, "--redis-url", "redis://"+redisAddr, "--http-addr", httpAddr,
		"--concurrency", strconv.Itoa(concurrency), "--worker-id", "bench")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
		}
	}()
	if err := waitFor(60*time.Second, func() bool {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}); err != nil {
		return 0, 0, fmt.Errorf("worker not ready: %w", err)
	}
	time.Sleep(200 * time.Millisecond) // let every fetcher block in BLMOVE
	d, err := pushAndWait(ctx, rdb, uuids, 10*time.Minute)
	if err != nil {
		return 0, 0, err
	}
	rss, err := vmHWM(cmd.Process.Pid)
	return d, rss, err
}

// vmHWM is a process's peak resident set size, in bytes.
func vmHWM(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmHWM in /proc status")
}

func waitFor(within time.Duration, cond func() bool) error {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", within)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// document is a realistic vCon of about size bytes: parties, a recording
// dialog, a transcript analysis.
func document(uuid string, size int) []byte {
	text := strings.Repeat("so I was calling about my order, ", max(0, size-700)/33+1)
	doc := map[string]any{
		"vcon": "0.0.1", "uuid": uuid, "created_at": "2024-03-05T10:00:00.000+00:00", "subject": "Support call",
		"parties": []any{
			map[string]any{"tel": "+15555550100", "name": "Alice Agent", "role": "agent"},
			map[string]any{"tel": "+15555550101", "name": "Bob Customer", "role": "customer"},
		},
		"dialog": []any{map[string]any{
			"type": "recording", "start": "2024-03-05T10:00:01Z", "duration": 312.5, "parties": []any{0, 1},
			"mimetype": "audio/x-wav", "url": "https://media.example.com/rec/" + uuid + ".wav",
		}},
		"analysis":    []any{map[string]any{"type": "transcript", "dialog": 0, "vendor": "deepgram", "encoding": "none", "body": text}},
		"attachments": []any{},
	}
	b, _ := json.Marshal(doc)
	return b
}
