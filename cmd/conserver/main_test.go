package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
	"github.com/vcon-operator/vcon-operator/internal/vcon/sample"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// binary is the conserver built once for the tests that run it as a
// process (signals, exit codes, crashes).
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "conserver-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "conserver")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build conserver:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "conserver.yml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// worker is one conserver process.
type worker struct {
	t      *testing.T
	cmd    *exec.Cmd
	addr   string
	logs   string
	exited chan struct{}
	err    error
}

func startWorker(t *testing.T, cfg, redisURL string, args ...string) *worker {
	t.Helper()
	return startWorkerWrapped(t, nil, cfg, redisURL, args...)
}

// startWorkerWrapped runs the worker through wrap (a command that execs
// the rest of its arguments, such as prlimit), so that its limits hold
// from the first instruction.
func startWorkerWrapped(t *testing.T, wrap []string, cfg, redisURL string, args ...string) *worker {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	logs := filepath.Join(t.TempDir(), "worker.log")
	f, err := os.Create(logs)
	if err != nil {
		t.Fatal(err)
	}
	argv := append(append(append([]string{}, wrap...), binary, "--config", cfg, "--redis-url", redisURL, "--http-addr", addr), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &worker{t: t, cmd: cmd, addr: addr, logs: logs, exited: make(chan struct{})}
	go func() { w.err = cmd.Wait(); _ = f.Close(); close(w.exited) }()
	t.Cleanup(func() { w.kill() })
	return w
}

func (w *worker) kill() {
	select {
	case <-w.exited:
	default:
		_ = w.cmd.Process.Kill()
		<-w.exited
	}
}

func (w *worker) logTail() string {
	b, _ := os.ReadFile(w.logs)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// waitReady polls /readyz until it answers 200.
func (w *worker) waitReady(within time.Duration) {
	w.t.Helper()
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get("http://" + w.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-w.exited:
			w.t.Fatalf("worker exited before it was ready: %v\n%s", w.err, w.logTail())
		default:
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("worker not ready within %s: %v\n%s", within, err, w.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (w *worker) metrics() string {
	w.t.Helper()
	resp, err := http.Get("http://" + w.addr + "/metrics")
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		w.t.Fatalf("/metrics answered %s", resp.Status)
	}
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return b.String()
}

func testUUID(n int) string { return fmt.Sprintf("0190d6f0-1c2d-7a00-8000-%012d", n) }

// enqueue stores n bodies and queues their uuids on list, in batches.
func enqueue(t *testing.T, rdb redis.UniversalClient, list string, n, size int) []string {
	t.Helper()
	ctx := context.Background()
	uuids := make([]string, n)
	for start := 0; start < n; start += 200 {
		pipe := rdb.Pipeline()
		var batch []any
		for i := start; i < min(n, start+200); i++ {
			uuids[i] = testUUID(i)
			pipe.Set(ctx, vconstore.Key(uuids[i]), sample.Document(uuids[i], size), 0)
			batch = append(batch, uuids[i])
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatalf("store bodies: %v", err)
		}
		if err := rdb.RPush(ctx, list, batch...).Err(); err != nil {
			t.Fatalf("queue: %v", err)
		}
	}
	return uuids
}

func TestConfigErrors(t *testing.T) {
	t.Setenv("CONSERVER_TEST_PRESENT", "reviewed")
	tests := []struct {
		name string
		yaml string
		want []string // substrings of the error output
	}{
		{
			name: "unknown module lists the known ones",
			yaml: `
links:
  tagger: {module: links.tagg, options: {tags: [a]}}
chains:
  main: {links: [tagger], ingress_lists: [in]}`,
			want: []string{"links.tagger.module", `"links.tagg"`, "links.tag,", "links.jq_link"},
		},
		{
			name: "missing environment variable",
			yaml: `
links:
  tagger: {module: links.tag, options: {tags: ["${CONSERVER_TEST_ABSENT}", "${CONSERVER_TEST_PRESENT}"]}}
chains:
  main: {links: [tagger], ingress_lists: [in]}`,
			want: []string{"links.tagger.options.tags", "CONSERVER_TEST_ABSENT"},
		},
		{
			name: "two chains on one ingress list",
			yaml: `
links:
  tagger: {module: links.tag, options: {tags: [a]}}
chains:
  first:  {links: [tagger], ingress_lists: [shared]}
  second: {links: [tagger], ingress_lists: [shared]}`,
			want: []string{"chains.second.ingress_lists", `"shared"`, `"first"`},
		},
		{
			name: "bad jq filter",
			yaml: `
links:
  only_sales: {module: links.jq_link, options: {filter: ".subject =="}}
chains:
  main: {links: [only_sales], ingress_lists: [in]}`,
			want: []string{"only_sales", "filter", "invalid jq program"},
		},
		{
			name: "storage option of the wrong type",
			yaml: `
links:
  tagger: {module: links.tag, options: {tags: [a]}}
storages:
  copy: {module: storage.redis_storage, options: {expires: -5}}
chains:
  main: {links: [tagger], storages: [copy], ingress_lists: [in]}`,
			want: []string{`storage "copy"`, "expires"},
		},
		{
			name: "conserver tracer and Python import",
			yaml: `
imports:
  custom_utility: {module: custom_utils, pip_name: custom-utils-package}
  tagging: links.tag
links:
  tagger: {module: links.tag, options: {tags: [a]}}
tracers:
  jlinc: {module: tracers.jlinc, options: {dlq_vcon_on_error: true}}
chains:
  main: {links: [tagger], ingress_lists: [in]}`,
			want: []string{`imports.custom_utility: module "custom_utils" cannot be imported`, "does not load or pip-install Python ones",
				`tracers.jlinc: tracer module "tracers.jlinc" is not run`, "OTEL_EXPORTER_OTLP_ENDPOINT"},
		},
		{
			name: "follower without an ingress list",
			yaml: `
links:
  tagger: {module: links.tag, options: {tags: [a]}}
chains:
  main: {links: [tagger], ingress_lists: [in]}
followers:
  up: {url: "https://upstream.example.com/api", egress_list: out, auth_token: t, pulling_interval: 60, fetch_vcon_limit: 10}`,
			want: []string{"followers.up.follower_ingress_list: is missing"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeConfig(t, tc.yaml)
			for _, mode := range [][]string{{"--check"}, nil} {
				cmd := exec.Command(binary, append([]string{"--config", cfg, "--redis-url", "redis://127.0.0.1:1", "--http-addr", "127.0.0.1:0"}, mode...)...)
				// The kubelet provides the file; the worker never creates it.
				termLog := filepath.Join(t.TempDir(), "termination-log")
				if err := os.WriteFile(termLog, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				cmd.Env = append(os.Environ(), envTerminationLog+"="+termLog)
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				done := make(chan error, 1)
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				go func() { done <- cmd.Wait() }()
				select {
				case err := <-done:
					if err == nil {
						t.Fatalf("%v: exit 0 on a bad config; output:\n%s", mode, out.String())
					}
				case <-time.After(60 * time.Second):
					_ = cmd.Process.Kill()
					t.Fatalf("%v: still running after 60s on a bad config (started half-configured?)", mode)
				}
				msg, err := os.ReadFile(termLog)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(string(msg), "conserver: ") {
					t.Errorf("%v: termination message %q does not start with \"conserver: \"", mode, msg)
				}
				for _, w := range tc.want {
					if !strings.Contains(out.String(), w) {
						t.Errorf("%v: output lacks %q:\n%s", mode, w, out.String())
					}
					if !strings.Contains(string(msg), w) {
						t.Errorf("%v: termination message lacks %q:\n%s", mode, w, msg)
					}
				}
			}
		})
	}
}

func TestCheckGoodConfig(t *testing.T) {
	t.Setenv("CONSERVER_TEST_TAG", "reviewed")
	cfg := writeConfig(t, `
links:
  tagger: {module: links.tag, options: {tags: ["${CONSERVER_TEST_TAG}", "team:${CONSERVER_TEST_TEAM:-sales}"]}}
  only_sales: {module: links.jq_link, options: {filter: '.subject | test("call")'}}
storages:
  copy: {module: storage.redis_storage}
chains:
  main: {links: [tagger, only_sales], storages: [copy], ingress_lists: [in], egress_lists: [out], timeout: 30}
  off:  {links: [tagger], ingress_lists: [in], enabled: false}
`)
	out, err := exec.Command(binary, "--config", cfg, "--check", "--redis-url", "redis://127.0.0.1:1").CombinedOutput()
	if err != nil {
		t.Fatalf("--check on a good config: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "is valid: 1 chain(s)") {
		t.Fatalf("--check output: %s", out)
	}
}

// TestServeAndSIGTERM runs the real binary: it processes a vCon, exposes
// its metrics, leaves a disabled chain's list alone, and exits 0 on SIGTERM.
func TestServeAndSIGTERM(t *testing.T) {
	rdb := testenv.StartRedis(t)
	client := rdb.Client()
	ctx := context.Background()
	cfg := writeConfig(t, `
links:
  tagger: {module: links.tag, options: {tags: [reviewed]}}
storages:
  copy: {module: storage.redis_storage}
chains:
  main: {links: [tagger], storages: [copy], ingress_lists: [in], egress_lists: [out]}
  off:  {links: [tagger], ingress_lists: [in-off], egress_lists: [out-off], enabled: false}
`)
	enqueue(t, client, "in-off", 1, 1000)
	uuid := testUUID(42)
	client.Set(ctx, vconstore.Key(uuid), sample.Document(uuid, 2000), 0)

	w := startWorker(t, cfg, rdb.URL(), "--worker-id", "sig-1", "--grace-period", "10s")
	w.waitReady(60 * time.Second)
	client.RPush(ctx, "in", uuid)
	deadline := time.Now().Add(30 * time.Second)
	for client.LLen(ctx, "out").Val() < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("vCon not processed within 30s\n%s", w.logTail())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if client.Exists(ctx, "vcon_storage:"+uuid).Val() != 1 {
		t.Error("storage.redis_storage copy missing")
	}
	// The counters move just after the commit that pushes to egress.
	m := w.metrics()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(m, `vcon_processed_total{chain="main"} 1`) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		m = w.metrics()
	}
	for _, want := range []string{`vcon_processed_total{chain="main"} 1`, `vcon_processing_errors_total{chain="main"} 0`, `vcon_processing_duration_seconds_count{chain="main"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s; vcon series:\n%s", want, grepLines(m, "vcon_proc"))
		}
	}
	if strings.Contains(m, "redis_list_length") {
		t.Error("the worker exports redis_list_length, which the operator owns")
	}
	if n := client.LLen(ctx, "in-off").Val(); n != 1 {
		t.Errorf("disabled chain's list has %d items, want its 1 untouched", n)
	}
	if client.Exists(ctx, queue.WorkersKey("in-off")).Val() != 0 {
		t.Error("the worker registered on a disabled chain's list")
	}

	start := time.Now()
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit within 30s of SIGTERM\n%s", w.logTail())
	}
	if w.err != nil {
		t.Fatalf("exit after SIGTERM: %v, want 0\n%s", w.err, w.logTail())
	}
	t.Logf("stopped %s after SIGTERM", time.Since(start))
	if client.Exists(ctx, queue.WorkersKey("in")).Val() != 0 {
		t.Error("worker still registered after a clean stop")
	}
	if strings.Contains(w.logTail(), "Support call") || strings.Contains(w.logTail(), "Alice") {
		t.Error("the worker logged vCon content")
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
