// Package testenv starts the real dependencies tests run against: a
// kube-apiserver and etcd with our CRDs (envtest), private redis-server
// instances and Redis Clusters, PostgreSQL, and an S3 server (versitygw).
// Every starter fails the test loudly, with the command that fixes it, when
// a binary is missing: a test never skips. RunRedis starts a redis-server
// for the benchmarks, which are programs, not tests; RoundTrips counts what
// a go-redis client sends.
package testenv

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a private redis-server on a free loopback port, in its own
// temporary directory. It is stopped when the test ends.
type Redis struct {
	t       testing.TB
	Addr    string
	dir     string
	args    []string
	proc    process
	mu      sync.Mutex
	clients []*redis.Client
}

// RedisOption changes how the server is started.
type RedisOption func(*redisConfig)

type redisConfig struct {
	aof     bool
	cluster bool
	port    int
}

// WithAOF turns on the append-only file (appendfsync always), so that a
// restart after a clean shutdown or a crash keeps every acknowledged write.
func WithAOF() RedisOption { return func(c *redisConfig) { c.aof = true } }

func withCluster(port int) RedisOption {
	return func(c *redisConfig) { c.cluster = true; c.port = port }
}

// RedisServerPath finds redis-server in PATH.
func RedisServerPath() (string, error) {
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("redis-server not found in PATH: install it with `apt-get install -y redis-server` (make test does this through .ci/run)")
}

// StartRedis starts a redis-server and registers its shutdown with t.Cleanup.
func StartRedis(t testing.TB, opts ...RedisOption) *Redis {
	t.Helper()
	var cfg redisConfig
	for _, o := range opts {
		o(&cfg)
	}
	bin, err := RedisServerPath()
	if err != nil {
		t.Fatal(err)
	}
	port := cfg.port
	if port == 0 {
		port = FreePort(t)
	}
	dir := t.TempDir()
	args := []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", dir,
		"--save", "",
		"--protected-mode", "no",
		"--daemonize", "no",
		"--logfile", filepath.Join(dir, "redis.log"),
	}
	if cfg.aof {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	}
	if cfg.cluster {
		args = append(args, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", "2000")
	}
	r := &Redis{t: t, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir, args: append([]string{bin}, args...)}
	r.proc = process{t: t, name: "redis-server on " + r.Addr, logPath: filepath.Join(dir, "redis.log")}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// URL is the redis:// URL of the server.
func (r *Redis) URL() string { return "redis://" + r.Addr }

// Dir is the server's working directory (AOF and log live there).
func (r *Redis) Dir() string { return r.dir }

// Client returns a new client for the server, closed when the test ends.
func (r *Redis) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	r.mu.Lock()
	r.clients = append(r.clients, c)
	r.mu.Unlock()
	r.t.Cleanup(func() { _ = c.Close() })
	return c
}

// Start starts the server (again) and waits until it answers PING.
func (r *Redis) Start() {
	r.t.Helper()
	c := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1})
	defer c.Close()
	r.proc.start(exec.Command(r.args[0], r.args[1:]...), 20*time.Second, 20*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return c.Ping(ctx).Err()
	})
}

// Stop shuts the server down cleanly (SHUTDOWN, which flushes the AOF) and
// waits for the process to exit. Stopping a stopped server does nothing.
func (r *Redis) Stop() { r.proc.stop(syscall.SIGTERM, 15*time.Second) } // redis-server treats SIGTERM as SHUTDOWN

// Kill stops the server with SIGKILL, as a crash would.
func (r *Redis) Kill() { r.proc.stop(syscall.SIGKILL, 15*time.Second) }

// Restart stops the server cleanly and starts it again on the same port
// and directory; with WithAOF the data survives.
func (r *Redis) Restart() {
	r.Stop()
	r.Start()
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
