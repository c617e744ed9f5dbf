package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/links"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/storage"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// env is one private redis-server plus what a processor needs. Debian's
// redis-server has no RedisJSON module, so bodies here are plain strings;
// the RedisJSON path of the body codec is covered by vconstore's recorded
// command tests.
type env struct {
	rdb    *redis.Client
	bodies *vconstore.Store
	log    *slog.Logger
}

func newEnv(t *testing.T) *env { return newEnvTB(t) }

func newEnvTB(t testing.TB) *env {
	t.Helper()
	rdb := testenv.StartRedis(t).Client()
	return &env{
		rdb:    rdb,
		bodies: vconstore.New(rdb, vconstore.Options{}),
		log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// mod is a link or storage as a config names it.
type mod struct {
	name, module string
	opts         map[string]any
}

// chain builds a chain from the real link and storage registries.
func (e *env) chain(t *testing.T, name string, ingress, egress []string, ls, ss []mod) Chain {
	return e.chainTB(t, name, ingress, egress, ls, ss)
}

func (e *env) chainTB(t testing.TB, name string, ingress, egress []string, ls, ss []mod) Chain {
	t.Helper()
	ch := Chain{Name: name, Ingress: ingress, Egress: egress}
	for _, m := range ls {
		l, err := links.New(m.name, m.module, m.opts, links.Deps{Redis: e.rdb, HTTP: http.DefaultClient, Logger: e.log})
		if err != nil {
			t.Fatalf("build link: %v", err)
		}
		ch.Links = append(ch.Links, Step{Name: m.name, Link: l})
	}
	for _, m := range ss {
		s, err := storage.New(context.Background(), m.name, m.module, m.opts, storage.Deps{Redis: e.rdb, HTTP: http.DefaultClient, Logger: e.log})
		if err != nil {
			t.Fatalf("build storage: %v", err)
		}
		if c, ok := s.(storage.Closer); ok {
			t.Cleanup(func() { _ = c.Close() })
		}
		ch.Storages = append(ch.Storages, Sink{Name: m.name, Storage: s})
	}
	// As Build does for a config that holds only this chain's storages.
	ch.ReadFrom = ch.Storages
	return ch
}

// testOptions keeps retries short.
func testOptions() Options {
	return Options{StorageAttempts: 3, StorageBackoff: time.Millisecond, StorageBackoffMax: 5 * time.Millisecond, ReadThrough: true}
}

func (e *env) processor(ch Chain, opts Options, workerID string) (*Processor, *Metrics, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	w := queue.NewWorker(e.rdb, workerID, time.Minute)
	return NewProcessor(e.rdb, e.bodies, w, ch, opts, m, e.log), m, reg
}

// take registers the processor's worker and takes the next item of list.
func (e *env) take(t *testing.T, p *Processor, list string) queue.Item {
	t.Helper()
	ctx := context.Background()
	if err := p.worker.Heartbeat(ctx, []string{list}); err != nil {
		t.Fatal(err)
	}
	it, ok, err := p.worker.Take(ctx, list, time.Second)
	if err != nil || !ok {
		t.Fatalf("take from %s: %v, %v", list, ok, err)
	}
	return it
}

// putBody stores a body as a plain string, with ttl when > 0.
func (e *env) putBody(t *testing.T, uuid string, body []byte, ttl time.Duration) {
	t.Helper()
	if err := e.rdb.Set(context.Background(), vconstore.Key(uuid), body, ttl).Err(); err != nil {
		t.Fatal(err)
	}
}

func (e *env) list(t *testing.T, key string) []string {
	t.Helper()
	v, err := e.rdb.LRange(context.Background(), key, 0, -1).Result()
	if err != nil {
		t.Fatalf("LRANGE %s: %v", key, err)
	}
	return v
}

// testUUID returns a valid uuid for the n-th test vCon.
func testUUID(n int) string { return fmt.Sprintf("0190d6f0-1c2d-7a00-8000-%012d", n) }

// document is a realistic older-format vCon (vcon 0.0.1, mimetype, an
// unknown field) of about size bytes (at least ~600).
func document(uuid string, size int) []byte {
	pad := size - 600
	if pad < 0 {
		pad = 0
	}
	text := make([]byte, pad)
	for i := range text {
		text[i] = "abcdefghij klmnopqrstuvwxyz"[i%27]
	}
	doc := map[string]any{
		"vcon":       "0.0.1",
		"uuid":       uuid,
		"created_at": "2024-03-05T10:00:00.000+00:00",
		"subject":    "Support call",
		"parties": []any{
			map[string]any{"tel": "+15555550100", "name": "Alice Agent", "role": "agent"},
			map[string]any{"tel": "+15555550101", "name": "Bob Customer", "role": "customer"},
		},
		"dialog": []any{map[string]any{
			"type": "recording", "start": "2024-03-05T10:00:01Z", "duration": 312.5,
			"parties": []any{0, 1}, "mimetype": "audio/x-wav",
			"url": "https://media.example.com/rec/" + uuid + ".wav",
		}},
		"analysis": []any{map[string]any{
			"type": "transcript", "dialog": 0, "vendor": "deepgram", "encoding": "none",
			"body": string(text),
		}},
		"attachments": []any{},
		"x_custom":    map[string]any{"kept": true},
	}
	b, _ := json.Marshal(doc)
	return b
}
