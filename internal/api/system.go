package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.yaml.in/yaml/v3"

	"github.com/vcon-operator/vcon-operator/internal/config"
	"github.com/vcon-operator/vcon-operator/internal/secrets"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/version"
)

type healthAnswer struct {
	Status  string       `json:"status"`
	Reason  string       `json:"reason,omitempty"`
	Version version.Info `json:"version"`
}

// GET /api/health → 200 healthy only when Redis answers PING in time;
// otherwise 503 unhealthy with the reason, within HealthTimeout.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.HealthTimeout)
	defer cancel()
	if err := s.ping.ping(ctx, s.rdb, s.opts.HealthTimeout); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, healthAnswer{
			Status: "unhealthy", Reason: "redis: " + err.Error(), Version: version.Get(),
		})
		return
	}
	writeJSON(w, http.StatusOK, healthAnswer{Status: "healthy", Version: version.Get()})
}

// pinger runs the health check's PING so that it answers within its
// deadline. go-redis does not bound socket reads and writes by the
// context's deadline unless the client was built with
// ContextTimeoutEnabled (ours are not: the worker's blocking commands rely
// on the socket timeouts): a Redis that accepts connections but does not
// answer (stopped with SIGSTOP, a partitioned network, a full backlog)
// held the PING for the client's ReadTimeout and the connection set-up,
// about 5 s, against a 2 s health timeout. The PING now runs in its own
// goroutine and the handler stops waiting at its deadline. At most one
// PING is outstanding: probes arriving while one runs share its result,
// so a hung Redis cannot pile up goroutines and connections.
type pinger struct {
	mu      sync.Mutex
	current *pingCall
}

type pingCall struct {
	done chan struct{}
	err  error
}

func (p *pinger) ping(ctx context.Context, rdb redis.UniversalClient, timeout time.Duration) error {
	p.mu.Lock()
	call := p.current
	if call == nil {
		call = &pingCall{done: make(chan struct{})}
		p.current = call
		go func() {
			// Not the request's context: the PING may outlive the
			// request that started it, for the probes that share it.
			pctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			call.err = rdb.Ping(pctx).Err()
			p.mu.Lock()
			p.current = nil
			p.mu.Unlock()
			close(call.done)
		}()
	}
	p.mu.Unlock()
	select {
	case <-call.done:
		return call.err
	case <-ctx.Done():
		return fmt.Errorf("no answer to PING within %s", timeout)
	}
}

// GET /api/version → {"version","git_commit","build_time"}.
func (s *Server) version(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, version.Get())
}

// GET /api/config → the configuration file as JSON. ${VAR} references are
// shown as written, never resolved, so secrets from the environment stay
// out of the answer. Credentials written in the file are masked too
// (redactConfig) unless ShowConfigSecrets: conserver showed storage
// passwords and ingress keys to every token holder.
func (s *Server) getConfig(w http.ResponseWriter, r *http.Request) {
	if s.opts.ConfigFile == "" {
		writeJSON(w, http.StatusOK, map[string]any{})
		return
	}
	data, err := os.ReadFile(s.opts.ConfigFile)
	if err != nil {
		s.internalError(w, r, "Failed to read configuration", err)
		return
	}
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		s.internalError(w, r, "Failed to read configuration", err)
		return
	}
	if doc == nil {
		doc = map[string]any{}
	}
	doc = jsonable(doc)
	if !s.opts.ShowConfigSecrets {
		doc = redactConfig(doc)
	}
	writeJSON(w, http.StatusOK, doc)
}

// redactConfig masks the credentials of a conserver configuration: every
// ingress_auth key, and what secrets.Redact finds (values of credential
// options at any depth, credentials in URLs). The shape stays: a list of
// three ingress keys shows as three masks.
func redactConfig(doc any) any {
	if m, ok := doc.(map[string]any); ok {
		if auth, ok := m["ingress_auth"].(map[string]any); ok {
			masked := make(map[string]any, len(auth))
			for list, keys := range auth {
				masked[list] = maskAll(keys)
			}
			m["ingress_auth"] = masked
		}
	}
	return secrets.Redact(doc)
}

// holdsMask says whether a decoded configuration holds a value masked by
// redactConfig: the mask itself, or a URL with a masked password or query
// parameter.
func holdsMask(v any) bool {
	switch t := v.(type) {
	case map[string]any:
		for _, e := range t {
			if holdsMask(e) {
				return true
			}
		}
	case []any:
		for _, e := range t {
			if holdsMask(e) {
				return true
			}
		}
	case string:
		return t == secrets.Mask || strings.Contains(t, ":"+secrets.Mask+"@") || strings.Contains(t, "="+secrets.Mask)
	}
	return false
}

// maskAll masks every scalar of v but null.
func maskAll(v any) any {
	switch t := v.(type) {
	case nil:
		return nil
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = maskAll(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = maskAll(e)
		}
		return out
	}
	return secrets.Mask
}

// jsonable turns YAML's map[any]any into map[string]any.
func jsonable(x any) any {
	switch t := x.(type) {
	case map[string]any:
		for k, v := range t {
			t[k] = jsonable(v)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, v := range t {
			m[fmt.Sprint(k)] = jsonable(v)
		}
		return m
	case []any:
		for i, v := range t {
			t[i] = jsonable(v)
		}
		return t
	}
	return x
}

// POST /api/config → 204 after overwriting the configuration file. Off
// unless AllowConfigWrite: under the operator the configuration comes from
// Chain resources, and an HTTP write would be lost at the next rollout.
func (s *Server) postConfig(w http.ResponseWriter, r *http.Request) {
	if !s.opts.AllowConfigWrite || s.opts.ConfigFile == "" {
		writeDetail(w, http.StatusForbidden, "Writing the configuration over HTTP is disabled: change the Chain resources (or the config file), or start the API with --allow-config-write")
		return
	}
	data, ok := s.readBody(w, r)
	if !ok {
		return
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		writeInvalid(w, bodyError("dict_type", "Input should be a JSON object with links, storages and chains"))
		return
	}
	// A configuration fetched with GET /api/config, edited and posted
	// back would replace every credential of the file with the mask.
	if !s.opts.ShowConfigSecrets && holdsMask(doc) {
		writeInvalid(w, bodyError("value_error", "The configuration holds masked credentials ("+secrets.Mask+") as GET /api/config answers them; writing it would replace the real ones. Send the real values or ${VAR} references"))
		return
	}
	// JSON is YAML: the configuration reader checks the shapes, without
	// resolving ${VAR}, so a bad configuration is refused before writing.
	if _, err := config.Parse(data, nil); err != nil {
		writeInvalid(w, bodyError("value_error", err.Error()))
		return
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		s.internalError(w, r, "Failed to update configuration", err)
		return
	}
	dir := filepath.Dir(s.opts.ConfigFile)
	tmp, err := os.CreateTemp(dir, ".config-*.yml")
	if err != nil {
		s.internalError(w, r, "Failed to update configuration", err)
		return
	}
	_, werr := tmp.Write(out)
	cerr := tmp.Close()
	if werr != nil || cerr != nil {
		_ = os.Remove(tmp.Name())
		s.internalError(w, r, "Failed to update configuration", fmt.Errorf("write: %v %v", werr, cerr))
		return
	}
	if err := os.Rename(tmp.Name(), s.opts.ConfigFile); err != nil {
		_ = os.Remove(tmp.Name())
		s.internalError(w, r, "Failed to update configuration", err)
		return
	}
	s.config.forceReload()
	w.WriteHeader(http.StatusNoContent)
}

// GET /api/index_vcons → the number of bodies (re)indexed: each vcon:{uuid}
// key is added to the listing index and its party index sets. Keys are
// scanned (never KEYS) and read in batches.
func (s *Server) indexVcons(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	indexed := 0
	var cursor uint64
	for {
		keys, next, err := s.rdb.Scan(ctx, cursor, "vcon:*", 500).Result()
		if err != nil {
			s.internalError(w, r, "Failed to rebuild the index", err)
			return
		}
		var uuids []string
		for _, k := range keys {
			if u := strings.TrimPrefix(k, "vcon:"); vcon.ValidUUID(u) {
				uuids = append(uuids, u)
			}
		}
		n, err := s.reindex(ctx, uuids)
		if err != nil {
			s.internalError(w, r, "Failed to rebuild the index", err)
			return
		}
		indexed += n
		cursor = next
		if cursor == 0 {
			break
		}
	}
	writeJSON(w, http.StatusOK, indexed)
}

func (s *Server) reindex(ctx context.Context, uuids []string) (int, error) {
	if len(uuids) == 0 {
		return 0, nil
	}
	bodies, err := s.store.MGet(ctx, uuids)
	if err != nil {
		return 0, err
	}
	pipe := s.rdb.Pipeline()
	n := 0
	for i, b := range bodies {
		if b == nil {
			continue
		}
		v, err := vcon.Parse(b)
		if err != nil {
			continue
		}
		t, ok := vcon.CreatedAt(v)
		if !ok {
			continue
		}
		n++
		pipe.ZAdd(ctx, s.opts.SortedSet, redis.Z{Score: float64(t.Unix()), Member: indexMember(uuids[i])})
		for _, k := range partyIndexKeys(v) {
			pipe.SAdd(ctx, k, uuids[i])
			if s.opts.IndexTTL > 0 {
				pipe.Expire(ctx, k, s.opts.IndexTTL)
			}
		}
	}
	if n > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return 0, err
		}
	}
	return n, nil
}
