// Package devsys runs the whole vcon-operator system on one machine, with
// no cluster and no Docker: a kube-apiserver and etcd (envtest) with our
// CRDs, a private redis-server, PostgreSQL when asked, the operator, the
// API, Prometheus, and a local workload runner that plays the kubelet for
// the operator's worker Deployments. `make dev` and the end-to-end test
// both use it.
package devsys

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/redis/go-redis/v9"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

// Options say what to run and how.
type Options struct {
	// Root is the repository (bin/, config/crd/bases, hack/dev/).
	Root string
	// StateDir holds the kubeconfig, the API token, logs, rendered chain
	// configs and Prometheus' files. Default Root/.dev.
	StateDir string
	// Postgres starts a private PostgreSQL ("vcon" database and user).
	Postgres bool
	// Prometheus starts bin/prometheus scraping everything.
	Prometheus bool
	// PreferredPorts: API on 8000, operator metrics on 8080, Prometheus on
	// 9090 when free (a laptop's muscle memory); else any free port.
	PreferredPorts bool
	// QueuePollInterval of the operator (default 2s).
	QueuePollInterval time.Duration
	// ScrapeInterval of Prometheus, also its rule evaluation interval (default 5s).
	ScrapeInterval time.Duration
	// AlertFor overrides the `for` of the monitoring guide's alerts by
	// name, e.g. {"DLQNotEmpty": "10s"}. Tests only: make dev runs the
	// guide's rules as written.
	AlertFor map[string]string
	// Log receives one line per event (default: stderr).
	Log io.Writer
}

// System is the running system. Fields are valid after Start.
type System struct {
	opts Options
	log  logr.Logger

	Env            *envtest.Environment
	Config         *rest.Config
	Client         client.Client
	KubeconfigPath string

	RedisURL  string
	redisPort int
	redis     *proc

	Postgres *Postgres

	OperatorMetricsAddr string
	operatorProbeAddr   string
	operator            *proc

	APIURL       string
	APIToken     string
	APITokenPath string
	api          *proc

	PrometheusURL string
	prometheus    *proc

	Runner       *Runner
	runnerCancel context.CancelFunc
	runnerDone   chan struct{}

	ports   portAllocator
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
	if err := s.checkBinaries(); err != nil {
		return s, err
	}
	// Fresh state every run: etcd is fresh too, and stale files would lie.
	for _, d := range []string{"chains", "logs", "redis", "prometheus"} {
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
		{"control plane (kube-apiserver + etcd)", s.startKube, false},
		{"redis-server", s.startRedis, false},
		{"PostgreSQL", s.startPostgres, !opts.Postgres},
		{"operator", s.startOperator, false},
		{"API", s.startAPI, false},
		{"workload runner", s.startRunner, false},
		{"Prometheus", s.startPrometheus, !opts.Prometheus},
	}
	for _, st := range steps {
		if st.skip {
			continue
		}
		t0 := time.Now()
		if err := st.run(ctx); err != nil {
			return s, fmt.Errorf("start %s: %w", st.name, err)
		}
		s.log.Info("started "+st.name, "took", time.Since(t0).Round(time.Millisecond).String())
	}
	return s, nil
}

func (s *System) bin(name string) string { return filepath.Join(s.opts.Root, "bin", name) }

func (s *System) checkBinaries() error {
	need := []string{"manager", "api", "conserver", "kube-apiserver", "etcd"}
	if s.opts.Prometheus {
		need = append(need, "prometheus")
	}
	var missing []string
	for _, n := range need {
		if _, err := os.Stat(s.bin(n)); err != nil {
			missing = append(missing, n)
		}
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		missing = append(missing, "redis-server")
	}
	if s.opts.Postgres {
		if _, err := testenv.PostgresBinDir(); err != nil {
			missing = append(missing, "postgres")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %v: run `make build && hack/tools.sh envtest prometheus && hack/deps.sh` (make dev does all three)", missing)
	}
	return nil
}

func (s *System) track(p *proc) {
	s.mu.Lock()
	s.started = append(s.started, p.pid())
	s.mu.Unlock()
}

// StartedPIDs are the pids of every process the system started directly
// (workers included), for checks that nothing is left behind.
func (s *System) StartedPIDs() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.started...)
}

func (s *System) port(preferred int) (int, error) {
	if !s.opts.PreferredPorts {
		preferred = 0
	}
	return s.ports.get(preferred)
}

func (s *System) logPath(name string) string {
	return filepath.Join(s.opts.StateDir, "logs", name+".log")
}

// --- control plane ---

func (s *System) startKube(ctx context.Context) error {
	s.Env = &envtest.Environment{
		BinaryAssetsDirectory: filepath.Join(s.opts.Root, "bin"),
		CRDDirectoryPaths:     []string{filepath.Join(s.opts.Root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := s.Env.Start()
	if err != nil {
		s.Env = nil
		return err
	}
	s.Config = cfg
	// The kubeconfig is ours alone: ~/.kube/config and the user's current
	// context are never read or written.
	user, err := s.Env.AddUser(envtest.User{Name: "dev-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("create the dev-admin user: %w", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return err
	}
	s.KubeconfigPath = filepath.Join(s.opts.StateDir, "kubeconfig")
	if err := writeFileAtomic(s.KubeconfigPath, kubeconfig, 0o600); err != nil {
		return err
	}
	s.Client, err = client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	return err
}

// --- redis ---

func (s *System) startRedis(ctx context.Context) error {
	if s.redisPort == 0 {
		p, err := s.port(0)
		if err != nil {
			return err
		}
		s.redisPort = p
		s.RedisURL = "redis://127.0.0.1:" + strconv.Itoa(p)
		if err := writeFileAtomic(filepath.Join(s.opts.StateDir, "redis-port"), []byte(strconv.Itoa(p)+"\n"), 0o644); err != nil {
			return err
		}
	}
	dir := filepath.Join(s.opts.StateDir, "redis")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path, err := exec.LookPath("redis-server")
	if err != nil {
		return errors.New("redis-server not found: run hack/deps.sh (apt-get install -y redis-server)")
	}
	p, err := startProc(procSpec{
		name: "redis-server", path: path, dir: dir, log: s.logPath("redis"),
		args: []string{"--port", strconv.Itoa(s.redisPort), "--bind", "127.0.0.1", "--dir", dir,
			"--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no"},
	})
	if err != nil {
		return err
	}
	s.redis = p
	s.track(p)
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(s.redisPort), MaxRetries: -1})
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
// starts it again on the same port and directory.
func (s *System) RestartRedis(ctx context.Context) error {
	if s.redis == nil {
		return errors.New("redis is not running")
	}
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(s.redisPort)})
	_ = c.Shutdown(ctx).Err() // the connection closing is the expected answer
	c.Close()
	select {
	case <-s.redis.exited:
	case <-time.After(30 * time.Second):
		return errors.New("redis-server did not exit after SHUTDOWN")
	}
	return s.startRedis(ctx)
}

// --- operator ---

func (s *System) startOperator(ctx context.Context) error {
	if s.OperatorMetricsAddr == "" {
		mp, err := s.port(8080)
		if err != nil {
			return err
		}
		hp, err := s.port(0)
		if err != nil {
			return err
		}
		s.OperatorMetricsAddr = "127.0.0.1:" + strconv.Itoa(mp)
		s.operatorProbeAddr = "127.0.0.1:" + strconv.Itoa(hp)
	}
	p, err := startProc(procSpec{
		name: "operator", path: s.bin("manager"), log: s.logPath("operator"),
		args: []string{
			"--redis-url=" + s.RedisURL,
			"--leader-elect=false",
			"--metrics-bind-address=" + s.OperatorMetricsAddr,
			"--health-probe-bind-address=" + s.operatorProbeAddr,
			"--queue-poll-interval=" + s.opts.QueuePollInterval.String(),
			"--worker-image=local/conserver:dev",
		},
		env: []string{"KUBECONFIG=" + s.KubeconfigPath},
	})
	if err != nil {
		return err
	}
	s.operator = p
	s.track(p)
	return waitHTTP(ctx, p, "http://"+s.operatorProbeAddr+"/readyz", 60*time.Second)
}

// RestartOperator stops the operator with SIGTERM and starts it again.
func (s *System) RestartOperator(ctx context.Context) error {
	if s.operator != nil {
		s.operator.stop(30 * time.Second)
	}
	return s.startOperator(ctx)
}

// --- API ---

func (s *System) startAPI(ctx context.Context) error {
	port, err := s.port(8000)
	if err != nil {
		return err
	}
	token, err := randomToken(24)
	if err != nil {
		return err
	}
	s.APIToken = token
	s.APITokenPath = filepath.Join(s.opts.StateDir, "api-token")
	if err := writeFileAtomic(s.APITokenPath, []byte(token+"\n"), 0o600); err != nil {
		return err
	}
	s.APIURL = "http://127.0.0.1:" + strconv.Itoa(port)
	p, err := startProc(procSpec{
		name: "api", path: s.bin("api"), log: s.logPath("api"),
		args: []string{"--addr=127.0.0.1:" + strconv.Itoa(port)},
		env:  []string{"REDIS_URL=" + s.RedisURL, "CONSERVER_API_TOKEN_FILE=" + s.APITokenPath, "OTEL_SDK_DISABLED=true"},
	})
	if err != nil {
		return err
	}
	s.api = p
	s.track(p)
	return waitHTTP(ctx, p, s.APIURL+"/api/health", 60*time.Second)
}

// --- runner ---

func (s *System) startRunner(ctx context.Context) error {
	rctx, cancel := context.WithCancel(context.Background())
	s.runnerCancel = cancel
	s.runnerDone = make(chan struct{})
	s.Runner = &Runner{
		Client:      s.Client,
		Conserver:   s.bin("conserver"),
		StateDir:    s.opts.StateDir,
		TargetsFile: filepath.Join(s.opts.StateDir, "prometheus", "workers.json"),
		Log:         s.log,
		onStart:     s.track,
	}
	go func() {
		defer close(s.runnerDone)
		_ = s.Runner.Run(rctx)
	}()
	return nil
}

// Stop stops everything, in the order that loses nothing: workers first
// (they finish or return their vCons), then the operator, the API,
// Prometheus, PostgreSQL, Redis (SHUTDOWN, AOF flushed), the control plane.
func (s *System) Stop() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	s.mu.Unlock()
	if s.runnerCancel != nil {
		s.log.Info("stopping workers")
		s.runnerCancel()
		<-s.runnerDone
	}
	for _, p := range []*proc{s.operator, s.api, s.prometheus} {
		if p != nil {
			s.log.Info("stopping " + p.name)
			p.stop(20 * time.Second)
		}
	}
	if s.Postgres != nil {
		s.log.Info("stopping PostgreSQL")
		s.Postgres.stop()
	}
	if s.redis != nil {
		s.log.Info("stopping redis-server")
		s.redis.stop(30 * time.Second)
	}
	if s.Env != nil {
		s.log.Info("stopping the control plane")
		if err := s.Env.Stop(); err != nil {
			s.log.Error(err, "stop the control plane")
		}
	}
}

// Leftovers lists processes this system started that still exist (zombies
// excluded): after Stop it must be empty.
func (s *System) Leftovers() []int {
	var alive []int
	for _, pid := range s.StartedPIDs() {
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
