// Command conserver is the vCon worker: it runs the chains of a conserver
// configuration file (unchanged from the Python vCon Server's), taking vCon
// uuids from Redis ingress lists at least once. The operator runs it as
// `conserver --config /etc/vcon/conserver.yml --chain NAME` in each Chain's
// Deployment; it also runs on its own for a step-by-step migration.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/apiwire"
	"github.com/vcon-operator/vcon-operator/internal/config"
	"github.com/vcon-operator/vcon-operator/internal/follower"
	"github.com/vcon-operator/vcon-operator/internal/links"
	"github.com/vcon-operator/vcon-operator/internal/logging"
	"github.com/vcon-operator/vcon-operator/internal/pipeline"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/redisconn"
	"github.com/vcon-operator/vcon-operator/internal/storage"
	"github.com/vcon-operator/vcon-operator/internal/telemetry"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
	"github.com/vcon-operator/vcon-operator/internal/version"
)

type flags struct {
	configFile   string
	chain        string
	redisURL     string
	httpAddr     string
	pprofAddr    string
	concurrency  int
	grace        time.Duration
	heartbeatTTL time.Duration
	workerID     string
	checkOnly    bool
	// defaultTimeout bounds chains without a timeout; storageTimeout one
	// storage write attempt.
	defaultTimeout time.Duration
	storageTimeout time.Duration
	maxBodyBytes   int64
	// reloadEvery is how often the config file is re-read; 0 never.
	reloadEvery time.Duration
	// supportedExts are the extensions a vCon's critical list may name.
	supportedExts []string
}

// defaultGCPercent is the worker's GOGC unless the environment sets one.
// Its live heap is small (the documents in flight, a few MiB) while it
// allocates fast (every vCon is decoded and re-encoded), so Go's default of
// 100 collects dozens of times a second; 400 spends a fraction of that CPU
// on collection and keeps the heap within tens of MiB (docs/benchmarks.md:
// peak RSS at concurrency 32).
const defaultGCPercent = 400

// tuneRuntime sets the collector for a worker: GOGC 400 unless GOGC is set,
// and a soft memory limit of 90% of the container's (cgroup) memory limit
// unless GOMEMLIMIT is set (AUTOMEMLIMIT=off disables it), so that a
// larger GOGC never walks a worker with a memory limit into the OOM killer:
// near the limit the collector runs as often as it must. It reports
// whether GOGC is the worker's own, which the headroom tuner
// (gc_headroom.go) may then lower while the live heap is large; a GOGC
// from the environment is left as it is.
func tuneRuntime(log *slog.Logger, limit memlimit.Provider) (ownGOGC bool) {
	ownGOGC = os.Getenv("GOGC") == ""
	if ownGOGC {
		debug.SetGCPercent(defaultGCPercent)
	}
	if _, err := memlimit.Set(memlimit.WithProvider(limit), memlimit.WithRatio(0.9)); err != nil {
		log.Warn("cannot read the container's memory limit; no soft memory limit set", "error", err)
	}
	return ownGOGC
}

func main() {
	log := logging.NewJSON(os.Stderr, nil)
	if tuneRuntime(log, memlimit.FromCgroup) {
		startHeadroomTuner(defaultGCPercent)
	}
	if err := run(log, os.Args[1:]); err != nil {
		log.Error("conserver failed", "error", err.Error())
		fmt.Fprintln(os.Stderr, "conserver:", err)
		writeTerminationMessage(os.Getenv, "conserver: "+err.Error())
		os.Exit(1)
	}
}

func parseFlags(args []string) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("conserver", flag.ContinueOnError)
	fs.StringVar(&f.configFile, "config", os.Getenv("CONSERVER_CONFIG_FILE"), "conserver YAML config (env CONSERVER_CONFIG_FILE)")
	fs.StringVar(&f.chain, "chain", "", "run only this chain")
	fs.StringVar(&f.redisURL, "redis-url", envOr("REDIS_URL", "redis://localhost:6379"), "Redis URL (env REDIS_URL)")
	fs.StringVar(&f.httpAddr, "http-addr", ":9090", "address for /metrics, /healthz and /readyz")
	fs.StringVar(&f.pprofAddr, "pprof-addr", "", "if set, serve Go's /debug/pprof/ profiles on this address (keep it private: profiles show code paths, never vCon content)")
	fs.IntVar(&f.concurrency, "concurrency", envInt("CONSERVER_VCON_CONCURRENCY", 4), "vCons processed at once per chain (env CONSERVER_VCON_CONCURRENCY)")
	fs.DurationVar(&f.grace, "grace-period", 25*time.Second, "on SIGTERM, how long in-flight vCons may finish before they are returned to their ingress list")
	fs.DurationVar(&f.heartbeatTTL, "heartbeat-ttl", queue.DefaultHeartbeatTTL, "how long this worker's claim on its in-flight vCons lasts without a heartbeat")
	fs.StringVar(&f.workerID, "worker-id", "", "id of this worker in Redis (default: hostname plus a random suffix)")
	fs.BoolVar(&f.checkOnly, "check", false, "validate the config, build every link and storage, and exit")
	fs.DurationVar(&f.reloadEvery, "config-reload-interval", envDuration("CONSERVER_CONFIG_RELOAD_INTERVAL", 5*time.Second), "how often the config file is re-read; an edit that loads replaces the running config once its in-flight vCons finish, a broken one is refused and the last good config keeps running (0: never; env CONSERVER_CONFIG_RELOAD_INTERVAL)")
	fs.DurationVar(&f.defaultTimeout, "default-timeout", envDuration("CONSERVER_DEFAULT_TIMEOUT", pipeline.DefaultChainTimeout), "bound of links and storages for one vCon of a chain that sets no timeout (env CONSERVER_DEFAULT_TIMEOUT)")
	fs.DurationVar(&f.storageTimeout, "storage-timeout", envDuration("CONSERVER_STORAGE_TIMEOUT", pipeline.DefaultStorageCallTimeout), "bound of one storage write attempt (env CONSERVER_STORAGE_TIMEOUT)")
	fs.Int64Var(&f.maxBodyBytes, "max-body-bytes", envInt64("VCON_MAX_BODY_BYTES", vconstore.DefaultMaxBodyBytes), "largest vCon body the worker reads; larger ones are dead-lettered as too_large without being read (env VCON_MAX_BODY_BYTES)")
	exts := fs.String("supported-extensions", os.Getenv("VCON_SUPPORTED_EXTENSIONS"), "extensions a vCon's critical list may name, comma-separated (\"none\" for none); a vCon naming another is dead-lettered as unsupported_critical before any link runs (env VCON_SUPPORTED_EXTENSIONS; default CC)")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if strings.TrimSpace(*exts) != "" {
		var err error
		if f.supportedExts, err = vcon.ParseExtensions(*exts); err != nil {
			return f, fmt.Errorf("--supported-extensions: %w", err)
		}
	}
	if f.configFile == "" {
		return f, errors.New("no config: pass --config or set CONSERVER_CONFIG_FILE")
	}
	if f.concurrency < 1 {
		return f, fmt.Errorf("--concurrency must be at least 1, got %d", f.concurrency)
	}
	if f.defaultTimeout <= 0 || f.storageTimeout <= 0 {
		return f, fmt.Errorf("--default-timeout and --storage-timeout must be positive, got %s and %s", f.defaultTimeout, f.storageTimeout)
	}
	if f.maxBodyBytes <= 0 {
		return f, fmt.Errorf("--max-body-bytes must be positive, got %d", f.maxBodyBytes)
	}
	if f.workerID == "" {
		host, _ := os.Hostname()
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		f.workerID = host + "-" + hex.EncodeToString(b)
	}
	return f, nil
}

func run(log *slog.Logger, args []string) error {
	f, err := parseFlags(args)
	if err != nil {
		return err
	}
	loaded, err := os.ReadFile(f.configFile)
	if err != nil {
		return err
	}
	cfg, err := config.Load(f.configFile)
	if err != nil {
		return err
	}
	if err := cfg.Validate(config.Validator{Links: links.Known(), Storages: storage.Known()}); err != nil {
		return fmt.Errorf("invalid config %s:\n%w", f.configFile, err)
	}
	rdb, err := redisconn.Open(f.redisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	shutdownTelemetry, err := telemetry.Setup(ctx, "conserver")
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	defer telemetry.Flush(shutdownTelemetry)

	httpClient := &http.Client{Timeout: 5 * time.Minute}

	storeOpts, err := vconstore.OptionsFromEnv()
	if err != nil {
		return err
	}
	storeOpts.MaxBodyBytes = f.maxBodyBytes
	bodies := vconstore.New(rdb, storeOpts)
	opts := pipeline.Options{
		DLQExpiry:      apiwire.EnvSeconds("VCON_DLQ_EXPIRY", pipeline.DefaultDLQExpiry),
		ContextExpiry:  apiwire.EnvSeconds("VCON_CONTEXT_EXPIRY", queue.DefaultContextTTL),
		ReadThroughTTL: apiwire.EnvSeconds("VCON_REDIS_EXPIRY", apiwire.DefaultVconTTL),
		// The operator sets it on worker pods from its own setting, so
		// that its QueueBacklogNearExpiry alert and the API agree.
		QueuedRetention: apiwire.EnvSeconds("VCON_QUEUED_RETENTION", apiwire.DefaultQueuedRetention),
		ReadThrough:     os.Getenv("VCON_STORAGE_FALLBACK_ENABLED") != "false",

		DefaultTimeout:      f.defaultTimeout,
		StorageCallTimeout:  f.storageTimeout,
		SupportedExtensions: f.supportedExts,
	}

	// The Go and process collectors come with the default registry, which
	// is served too: links that call vendors (token usage) register there.
	// Registering them on reg as well would make every scrape fail with
	// "collected before with the same name and label values".
	reg := prometheus.NewRegistry()
	gens := &generations{
		f: f, log: log, rdb: rdb, bodies: bodies, opts: opts, http: httpClient,
		worker:   queue.NewWorker(rdb, f.workerID, f.heartbeatTTL),
		metrics:  pipeline.NewMetrics(reg),
		reporter: &stallReporters{},
		reloads:  newReloadCounter(reg),
	}
	bodyTTL := opts.ReadThroughTTL
	if bodyTTL > 0 && bodyTTL < opts.QueuedRetention {
		// As the API's POST: a queued body outlives the backlog ahead of it.
		bodyTTL = opts.QueuedRetention
	}
	gens.follow = follower.Options{
		HeaderName: os.Getenv("CONSERVER_HEADER_NAME"), BodyTTL: bodyTTL, DLQExpiry: opts.DLQExpiry,
		ContextTTL: opts.ContextExpiry, MaxBodyBytes: f.maxBodyBytes, Owner: gens.worker.ID(),
		HTTP: httpClient, Metrics: follower.NewMetrics(reg), Logger: log,
	}
	gen, err := gens.build(ctx, cfg)
	if err != nil {
		return fmt.Errorf("invalid config %s:\n%w", f.configFile, err)
	}
	if f.checkOnly {
		gen.close()
		fmt.Printf("config %s is valid: %d chain(s) and %d follower(s) to run\n", f.configFile, len(gen.procs), len(gen.followers))
		return nil
	}
	if len(gen.procs) == 0 && len(gen.followers) == 0 {
		log.Warn("no enabled chain to run; idling")
	}

	// Listen before taking any work: a worker whose port is taken would
	// otherwise process vCons unobserved, or exit 0 having done nothing.
	ln, err := net.Listen("tcp", f.httpAddr)
	if err != nil {
		return fmt.Errorf("serve /metrics, /healthz and /readyz: %w", err)
	}
	srv := &http.Server{Handler: httpHandler(rdb, reg, gens.reporter), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			serveErr <- err
			stop()
		}
	}()

	if f.pprofAddr != "" {
		// A separate listener, so that exposing metrics never exposes
		// profiles.
		pln, err := net.Listen("tcp", f.pprofAddr)
		if err != nil {
			return fmt.Errorf("serve pprof: %w", err)
		}
		prof := &http.Server{Handler: pprofHandler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = prof.Serve(pln) }()
		defer prof.Close()
	}

	log.Info("conserver starting", "version", version.Version, "worker", gens.worker.ID(), "chains", len(gen.procs), "followers", len(gen.followers), "redis", redisconn.Redacted(f.redisURL))
	gens.start(gen)
	gen = gens.watch(ctx, f.configFile, f.reloadEvery, gen, loaded)
	log.Info("stopping: finishing in-flight vCons", "grace", f.grace.String())
	gens.stop(gen)
	c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(c)
	select {
	case err := <-serveErr:
		return fmt.Errorf("serve /metrics, /healthz and /readyz: %w", err)
	default:
		return nil
	}
}

// stallReporter is what /healthz asks: how many vCons of a chain are stuck
// past their timeout (pipeline.Processor).
type stallReporter interface {
	ChainName() string
	Stalled(now time.Time) int
}

func httpHandler(rdb redis.UniversalClient, reg *prometheus.Registry, procs *stallReporters) http.Handler {
	mux := http.NewServeMux()
	gatherers := prometheus.Gatherers{reg, prometheus.DefaultGatherer}
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherers, promhttp.HandlerOpts{}))
	// Liveness: a vCon still running well past its chain's timeout sits in
	// code that ignores cancellation, and its slot never comes back; the
	// kubelet's restart returns it to its list (Redis being away is
	// readiness, not liveness: the worker recovers by itself).
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		now := time.Now()
		for _, p := range procs.all() {
			if n := p.Stalled(now); n > 0 {
				http.Error(w, fmt.Sprintf("chain %s: %d vCon(s) still running past the chain timeout; restart needed", p.ChainName(), n), http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := rdb.Ping(ctx).Err(); err != nil {
			http.Error(w, "redis unreachable", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func envInt(key string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(key)); err == nil {
		return v
	}
	return def
}

func envInt64(key string, def int64) int64 {
	if v, err := strconv.ParseInt(os.Getenv(key), 10, 64); err == nil {
		return v
	}
	return def
}

// envDuration reads "30s"-style durations or plain seconds.
func envDuration(key string, def time.Duration) time.Duration {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	if d, err := time.ParseDuration(v); err == nil {
		return d
	}
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second
	}
	return def
}
