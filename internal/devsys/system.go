// Package devsys runs the whole vcon-operator system on this machine's real
// single-node Kubernetes (hack/cluster: kubelet, containerd, real pods):
// the project's image built without Docker and imported into the node,
// Redis and PostgreSQL as managed services on the node's address, the
// Prometheus Operator with its Prometheus, and `helm install` of
// charts/vcon-operator, whose operator then runs every Chain as real
// worker pods. `make dev` and the end-to-end test both use it.
package devsys

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/redis/go-redis/v9"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

// The release: names the chart's objects get and where they live.
const (
	ReleaseName      = "vcon-operator"
	ReleaseNamespace = "vcon-system"
	// DatabaseNamespace holds the Service in front of the PostgreSQL
	// process, at the name the samples use
	// (postgres.databases.svc.cluster.local).
	DatabaseNamespace = "databases"

	redisPort    = 6379
	postgresPort = 5432
)

// Options say what to run and how.
type Options struct {
	// Root is the repository (bin/, charts/, hack/cluster/).
	Root string
	// StateDir holds the API token, logs and Redis' files. Default Root/.dev.
	StateDir string
	// Postgres starts PostgreSQL ("vcon" database and user).
	Postgres bool
	// Prometheus installs the Prometheus Operator and a Prometheus that
	// scrapes the chart's ServiceMonitors and PodMonitor and evaluates its
	// PrometheusRule.
	Prometheus bool
	// QueuePollInterval of the operator (default 2s).
	QueuePollInterval time.Duration
	// ScrapeInterval of every monitor, also Prometheus' rule evaluation
	// interval (default 5s).
	ScrapeInterval time.Duration
	// AlertFor overrides the `for` of alerts by name through the chart's
	// monitoring.prometheusRule.alertFor, e.g. {"DLQNotEmpty": "10s"}.
	// Tests only: make dev runs the guide's rules as written.
	AlertFor map[string]string
	// HelmSet are extra `helm install --set` values.
	HelmSet []string
	// Log receives one line per event (default: stderr).
	Log io.Writer
}

// System is the running system. Fields are valid after Start.
type System struct {
	opts Options
	log  logr.Logger

	Node           Node
	Config         *rest.Config
	Kube           kubernetes.Interface
	Client         client.Client
	KubeconfigPath string
	clusterLock    *os.File
	clusterUp      bool

	// Image is the project's image on the node (operator, API and workers).
	Image     string
	imageFile string

	// RedisURL reaches Redis from this machine; pods use the chart's
	// default, the Service redis.vcon-system.
	RedisURL string
	redis    *proc

	Postgres *Postgres

	APIURL       string
	APIToken     string
	APITokenPath string

	PrometheusURL string

	mu      sync.Mutex
	started []int // every pid this system started, for leak checks
	stopped bool
}

// Start brings everything up. On error, what was started is stopped.
func Start(ctx context.Context, opts Options) (s *System, err error) {
	if opts.Root == "" {
		if opts.Root, err = testenv.RepoRoot(); err != nil {
			return nil, err
		}
	}
	if opts.StateDir == "" {
		opts.StateDir = filepath.Join(opts.Root, ".dev")
	}
	if opts.QueuePollInterval == 0 {
		opts.QueuePollInterval = 2 * time.Second
	}
	if opts.ScrapeInterval == 0 {
		opts.ScrapeInterval = 5 * time.Second
	}
	if opts.Log == nil {
		opts.Log = os.Stderr
	}
	out := opts.Log
	s = &System{opts: opts, log: funcr.New(func(prefix, args string) {
		fmt.Fprintf(out, "%s dev: %s %s\n", time.Now().Format("15:04:05"), prefix, args)
	}, funcr.Options{})}
	defer func() {
		if err != nil {
			s.Stop()
			s = nil
		}
	}()
	if err := s.checkTools(); err != nil {
		return s, err
	}
	// Fresh state every run: the cluster is fresh too, and stale files would lie.
	for _, d := range []string{"logs", "redis"} {
		if err := os.RemoveAll(filepath.Join(opts.StateDir, d)); err != nil {
			return s, err
		}
	}
	if err := os.MkdirAll(filepath.Join(opts.StateDir, "logs"), 0o755); err != nil {
		return s, err
	}

	steps := []struct {
		name string
		run  func(context.Context) error
		skip bool
	}{
		// Before the cluster: the build is the slow part, and the lock on
		// the machine's one cluster is not needed for it.
		{"image (make image, this machine's architecture)", s.buildImage, false},
		{"cluster (hack/cluster/up.sh)", s.startCluster, false},
		{"image import", s.importProjectImage, false},
		{"Redis on the node's address", s.startRedis, false},
		{"PostgreSQL on the node's address", s.startPostgres, !opts.Postgres},
		{"Services for Redis and PostgreSQL", s.createManagedServices, false},
		{"Prometheus Operator CRDs", s.installMonitoringCRDs, !opts.Prometheus},
		{"helm install charts/vcon-operator", s.installChart, false},
		{"Prometheus Operator and Prometheus", s.startPrometheus, !opts.Prometheus},
		{"Prometheus scraping the chart's monitors", s.waitForMonitors, !opts.Prometheus},
	}
	for _, st := range steps {
		if st.skip {
			continue
		}
		t0 := time.Now()
		if err := st.run(ctx); err != nil {
			return s, fmt.Errorf("start %s: %w", st.name, err)
		}
		s.log.Info("done: "+st.name, "took", time.Since(t0).Round(time.Millisecond).String())
	}
	return s, nil
}

func (s *System) bin(name string) string { return filepath.Join(s.opts.Root, "bin", name) }

func (s *System) checkTools() error {
	var missing []string
	for _, n := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "coredns", "helm"} {
		if _, err := os.Stat(s.bin(n)); err != nil {
			missing = append(missing, "bin/"+n)
		}
	}
	for _, n := range []string{"redis-server", "ctr", "nsenter", "make"} {
		if _, err := exec.LookPath(n); err != nil {
			missing = append(missing, n)
		}
	}
	if s.opts.Prometheus {
		for _, n := range []string{"prometheus", "prometheus-operator", "prometheus-config-reloader"} {
			if _, err := os.Stat(s.bin(n)); err != nil {
				missing = append(missing, "bin/"+n)
			}
		}
	}
	if s.opts.Postgres {
		if _, err := testenv.PostgresBinDir(); err != nil {
			missing = append(missing, "postgres")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %v: run `make tools-cluster && hack/tools.sh helm prometheus-operator && hack/deps.sh` (make dev and make e2e do)", missing)
	}
	return nil
}

func (s *System) track(p *proc) {
	s.mu.Lock()
	s.started = append(s.started, p.pid())
	s.mu.Unlock()
}

func (s *System) logPath(name string) string {
	return filepath.Join(s.opts.StateDir, "logs", name+".log")
}

// --- image ---

func (s *System) importProjectImage(ctx context.Context) error {
	return s.ImportImage(ctx, s.imageFile)
}

// --- redis ---

func (s *System) redisAddr() string { return net.JoinHostPort(s.Node.IP, strconv.Itoa(redisPort)) }

func (s *System) startRedis(ctx context.Context) error {
	s.RedisURL = "redis://" + s.redisAddr()
	dir := filepath.Join(s.opts.StateDir, "redis")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path, err := exec.LookPath("redis-server")
	if err != nil {
		return errors.New("redis-server not found: run hack/deps.sh (apt-get install -y redis-server)")
	}
	p, err := startProc(s.inNode(procSpec{
		name: "redis-server", path: path, dir: dir, log: s.logPath("redis"),
		args: []string{"--port", strconv.Itoa(redisPort), "--bind", s.Node.IP, "--protected-mode", "no", "--dir", dir,
			"--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no"},
	}, 0, 0))
	if err != nil {
		return err
	}
	s.redis = p
	s.track(p)
	c := redis.NewClient(&redis.Options{Addr: s.redisAddr(), MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := c.Ping(pctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if !p.running() || time.Now().After(deadline) {
			return fmt.Errorf("redis-server did not answer PING (%v):\n%s", err, logTail(p.log, 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// RestartRedis shuts Redis down cleanly (SHUTDOWN flushes the AOF) and
// starts it again on the same address and directory.
func (s *System) RestartRedis(ctx context.Context) error {
	if s.redis == nil {
		return errors.New("redis is not running")
	}
	c := redis.NewClient(&redis.Options{Addr: s.redisAddr()})
	_ = c.Shutdown(ctx).Err() // the connection closing is the expected answer
	c.Close()
	select {
	case <-s.redis.exited:
	case <-time.After(30 * time.Second):
		return errors.New("redis-server did not exit after SHUTDOWN")
	}
	return s.startRedis(ctx)
}

// postgresCredential is the postgres system user when running as root
// (PostgreSQL refuses to run as root).
func postgresCredential() (uid, gid int, err error) {
	if os.Geteuid() != 0 {
		return 0, 0, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return 0, 0, fmt.Errorf("running as root needs the postgres system user (%v): apt-get install -y postgresql", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, nil
}

// Stop stops everything: the managed services first (cleanly: Redis
// flushes its AOF), then the whole cluster, which takes every pod with it
// and leaves nothing behind (hack/cluster/down.sh).
func (s *System) Stop() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	s.mu.Unlock()
	if s.Postgres != nil {
		s.log.Info("stopping PostgreSQL")
		s.Postgres.stop()
	}
	if s.redis != nil {
		s.log.Info("stopping redis-server")
		s.redis.stop(30 * time.Second)
	}
	if s.clusterUp || s.clusterLock != nil {
		s.log.Info("tearing the cluster down")
	}
	s.stopCluster()
}

// Leftovers lists processes this system started that still exist (zombies
// excluded): after Stop it must be empty.
func (s *System) Leftovers() []int {
	s.mu.Lock()
	pids := append([]int(nil), s.started...)
	s.mu.Unlock()
	var alive []int
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !isZombie(string(st)) {
				alive = append(alive, pid)
			}
		}
	}
	return alive
}

func isZombie(stat string) bool {
	// pid (comm) S ...: the state follows the last ')'.
	for i := len(stat) - 1; i >= 0; i-- {
		if stat[i] == ')' {
			return i+2 < len(stat) && stat[i+2] == 'Z'
		}
	}
	return false
}
