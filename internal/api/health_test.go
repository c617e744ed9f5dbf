package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// redisPID is the process id of the harness's redis-server.
func redisPID(t *testing.T, h *harness) int {
	t.Helper()
	info := h.rdb.Info(context.Background(), "server").Val()
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "process_id:"); ok {
			pid, err := strconv.Atoi(v)
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
	}
	t.Fatalf("no process_id in INFO server")
	return 0
}

// TestHealthAnswersWithinItsDeadline: with Redis stopped, or frozen
// (SIGSTOP: it accepts connections and never answers, as a partitioned
// or hung server does), /api/health answers 503 within its 2 s timeout
// plus a little, also to many probes at once. It used to take ~5 s when
// Redis hung: the PING waited for go-redis's socket timeouts.
func TestHealthAnswersWithinItsDeadline(t *testing.T) {
	const bound = 3 * time.Second // DefaultHealthWait (2 s) + slack
	probe := func(t *testing.T, h *harness, n int) {
		t.Helper()
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				rec := h.doJSON("GET", "/api/health", "", noToken())
				took := time.Since(start)
				if rec.Code != http.StatusServiceUnavailable || took > bound {
					t.Errorf("health: %d after %v (want 503 within %v): %s", rec.Code, took, bound, rec.Body.String())
				}
			}()
		}
		wg.Wait()
	}
	t.Run("redis stopped", func(t *testing.T) {
		h := newHarness(t, nil)
		mustStatus(t, h.doJSON("GET", "/api/health", "", noToken()), http.StatusOK)
		h.redis.Stop()
		probe(t, h, 1)
		probe(t, h, 20)
	})
	t.Run("redis frozen", func(t *testing.T) {
		h := newHarness(t, nil)
		mustStatus(t, h.doJSON("GET", "/api/health", "", noToken()), http.StatusOK)
		pid := redisPID(t, h)
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		resumed := false
		resume := func() {
			if !resumed {
				resumed = true
				_ = syscall.Kill(pid, syscall.SIGCONT)
			}
		}
		t.Cleanup(resume)
		probe(t, h, 1)
		probe(t, h, 20)
		resume()
		waitFor(t, "healthy again", func() bool { return h.doJSON("GET", "/api/health", "", noToken()).Code == http.StatusOK })
	})
}
