package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vcon-operator/vcon-operator/internal/redisconn"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
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
	h := httpHandler(rdb, reg)
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
