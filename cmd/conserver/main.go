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
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/config"
	"github.com/vcon-operator/vcon-operator/internal/links"
	"github.com/vcon-operator/vcon-operator/internal/pipeline"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/redisconn"
	"github.com/vcon-operator/vcon-operator/internal/storage"
	"github.com/vcon-operator/vcon-operator/internal/telemetry"
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
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if tuneRuntime(log, memlimit.FromCgroup) {
		startHeadroomTuner(defaultGCPercent)
	}
	if err := run(log, os.Args[1:]); err != nil {
		log.Error("conserver failed", "error", err.Error())
		fmt.Fprintln(os.Stderr, "conserver:", err)
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
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if f.configFile == "" {
		return f, errors.New("no config: pass --config or set CONSERVER_CONFIG_FILE")
	}
	if f.concurrency < 1 {
		return f, fmt.Errorf("--concurrency must be at least 1, got %d", f.concurrency)
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
	chains, closeStorages, err := pipeline.Build(ctx, cfg, f.chain,
		links.Deps{Redis: rdb, HTTP: httpClient, Logger: log},
		storage.Deps{Redis: rdb, HTTP: httpClient, Logger: log})
	if err != nil {
		return fmt.Errorf("invalid config %s:\n%w", f.configFile, err)
	}
	defer closeStorages()
	if f.checkOnly {
		fmt.Printf("config %s is valid: %d chain(s) to run\n", f.configFile, len(chains))
		return nil
	}
	if len(chains) == 0 {
		log.Warn("no enabled chain to run; idling")
	}

	storeOpts, err := vconstore.OptionsFromEnv()
	if err != nil {
		return err
	}
	bodies := vconstore.New(rdb, storeOpts)
	opts := pipeline.Options{
		DLQExpiry:      envSeconds("VCON_DLQ_EXPIRY", 604800),
		ContextExpiry:  envSeconds("VCON_CONTEXT_EXPIRY", 86400),
		ReadThroughTTL: envSeconds("VCON_REDIS_EXPIRY", 3600),
		ReadThrough:    os.Getenv("VCON_STORAGE_FALLBACK_ENABLED") != "false",
	}

	// The Go and process collectors come with the default registry, which
	// is served too: links that call vendors (token usage) register there.
	// Registering them on reg as well would make every scrape fail with
	// "collected before with the same name and label values".
	reg := prometheus.NewRegistry()
	metrics := pipeline.NewMetrics(reg)
	srv := &http.Server{Addr: f.httpAddr, Handler: httpHandler(rdb, reg), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server failed", "error", err)
			stop()
		}
	}()

	if f.pprofAddr != "" {
		// A separate listener, so that exposing metrics never exposes
		// profiles.
		prof := &http.Server{Addr: f.pprofAddr, Handler: pprofHandler(), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := prof.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("pprof server failed", "error", err)
			}
		}()
		defer prof.Close()
	}

	worker := queue.NewWorker(rdb, f.workerID, f.heartbeatTTL)
	log.Info("conserver starting", "version", version.Version, "worker", worker.ID(), "chains", len(chains), "redis", redisconn.Redacted(f.redisURL))
	var wg sync.WaitGroup
	for _, ch := range chains {
		proc := pipeline.NewProcessor(rdb, bodies, worker, ch, opts, metrics, log)
		runner := pipeline.NewRunner(proc, pipeline.RunnerOptions{Concurrency: f.concurrency, GracePeriod: f.grace}, log)
		wg.Add(1)
		go func() { defer wg.Done(); _ = runner.Run(ctx) }()
	}
	<-ctx.Done()
	log.Info("stopping: finishing in-flight vCons", "grace", f.grace.String())
	wg.Wait()
	c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(c)
	return nil
}

func httpHandler(rdb redis.UniversalClient, reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	gatherers := prometheus.Gatherers{reg, prometheus.DefaultGatherer}
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherers, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
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

func envSeconds(key string, def int) time.Duration {
	return time.Duration(envInt(key, def)) * time.Second
}
