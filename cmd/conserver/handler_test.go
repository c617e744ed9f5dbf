package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vcon-operator/vcon-operator/internal/links"
	"github.com/vcon-operator/vcon-operator/internal/pipeline"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/redisconn"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/vcon/sample"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// TestHealthAndReadiness: /healthz answers while the process runs; /readyz
// only while Redis answers, so a worker cut off from Redis leaves the
// Service's endpoints; /metrics serves the registry.
func TestHealthAndReadiness(t *testing.T) {
	srv := testenv.StartRedis(t)
	rdb, err := redisconn.Open(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "probe_total", Help: "test"}))
	h := httpHandler(rdb, reg, nil)
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}

	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200} {
		if code, _ := get(path); code != want {
			t.Errorf("%s with Redis up = %d, want %d", path, code, want)
		}
	}
	if _, body := get("/metrics"); !strings.Contains(body, "probe_total") {
		t.Error("/metrics does not serve the worker's registry")
	}

	srv.Stop()
	if code, _ := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with Redis down = %d, want 503", code)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz with Redis down = %d, want 200 (the process is alive)", code)
	}
	srv.Start()
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after Redis came back = %d, want 200", code)
	}
}

// stuckLink never returns until released, whatever its context says: code
// that ignores cancellation.
type stuckLink struct{ release chan struct{} }

func (l stuckLink) Run(context.Context, *vcon.VCon) (links.Result, error) {
	<-l.release
	return links.Result{}, nil
}

// TestHealthzFailsOnStalledSlot: a vCon still running well past its chain
// timeout makes /healthz answer 503 (so the kubelet restarts the worker),
// and /healthz recovers once the slot is free.
func TestHealthzFailsOnStalledSlot(t *testing.T) {
	rdb := testenv.StartRedis(t).Client()
	ctx := context.Background()
	uuid := testUUID(1)
	rdb.Set(ctx, vconstore.Key(uuid), sample.Document(uuid, 2000), 0)
	rdb.RPush(ctx, "in", uuid)
	release := make(chan struct{})
	ch := pipeline.Chain{Name: "main", Ingress: []string{"in"}, Timeout: 50 * time.Millisecond,
		Links: []pipeline.Step{{Name: "stuck", Link: stuckLink{release: release}}}}
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	w := queue.NewWorker(rdb, "w", time.Minute)
	proc := pipeline.NewProcessor(rdb, vconstore.New(rdb, vconstore.Options{}), w, ch,
		pipeline.Options{StallGrace: 50 * time.Millisecond}, pipeline.NewMetrics(reg), log)
	reporters := &stallReporters{}
	reporters.set([]*pipeline.Processor{proc})
	h := httpHandler(rdb, reg, reporters)
	healthz := func() (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		return rec.Code, rec.Body.String()
	}

	if err := w.Heartbeat(ctx, ch.Ingress); err != nil {
		t.Fatal(err)
	}
	it, ok, err := w.Take(ctx, "in", time.Second)
	if err != nil || !ok {
		t.Fatalf("take: %v %v", ok, err)
	}
	done := make(chan error, 1)
	go func() { done <- proc.Process(ctx, it) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, body := healthz()
		if code == http.StatusServiceUnavailable {
			if !strings.Contains(body, "chain main: 1 vCon(s) still running past the chain timeout") {
				t.Fatalf("/healthz body %q does not say what is stuck", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz still %d with a slot stuck past its timeout", code)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if code, _ := healthz(); code != http.StatusOK {
		t.Fatalf("/healthz %d after the slot was freed, want 200", code)
	}
}

// TestMetricsPortTakenFails: a worker that cannot serve its metrics and
// probes exits non-zero naming the address, before taking any work.
func TestMetricsPortTakenFails(t *testing.T) {
	srv := testenv.StartRedis(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := writeConfig(t, `
links:
  tagger: {module: links.tag, options: {tags: [a]}}
chains:
  main: {links: [tagger], ingress_lists: [in]}`)
	srv.Client().RPush(context.Background(), "in", testUUID(1))
	out, err := exec.Command(binary, "--config", cfg, "--redis-url", srv.URL(), "--http-addr", ln.Addr().String()).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("worker with its port taken: %v, want a non-zero exit\n%s", err, out)
	}
	if !strings.Contains(string(out), ln.Addr().String()) || !strings.Contains(string(out), "address already in use") {
		t.Fatalf("the error does not name the address and the reason:\n%s", out)
	}
	if n := srv.Client().LLen(context.Background(), "in").Val(); n != 1 {
		t.Fatalf("the worker took work (%d left on the list) although it could not serve its probes", n)
	}
}
