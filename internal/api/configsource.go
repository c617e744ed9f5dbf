package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/config"
	"github.com/vcon-operator/vcon-operator/internal/storage"
)

// configSource holds what the API uses from the conserver configuration
// file: every storage (read-through and DELETE) and ingress_auth. Like
// conserver, it follows edits without a restart: the file is checked at
// most once per recheck and reloaded when its size or time changed (a
// Kubernetes ConfigMap update swaps the file). A file that stops parsing
// keeps the last good configuration.
type configSource struct {
	path string
	rdb  redis.UniversalClient
	log  *slog.Logger

	mu        sync.Mutex
	checked   time.Time
	stamp     fileStamp
	current   *loadedConfig
	recheckIn time.Duration
}

type fileStamp struct {
	size int64
	mod  time.Time
}

type loadedConfig struct {
	// storages are in the file's order, which is the read-through order
	// (conserver's).
	storages    []storage.Named
	ingressAuth map[string][][sha256.Size]byte
	// lists are the ingress and egress lists of every chain, sorted: an
	// erasure takes the uuid off them (and off their DLQs) so that no
	// worker processes an erased vCon later.
	lists []string
}

func newConfigSource(path string, rdb redis.UniversalClient, log *slog.Logger) (*configSource, error) {
	c := &configSource{path: path, rdb: rdb, log: log, recheckIn: time.Second, current: &loadedConfig{}}
	if path == "" {
		return c, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("CONSERVER_CONFIG_FILE: %w", err)
	}
	lc, err := load(context.Background(), path, rdb, log)
	if err != nil {
		return nil, err
	}
	c.current, c.stamp, c.checked = lc, fileStamp{st.Size(), st.ModTime()}, time.Now()
	return c, nil
}

func load(ctx context.Context, path string, rdb redis.UniversalClient, log *slog.Logger) (*loadedConfig, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	lc := &loadedConfig{ingressAuth: map[string][][sha256.Size]byte{}}
	var errs []error
	for _, name := range cfg.StorageNames() {
		m := cfg.Storages[name]
		st, err := storage.New(ctx, name, m.Module, m.Options, storage.Deps{Redis: rdb, Logger: log})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		lc.storages = append(lc.storages, storage.Named{Name: name, Storage: st})
	}
	if err := errors.Join(errs...); err != nil {
		lc.close()
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	seen := map[string]bool{}
	for _, ch := range cfg.Chains {
		for _, l := range append(slices.Clone(ch.IngressLists), ch.EgressLists...) {
			if l != "" && !seen[l] {
				seen[l] = true
				lc.lists = append(lc.lists, l)
			}
		}
	}
	slices.Sort(lc.lists)
	for list, keys := range cfg.IngressAuth {
		for _, k := range keys {
			if k != "" {
				lc.ingressAuth[list] = append(lc.ingressAuth[list], sha256.Sum256([]byte(k)))
			}
		}
	}
	return lc, nil
}

func (lc *loadedConfig) close() {
	for _, ns := range lc.storages {
		if c, ok := ns.Storage.(storage.Closer); ok {
			_ = c.Close()
		}
	}
}

// get returns the current configuration, reloading a changed file.
func (c *configSource) get(ctx context.Context) *loadedConfig {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.path == "" || time.Since(c.checked) < c.recheckIn {
		return c.current
	}
	c.checked = time.Now()
	st, err := os.Stat(c.path)
	if err != nil {
		c.log.Warn("config file unreadable; keeping the last good configuration", "path", c.path, "error", err)
		return c.current
	}
	stamp := fileStamp{st.Size(), st.ModTime()}
	if stamp == c.stamp {
		return c.current
	}
	lc, err := load(ctx, c.path, c.rdb, c.log)
	if err != nil {
		c.log.Warn("config file changed but does not load; keeping the last good configuration", "path", c.path, "error", err)
		c.stamp = stamp
		return c.current
	}
	// In-flight requests may still use the old storages; closing them
	// now could fail those reads, so the old set is closed a bit later.
	old := c.current
	time.AfterFunc(time.Minute, old.close)
	c.current, c.stamp = lc, stamp
	c.log.Info("config file reloaded", "path", c.path, "storages", len(lc.storages))
	return c.current
}

// forceReload makes the next get look at the file.
func (c *configSource) forceReload() {
	c.mu.Lock()
	c.checked = time.Time{}
	c.stamp = fileStamp{}
	c.mu.Unlock()
}

func (c *configSource) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.current.close()
	return nil
}

// ingressKeyStatus is why an external-ingress key was refused, in
// conserver's words; "" means accepted.
func (lc *loadedConfig) ingressKeyStatus(list, presented string) string {
	if len(lc.ingressAuth) == 0 {
		return "No ingress authentication configured"
	}
	keys, ok := lc.ingressAuth[list]
	if !ok {
		return fmt.Sprintf("Ingress list '%s' not configured", list)
	}
	got := sha256.Sum256([]byte(presented))
	found := 0
	for i := range keys {
		found |= subtle.ConstantTimeCompare(got[:], keys[i][:])
	}
	if found != 1 {
		return fmt.Sprintf("Invalid API Key for ingress list '%s'", list)
	}
	return ""
}
