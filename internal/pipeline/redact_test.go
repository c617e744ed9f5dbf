package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vcon-operator/vcon-operator/internal/config"
	"github.com/vcon-operator/vcon-operator/internal/links"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/storage"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

const (
	cardDigits = "4111111111111111"
	cardSpoken = "four one one one"
)

// pciCall is a call with a card in a chat line and spoken in a timed
// transcript, the way a chain meets it after transcription.
func pciCall(uuid string) []byte {
	words := []any{}
	at := 0.0
	for _, w := range strings.Fields("my card is four one one one one one one one one one one one one one one one thanks") {
		words = append(words, map[string]any{"word": w, "start": at, "end": at + 0.3})
		at += 0.3
	}
	doc := map[string]any{
		"vcon": "0.4.0", "uuid": uuid, "created_at": "2024-03-05T10:00:00.000Z",
		"parties": []any{map[string]any{"tel": "+15555550100", "role": "agent"}, map[string]any{"tel": "+15555550101", "role": "customer"}},
		"dialog": []any{
			map[string]any{"type": "text", "start": "2024-03-05T10:00:00Z", "parties": []any{1}, "body": "card " + cardDigits + " exp 12/27", "mediatype": "text/plain"},
			map[string]any{"type": "recording", "start": "2024-03-05T10:00:05Z", "parties": []any{0, 1}, "mediatype": "audio/x-wav", "url": "https://media.example.com/" + uuid + ".wav"},
		},
		"analysis":    []any{map[string]any{"type": "transcript", "dialog": 1, "vendor": "deepgram", "encoding": "json", "body": map[string]any{"words": words}}},
		"attachments": []any{},
	}
	b, _ := json.Marshal(doc)
	return b
}

// hook is a local receiver standing for the links after redaction that
// must never see the original (an analysis service, Slack).
type hook struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies []string
	fail   atomic.Int32 // answer 503 this many more times
}

func newHook(t *testing.T) *hook {
	h := &hook{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.bodies = append(h.bodies, string(b))
		h.mu.Unlock()
		if h.fail.Add(-1) >= 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) seen() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.bodies)
}

// redactChain is a chain as a user writes it: tag and route before the
// redaction, a webhook after it, an archive storage for the chain and a
// restricted storage for the originals, built by Build from the config.
func redactChain(t *testing.T, e *env, hookURL string, redactOpts map[string]any) (Chain, string, string) {
	t.Helper()
	archive, restricted := t.TempDir(), t.TempDir()
	opts := map[string]any{"original_storages": []any{"restricted"}}
	for k, v := range redactOpts {
		opts[k] = v
	}
	cfg := &config.Config{
		Links: map[string]config.Module{
			"tag":    {Module: "links.tag", Options: map[string]any{"tags": []any{"pci"}}},
			"router": {Module: "links.tag_router", Options: map[string]any{"tag_routes": map[string]any{"pci": []any{"routed"}}}},
			"redact": {Module: "links.redact", Options: opts},
			"notify": {Module: "links.webhook", Options: map[string]any{"webhook-urls": []any{hookURL}, "retries": 0, "strict": true}},
		},
		Storages: map[string]config.Module{
			"archive":    {Module: "storage.file", Options: map[string]any{"path": archive, "organize_by_date": false}},
			"restricted": {Module: "storage.file", Options: map[string]any{"path": restricted, "organize_by_date": false}},
		},
		Chains: map[string]config.Chain{"main": {
			Links: []string{"tag", "router", "redact", "notify"}, Storages: []string{"archive"},
			IngressLists: []string{"in"}, EgressLists: []string{"out"}, Enabled: true, HasLinksKey: true,
		}},
	}
	chains, closeAll, err := Build(context.Background(), cfg, "main",
		links.Deps{Redis: e.rdb, HTTP: http.DefaultClient, Logger: e.log}, storage.Deps{Redis: e.rdb, HTTP: http.DefaultClient, Logger: e.log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeAll)
	return chains[0], archive, restricted
}

// stored is every vCon file of a storage.file root: uuid → content.
func stored(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".json") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[strings.TrimSuffix(filepath.Base(p), ".json")] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func keysOf(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// noCard fails when s holds the card in any spelling.
func noCard(t *testing.T, where, s string) {
	t.Helper()
	if strings.Contains(s, cardDigits) || strings.Contains(s, cardSpoken) {
		t.Errorf("%s holds the card number", where)
	}
}

// checkRedacted checks the end state of a redacted vCon: the original in
// the restricted storage only, the redacted one (and only it) in the
// archive, on egress and on the route, in Redis, and at the webhook; the
// original's body gone from Redis.
// A run that resumed after the router applies the route it asked for
// before the retry, kept with the progress (effects.go).
func checkRedacted(t *testing.T, e *env, orig, archive, restricted string, h *hook) (redID string) {
	t.Helper()
	ctx := context.Background()
	out := e.list(t, "out")
	if len(out) != 1 || out[0] == orig {
		t.Fatalf("egress %v, want one uuid, not the original's", out)
	}
	redID = out[0]
	if r := e.list(t, "routed"); !slices.Equal(r, []string{redID}) {
		t.Errorf("route pushed %v, want the redacted uuid %s", r, redID)
	}
	if n := e.rdb.Exists(ctx, vconstore.Key(orig)).Val(); n != 0 {
		t.Error("the original's body is still in Redis")
	}
	body, err := e.bodies.Get(ctx, redID)
	if err != nil {
		t.Fatalf("redacted body: %v", err)
	}
	noCard(t, "the redacted body in Redis", string(body.Data))
	// The next chain reads it from egress: it must pass the same checks.
	if v, fail := parseBody(body.Data, redID); fail != nil {
		t.Errorf("the next chain would refuse the redacted vCon: %s", fail.text())
	} else if r, _ := v.Doc()["redacted"].(map[string]any); r["uuid"] != orig {
		t.Errorf("redacted object %v does not name the original", r)
	}
	if !strings.Contains(string(body.Data), `"uuid":"`+orig+`"`) {
		t.Error("the redacted body does not refer to the original")
	}
	if got := keysOf(stored(t, restricted)); !slices.Equal(got, []string{orig}) {
		t.Errorf("restricted storage holds %v, want only the original %s", got, orig)
	} else if o := stored(t, restricted)[orig]; !strings.Contains(o, cardDigits) || strings.Contains(o, `"redacted"`) {
		t.Error("the restricted storage's copy is not the unredacted original")
	}
	arch := stored(t, archive)
	if got := keysOf(arch); !slices.Equal(got, []string{redID}) {
		t.Errorf("archive holds %v, want only the redacted %s", got, redID)
	}
	noCard(t, "the archive", arch[redID])
	seen := h.seen()
	if len(seen) == 0 {
		t.Fatal("the webhook after the redaction was never called")
	}
	for _, b := range seen {
		noCard(t, "the webhook's request", b)
		if strings.Contains(b, `"uuid":"`+orig+`","created_at"`) || !strings.Contains(b, redID) {
			t.Error("the webhook got a vCon that is not the redacted one")
		}
	}
	if d := e.list(t, queue.DLQKey("in")); len(d) != 0 {
		t.Errorf("DLQ holds %v", d)
	}
	return redID
}

// TestRedactInPipeline: a chain with links.redact hands the original to
// its restricted storage only; the chain's storage, egress, the route an
// earlier link asked for, Redis and the webhook after it get the redacted
// vCon alone.
func TestRedactInPipeline(t *testing.T) {
	e := newEnv(t)
	h := newHook(t)
	ch, archive, restricted := redactChain(t, e, h.srv.URL, nil)
	p, m, _ := e.processor(ch, testOptions(), "w1")
	orig := testUUID(1)
	e.putBody(t, orig, pciCall(orig), time.Hour)
	e.rdb.RPush(context.Background(), "in", orig)
	e.runOnce(t, p, orig)
	checkRedacted(t, e, orig, archive, restricted, h)
	if got := testutil.ToFloat64(m.LinkOutcomes.WithLabelValues("main", "redact", OutcomeRedact)); got != 1 {
		t.Errorf("redact outcome counted %v times, want 1", got)
	}
}

// crashLink stops the worker the first time it runs, as a kill between
// the redaction and the outcome would: nothing of the run is committed.
type crashLink struct {
	stop context.CancelFunc
	runs atomic.Int32
	saw  atomic.Value // the uuid the chain ran on after the redaction
}

func (c *crashLink) Run(ctx context.Context, v *vcon.VCon) (links.Result, error) {
	c.saw.Store(v.UUID())
	if c.runs.Add(1) == 1 {
		c.stop()
		<-ctx.Done()
		return links.Result{}, ctx.Err()
	}
	return links.Continue, nil
}

// TestRedactSurvivesRetryAndCrash: a failure after the redaction (a
// retried webhook) or a worker stopped after it leaves the original where
// it was, unredacted, with nothing pushed and nothing in the archive;
// the next run redacts it again to the same uuid, and the storages hold
// one copy each.
func TestRedactSurvivesRetryAndCrash(t *testing.T) {
	for _, tc := range []string{"retry", "crash"} {
		t.Run(tc, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			h := newHook(t)
			ch, archive, restricted := redactChain(t, e, h.srv.URL, nil)
			orig := testUUID(2)
			e.putBody(t, orig, pciCall(orig), time.Hour)
			e.rdb.RPush(ctx, "in", orig)

			var firstID string
			switch tc {
			case "retry":
				h.fail.Store(1)
				ch.Retry = RetryPolicy{Attempts: 2, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond}
				p, _, _ := e.processor(ch, testOptions(), "w1")
				e.runOnce(t, p, orig)
				if e.rdb.ZScore(ctx, queue.RetryKey("in"), orig).Err() != nil {
					t.Fatal("the vCon does not wait for a retry")
				}
				var v struct{ UUID string }
				_ = json.Unmarshal([]byte(h.seen()[0]), &v)
				firstID = v.UUID
			case "crash":
				stopCtx, stop := context.WithCancel(ctx)
				crash := &crashLink{stop: stop}
				ch.Links = slices.Insert(ch.Links, 3, Step{Name: "crash", Link: crash})
				p, _, _ := e.processor(ch, testOptions(), "w1")
				it := e.take(t, p, "in")
				if err := p.Process(stopCtx, it); !errors.Is(err, ErrStopped) {
					t.Fatalf("process: %v, want ErrStopped", err)
				}
				if _, err := p.worker.Release(ctx, []string{"in"}); err != nil {
					t.Fatal(err)
				}
				firstID = crash.saw.Load().(string)
				betweenRuns(t, e, orig, archive, restricted)
				if n := e.rdb.LLen(ctx, "in").Val(); n != 1 {
					t.Fatalf("the stopped worker's release left %d uuids on the ingress list, want 1", n)
				}
			}
			if tc == "retry" {
				betweenRuns(t, e, orig, archive, restricted)
				deadline := time.Now().Add(5 * time.Second)
				for e.rdb.LLen(ctx, "in").Val() == 0 {
					if _, err := queue.PromoteDue(ctx, e.rdb, []string{"in"}); err != nil {
						t.Fatal(err)
					}
					if time.Now().After(deadline) {
						t.Fatal("the retry never came due")
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			p, _, _ := e.processor(ch, testOptions(), "w2")
			e.runOnce(t, p, orig)
			if got := checkRedacted(t, e, orig, archive, restricted, h); got != firstID {
				t.Errorf("redacted again to %s, first to %s: storages would keep two copies", got, firstID)
			}
		})
	}
}

// betweenRuns: after a failed or stopped run, the original is in Redis,
// unredacted (with the earlier links' work: the tag), the redacted vCon
// is nowhere but possibly the restricted storage's original, nothing was
// pushed.
func betweenRuns(t *testing.T, e *env, orig, archive, restricted string) {
	t.Helper()
	ctx := context.Background()
	b, err := e.bodies.Get(ctx, orig)
	if err != nil {
		t.Fatalf("the original's body is gone before the outcome: %v", err)
	}
	if !strings.Contains(string(b.Data), cardDigits) || strings.Contains(string(b.Data), `"redacted"`) {
		t.Error("the body kept for the next run is not the unredacted original")
	}
	if keys := e.rdb.Keys(ctx, "vcon:*").Val(); len(keys) != 1 {
		t.Errorf("bodies in Redis %v, want only the original's", keys)
	}
	for _, l := range []string{"out", "routed"} {
		if n := e.rdb.LLen(ctx, l).Val(); n != 0 {
			t.Errorf("%s holds %d uuids before the outcome", l, n)
		}
	}
	if got := stored(t, archive); len(got) != 0 {
		t.Errorf("archive holds %v before the outcome", keysOf(got))
	}
	for id := range stored(t, restricted) {
		if id != orig {
			t.Errorf("restricted storage holds %s", id)
		}
	}
}

// TestRedactEngineDownNoLeak: when the external PII engine cannot be
// asked, the vCon is dead-lettered (its chain has no retries left)
// unredacted in Redis for a replay, and nothing of it reaches a storage,
// egress, the route or the webhook.
func TestRedactEngineDownNoLeak(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	h := newHook(t)
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	ch, archive, restricted := redactChain(t, e, h.srv.URL, map[string]any{"external": map[string]any{"url": downURL, "retries": 0}})
	p, _, _ := e.processor(ch, testOptions(), "w1")
	orig := testUUID(3)
	e.putBody(t, orig, pciCall(orig), time.Hour)
	e.rdb.RPush(ctx, "in", orig)
	e.runOnce(t, p, orig)
	if d := e.list(t, queue.DLQKey("in")); !slices.Equal(d, []string{orig}) {
		t.Fatalf("DLQ %v, want the original", d)
	}
	if r := e.reason(t, orig); r.Step != "link redact" || !strings.Contains(r.Reason, "external PII engine") {
		t.Errorf("reason %q at %q", r.Reason, r.Step)
	}
	betweenRuns(t, e, orig, archive, restricted)
	if got := stored(t, restricted); len(got) != 0 {
		t.Errorf("restricted storage holds %v: the original is stored only once redacted", keysOf(got))
	}
	if n := len(h.seen()); n != 0 {
		t.Errorf("the webhook after the redaction was called %d times", n)
	}
}

// TestBuildOriginalStorages: original_storages must name storages of the
// config that are not the chain's own.
func TestBuildOriginalStorages(t *testing.T) {
	for _, tc := range []struct {
		name      string
		originals []any
		want      string
	}{
		{"undefined", []any{"vault"}, `storage "vault" is not defined under storages:`},
		{"the chain's own", []any{"archive"}, `storage "archive" is also one of the chain's storages`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.Config{
				Links:    map[string]config.Module{"redact": {Module: "links.redact", Options: map[string]any{"original_storages": tc.originals}}},
				Storages: map[string]config.Module{"archive": {Module: "storage.file", Options: map[string]any{"path": t.TempDir()}}},
				Chains: map[string]config.Chain{"main": {Links: []string{"redact"}, Storages: []string{"archive"},
					IngressLists: []string{"in"}, Enabled: true, HasLinksKey: true}},
			}
			_, _, err := Build(context.Background(), cfg, "", links.Deps{HTTP: http.DefaultClient}, storage.Deps{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build: %v, want %q", err, tc.want)
			}
		})
	}
}
