package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/config"
	"github.com/vcon-operator/vcon-operator/internal/follower"
	"github.com/vcon-operator/vcon-operator/internal/links"
	"github.com/vcon-operator/vcon-operator/internal/pipeline"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/storage"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// A standalone worker (conserver --config FILE) applies an edited file
// without a restart, as conserver re-reads its file every loop. Each
// config runs as a generation: its chains' processors and runners. A
// reload builds the next generation first (a broken edit is refused there,
// and the running one keeps going), then stops the running one the way a
// SIGTERM does (in-flight vCons finish within the grace period, the rest
// go back to the head of their lists, untouched), and starts the next. No
// vCon is dropped, and none is processed twice: a returned vCon has not
// run.

// generation is one config's chains and followers at work.
type generation struct {
	procs     []*pipeline.Processor
	followers []*follower.Follower
	close     func()
	cancel    context.CancelFunc
	running   sync.WaitGroup
	// Followers stop first, so that a stopping generation stops taking
	// vCons from upstream before its chains stop processing them.
	stopFollowing context.CancelFunc
	following     sync.WaitGroup
}

// stallReporters are the processors /healthz asks, of the running
// generation.
type stallReporters struct {
	current atomic.Pointer[[]stallReporter]
}

func (s *stallReporters) set(procs []*pipeline.Processor) {
	r := make([]stallReporter, len(procs))
	for i, p := range procs {
		r[i] = p
	}
	s.current.Store(&r)
}

func (s *stallReporters) all() []stallReporter {
	if s == nil {
		return nil
	}
	if p := s.current.Load(); p != nil {
		return *p
	}
	return nil
}

// generations builds and runs generations on one worker identity.
type generations struct {
	f        flags
	log      *slog.Logger
	rdb      redis.UniversalClient
	bodies   *vconstore.Store
	worker   *queue.Worker
	opts     pipeline.Options
	metrics  *pipeline.Metrics
	http     *http.Client
	reporter *stallReporters
	reloads  *prometheus.CounterVec
	// follow is what every follower shares (its Metrics among them).
	follow follower.Options
}

// build constructs every link and storage of cfg: an error leaves nothing
// open.
func (g *generations) build(ctx context.Context, cfg *config.Config) (*generation, error) {
	chains, closeStorages, err := pipeline.Build(ctx, cfg, g.f.chain,
		links.Deps{Redis: g.rdb, HTTP: g.http, Logger: g.log},
		storage.Deps{Redis: g.rdb, HTTP: g.http, Logger: g.log})
	if err != nil {
		return nil, err
	}
	gen := &generation{close: closeStorages}
	for _, ch := range chains {
		gen.procs = append(gen.procs, pipeline.NewProcessor(g.rdb, g.bodies, g.worker, ch, g.opts, g.metrics, g.log))
	}
	for _, name := range followersOf(cfg, g.f.chain) {
		gen.followers = append(gen.followers, follower.New(name, cfg.Followers[name], g.rdb, g.bodies, g.follow))
	}
	return gen, nil
}

// followersOf names the followers a worker runs: all of them, or with
// --chain (the operator's workers) those feeding that chain's ingress
// lists, so that a follower runs beside the chain that reads what it
// brings.
func followersOf(cfg *config.Config, chain string) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(cfg.Followers)) {
		if chain != "" && !slices.ContainsFunc(cfg.Followers[name].IngressLists, func(l string) bool {
			return slices.Contains(cfg.Chains[chain].IngressLists, l)
		}) {
			continue
		}
		out = append(out, name)
	}
	return out
}

// start runs gen's chains until stop.
func (g *generations) start(gen *generation) {
	ctx, cancel := context.WithCancel(context.Background())
	gen.cancel = cancel
	for _, proc := range gen.procs {
		runner := pipeline.NewRunner(proc, pipeline.RunnerOptions{Concurrency: g.f.concurrency, GracePeriod: g.f.grace}, g.log)
		gen.running.Add(1)
		go func() { defer gen.running.Done(); _ = runner.Run(ctx) }()
	}
	g.reporter.set(gen.procs)
	fctx, stopFollowing := context.WithCancel(context.Background())
	gen.stopFollowing = stopFollowing
	for _, fl := range gen.followers {
		gen.following.Add(1)
		go func() { defer gen.following.Done(); fl.Run(fctx) }()
	}
}

// stop ends gen as a SIGTERM would and closes its storages.
func (g *generations) stop(gen *generation) {
	gen.stopFollowing()
	gen.following.Wait()
	gen.cancel()
	gen.running.Wait()
	gen.close()
}

// load reads and checks a config file: parsed, validated, every module
// built.
func (g *generations) load(ctx context.Context, path string) (*generation, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(config.Validator{Links: links.Known(), Storages: storage.Known()}); err != nil {
		return nil, err
	}
	return g.build(ctx, cfg)
}

// watch re-reads the config file every interval until ctx ends and swaps
// in a generation for each edit that loads; it returns the generation
// running at the end. A file that cannot be read or does not load keeps
// the running one, said once per edit (the file's content is hashed).
func (g *generations) watch(ctx context.Context, path string, interval time.Duration, running *generation, loaded []byte) *generation {
	if interval <= 0 {
		<-ctx.Done()
		return running
	}
	last := sha256.Sum256(loaded)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return running
		case <-t.C:
		}
		data, err := os.ReadFile(path)
		if err != nil {
			if last != [32]byte{} {
				g.log.Error("config file unreadable; keeping the running config", "file", path, "error", err.Error())
				g.reloads.WithLabelValues("refused").Inc()
				last = [32]byte{}
			}
			continue
		}
		sum := sha256.Sum256(data)
		if sum == last {
			continue
		}
		last = sum
		if bytes.Equal(data, loaded) {
			continue // back to what runs
		}
		next, err := g.load(ctx, path)
		if err != nil {
			g.log.Error("config edit refused; keeping the last good config", "file", path, "error", err.Error())
			g.reloads.WithLabelValues("refused").Inc()
			continue
		}
		g.log.Info("config edited: finishing in-flight vCons, then running the new config", "file", path, "chains", len(next.procs))
		g.stop(running)
		g.start(next)
		running, loaded = next, data
		g.reloads.WithLabelValues("applied").Inc()
		g.log.Info("config reloaded", "file", path, "chains", len(next.procs))
	}
}

func newReloadCounter(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vcon_worker_config_reloads_total",
		Help: "Edits of the worker's config file, by outcome: applied, or refused (the last good config keeps running).",
	}, []string{"outcome"})
	reg.MustRegister(c)
	c.WithLabelValues("applied")
	c.WithLabelValues("refused")
	return c
}
