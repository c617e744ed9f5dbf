// Package benchutil holds what the benchmark programs share: reading a
// process's peak RSS, waiting for a condition, a free loopback port, the
// worker built with a Redis of its own.
package benchutil

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

// VmHWM is a process's peak resident set size, in bytes.
func VmHWM(pid int) (int64, error) {
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

// WaitFor polls cond every 20 ms until it holds or within has passed.
func WaitFor(within time.Duration, cond func() bool) error {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", within)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// FreePort returns a loopback TCP port free at the time of the call.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// StartWorker starts a worker process, waits until its /readyz on
// httpAddr answers 200, and returns how to stop it (SIGTERM, then SIGKILL
// after 30 s). The process dies with the benchmark (Pdeathsig).
func StartWorker(cmd *exec.Cmd, httpAddr string) (stop func(), err error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
		}
	}
	if err := WaitFor(60*time.Second, func() bool {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}); err != nil {
		stop()
		return nil, fmt.Errorf("worker not ready: %w", err)
	}
	return stop, nil
}

// EnvInt is the positive integer in the environment variable name, else def.
func EnvInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// Progress returns a logger of timestamped progress lines on stderr, each
// prefixed with "bench <name>:" (stdout carries the Markdown report).
func Progress(name string) func(msg string) {
	return func(msg string) {
		fmt.Fprintf(os.Stderr, "bench %s: %s %s\n", time.Now().Format("15:04:05"), name, msg)
	}
}

// EnvDuration is the Go duration in the environment variable name, else def.
func EnvDuration(name string, def time.Duration) (time.Duration, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return d, nil
}

// BuildConserver builds cmd/conserver into dir (run from the repository
// root) and returns the binary's path.
func BuildConserver(dir string) (string, error) {
	bin := filepath.Join(dir, "conserver")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/conserver")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("build conserver (run from the repository root): %w", err)
	}
	return bin, nil
}

// WorkerRig is what a worker benchmark starts from: a scratch directory,
// the worker binary built into it, and a Redis of its own with a client.
type WorkerRig struct {
	Dir    string
	Bin    string
	Redis  *testenv.RedisProcess
	Client *redis.Client
}

// NewWorkerRig builds the worker and starts Redis; Close undoes both.
func NewWorkerRig(name string) (*WorkerRig, error) {
	dir, err := os.MkdirTemp("", "bench-"+name+"-")
	if err != nil {
		return nil, err
	}
	r := &WorkerRig{Dir: dir}
	if r.Bin, err = BuildConserver(dir); err != nil {
		r.Close()
		return nil, err
	}
	if r.Redis, err = testenv.RunRedis(); err != nil {
		r.Close()
		return nil, err
	}
	r.Client = redis.NewClient(&redis.Options{Addr: r.Redis.Addr})
	return r, nil
}

// Close stops Redis and removes the directory.
func (r *WorkerRig) Close() {
	if r.Client != nil {
		_ = r.Client.Close()
	}
	if r.Redis != nil {
		r.Redis.Stop()
	}
	_ = os.RemoveAll(r.Dir)
}
