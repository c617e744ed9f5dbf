package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// TestConfigReload: the standalone worker applies an edited config file
// without a restart. vCons in flight when the edit lands (held 800 ms by a
// webhook) finish under the old config, none is posted twice and none is
// lost; vCons after it run under the new one. A broken edit is refused,
// the log says why, and the last good config keeps running.
func TestConfigReload(t *testing.T) {
	srv := testenv.StartRedis(t)
	rdb := srv.Client()
	ctx := context.Background()
	var mu sync.Mutex
	posts := map[string]int{}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v struct{ UUID string }
		_ = json.NewDecoder(r.Body).Decode(&v)
		mu.Lock()
		posts[v.UUID]++
		mu.Unlock()
		time.Sleep(800 * time.Millisecond)
	}))
	defer hook.Close()
	config := func(tag string) string {
		return `
links:
  tagger: {module: links.tag, options: {tags: [` + tag + `]}}
  notify: {module: links.webhook, options: {webhook-urls: [` + hook.URL + `]}}
chains:
  main: {links: [tagger, notify], ingress_lists: [reload-in], egress_lists: [reload-out]}
`
	}
	cfg := writeConfig(t, config("first"))
	w := startWorker(t, cfg, srv.URL(), "--config-reload-interval", "200ms", "--concurrency", "8")
	w.waitReady(60 * time.Second)

	before := enqueue(t, rdb, "reload-in", 8, 1000)
	// Edit while those eight are in the webhook.
	waitUntil(t, 10*time.Second, "the first vCons in flight", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(posts) >= 4
	})
	if err := os.WriteFile(cfg, []byte(config("second")), 0o600); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "the reload", func() bool { return strings.Contains(w.logTail(), "config reloaded") })
	after := []string{testUUID(100), testUUID(101)}
	for _, u := range after {
		rdb.Set(ctx, vconstore.Key(u), `{"vcon":"0.0.1","uuid":"`+u+`","created_at":"2024-03-05T10:00:00Z","parties":[],"dialog":[]}`, 0)
		rdb.RPush(ctx, "reload-in", u)
	}

	// A broken edit: refused, the second config keeps running.
	if err := os.WriteFile(cfg, []byte("links: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the refusal", func() bool {
		return strings.Contains(w.logTail(), "config edit refused; keeping the last good config")
	})
	late := testUUID(102)
	rdb.Set(ctx, vconstore.Key(late), `{"vcon":"0.0.1","uuid":"`+late+`","created_at":"2024-03-05T10:00:00Z","parties":[],"dialog":[]}`, 0)
	rdb.RPush(ctx, "reload-in", late)
	after = append(after, late)

	waitUntil(t, 30*time.Second, "every vCon on egress", func() bool {
		return rdb.LLen(ctx, "reload-out").Val() >= int64(len(before)+len(after))
	})
	egress := rdb.LRange(ctx, "reload-out", 0, -1).Val()
	seen := map[string]int{}
	for _, u := range egress {
		seen[u]++
	}
	tagOf := func(u string) string {
		b, err := vconstore.New(rdb, vconstore.Options{}).Get(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		v, err := vcon.Parse(b.Data)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(vcon.Tags(v), ",")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, u := range before {
		if seen[u] != 1 || posts[u] != 1 {
			t.Errorf("vCon %s in flight at the reload: %d times on egress, posted %d times; want once each", u, seen[u], posts[u])
		}
	}
	for _, u := range after {
		if seen[u] != 1 || posts[u] != 1 || !strings.Contains(tagOf(u), "second") {
			t.Errorf("vCon %s after the reload: egress %d, posts %d, tags %q; want once, once, the second config's", u, seen[u], posts[u], tagOf(u))
		}
	}
	if d := rdb.LLen(ctx, queue.DLQKey("reload-in")).Val(); d != 0 {
		t.Errorf("%d vCons dead-lettered", d)
	}
	resp, err := http.Get("http://" + w.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body := new(strings.Builder)
	_, _ = io.Copy(body, resp.Body)
	for _, want := range []string{`vcon_worker_config_reloads_total{outcome="applied"} 1`, `vcon_worker_config_reloads_total{outcome="refused"} 1`} {
		if !strings.Contains(body.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
