//go:build e2e

// Package e2e runs the whole system (hack/dev/devsys: kube-apiserver, etcd,
// redis-server, PostgreSQL, the operator, the API, Prometheus and the local
// workload runner) under load and faults, and checks that nothing is lost
// or duplicated. Run it with `make e2e` (it builds what it needs).
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/hack/dev/devsys"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

const (
	ns      = "e2e"
	chain   = "e2e"
	ingress = "e2e-ingress"
	egress  = "e2e-egress"

	total     = 5000
	malformed = 250 // accepted by the API, dead-lettered by the validate link
	filtered  = 500 // one party: halted by the only-calls link
	valid     = total - malformed - filtered

	minReplicas = 1
	maxReplicas = 4
)

// The conserver config the test imports. validate fails (a jq runtime
// error) on a subject whose score is not a number: valid for the API, not
// for the chain. The fix is validateFixed.
const (
	validateBroken = `(.subject | ltrimstr("score:") | tonumber) >= 0`
	validateFixed  = `((.subject | ltrimstr("score:") | tonumber?) // 0) >= 0`
)

func conserverConfig(pg *devsys.Postgres) string {
	return fmt.Sprintf(`links:
  validate:
    module: links.jq_link
    options:
      filter: '%s'
      forward_matches: true
  only_calls:
    module: links.jq_link
    options:
      filter: '.parties | length > 1'
      forward_matches: true
  tag:
    module: links.tag
    options:
      tags: [source:e2e]
storages:
  postgres:
    module: storage.postgres
    options:
      host: %s
      port: %d
      database: %s
      user: %s
      password: ${PG_PASSWORD}
      table_name: vcons
chains:
  %s:
    links: [validate, only_calls, tag]
    storages: [postgres]
    ingress_lists: [%s]
    egress_lists: [%s]
    enabled: 1
`, validateBroken, pg.Host, pg.Port, pg.Database, pg.User, chain, ingress, egress)
}

type kind int

const (
	kindValid kind = iota
	kindMalformed
	kindFiltered
)

func TestEndToEnd(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	plugin := filepath.Join(root, "bin", "kubectl-vcon")
	if _, err := os.Stat(plugin); err != nil {
		t.Fatalf("bin/kubectl-vcon not found: run `make build` (make e2e does)")
	}
	state := t.TempDir()
	sys, err := devsys.Start(ctx, devsys.Options{
		Root: root, StateDir: state, Postgres: true, Prometheus: true,
		QueuePollInterval: 500 * time.Millisecond,
		ScrapeInterval:    time.Second,
		// The guide's DLQNotEmpty waits 5m; the test cannot.
		AlertFor: map[string]string{"DLQNotEmpty": "10s"},
		Log:      testWriter{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			sys.Stop()
		}
	}()
	t.Logf("system up in %s", time.Since(start).Round(time.Second))
	c := sys.Client
	redis.SetLogger(quietRedis{})
	rdb := redis.NewClient(&redis.Options{Addr: strings.TrimPrefix(sys.RedisURL, "redis://")})
	defer rdb.Close()

	// 1. Import the conserver config with kubectl vcon, then give the
	// Secret it refers to and size the workers for the test.
	must(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	cfgFile := filepath.Join(state, "conserver.yml")
	must(t, os.WriteFile(cfgFile, []byte(conserverConfig(sys.Postgres)), 0o644))
	kubectlVcon(t, sys, plugin, "import", cfgFile, "--apply")
	must(t, c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "conserver-env", Namespace: ns},
		StringData: map[string]string{"PG_PASSWORD": sys.Postgres.Password},
	}))
	var ch vconv1.Chain
	must(t, c.Get(ctx, types.NamespacedName{Namespace: ns, Name: chain}, &ch))
	patch := client.MergeFrom(ch.DeepCopy())
	ch.Spec.Workers.MinReplicas = minReplicas
	ch.Spec.Workers.MaxReplicas = maxReplicas
	ch.Spec.Workers.TargetQueueDepth = 250
	ch.Spec.Workers.Concurrency = 8
	ch.Spec.Workers.ScaleDownDelay = &metav1.Duration{Duration: 5 * time.Second}
	must(t, c.Patch(ctx, &ch, patch))
	waitFor(t, ctx, "a ready worker", 2*time.Minute, func() (bool, string) {
		d, err := deployment(ctx, c)
		if err != nil {
			return false, err.Error()
		}
		return d.Status.ReadyReplicas >= minReplicas, fmt.Sprintf("status %+v", d.Status)
	})

	// 2. Watch what `kubectl get chains` shows, and the worker count.
	watch := startWatch(ctx, c)

	// 3. Push 5,000 vCons through the API while workers are killed, Redis
	// restarts once and the operator restarts once.
	kinds := map[string]kind{}
	var order []string
	for i := range total {
		k := kindValid
		switch {
		case i%20 == 7:
			k = kindMalformed
		case i%10 == 3:
			k = kindFiltered
		}
		id := uuid.NewString()
		kinds[id] = k
		order = append(order, id)
	}
	counts := map[kind]int{}
	for _, k := range kinds {
		counts[k]++
	}
	if counts[kindMalformed] != malformed || counts[kindFiltered] != filtered {
		t.Fatalf("test data: %d malformed, %d filtered; want %d, %d", counts[kindMalformed], counts[kindFiltered], malformed, filtered)
	}

	chaosCtx, stopChaos := context.WithCancel(ctx)
	var kills atomic.Int64
	chaosDone := make(chan struct{})
	go func() {
		defer close(chaosDone)
		rng := rand.New(rand.NewPCG(1, 2))
		for {
			select {
			case <-chaosCtx.Done():
				return
			case <-time.After(time.Duration(400+rng.IntN(800)) * time.Millisecond):
			}
			ws := sys.Runner.Workers()
			if len(ws) == 0 {
				continue
			}
			w := ws[rng.IntN(len(ws))]
			if syscall.Kill(w.PID, syscall.SIGKILL) == nil {
				kills.Add(1)
				t.Logf("chaos: SIGKILL %s (pid %d)", w.Pod, w.PID)
			}
		}
	}()

	pushStart := time.Now()
	push(t, ctx, sys, kinds, order[:total/2])
	t.Logf("pushed %d vCons in %s; restarting Redis (SHUTDOWN, AOF)", total/2, time.Since(pushStart).Round(time.Millisecond))
	must(t, sys.RestartRedis(ctx))
	push(t, ctx, sys, kinds, order[total/2:])
	t.Logf("pushed %d vCons in %s; restarting the operator", total, time.Since(pushStart).Round(time.Millisecond))
	must(t, sys.RestartOperator(ctx))

	// 4. Wait until every vCon has an outcome: valid ones on egress,
	// malformed ones in the DLQ, nothing queued or in flight.
	waitFor(t, ctx, "every vCon to reach an outcome", 6*time.Minute, func() (bool, string) {
		e, _ := rdb.LLen(ctx, egress).Result()
		d, _ := rdb.LLen(ctx, queue.DLQKey(ingress)).Result()
		in, _ := rdb.LLen(ctx, ingress).Result()
		fl := inFlight(ctx, rdb)
		if in == 0 && fl == 0 && e+d >= valid+malformed {
			stopChaos()
		}
		return in == 0 && fl == 0 && e >= valid && d >= malformed,
			fmt.Sprintf("ingress %d, in-flight %d, egress %d/%d, DLQ %d/%d, kills %d", in, fl, e, valid, d, malformed, kills.Load())
	})
	stopChaos()
	<-chaosDone
	t.Logf("drained %d vCons in %s with %d workers SIGKILLed", total, time.Since(pushStart).Round(time.Second), kills.Load())
	if kills.Load() < 3 {
		t.Errorf("only %d workers were killed: the run was too short to test recovery", kills.Load())
	}

	// 5. Exactly once: PostgreSQL, egress, DLQ.
	want := func(k kind) map[string]bool {
		m := map[string]bool{}
		for id, kk := range kinds {
			if kk == k {
				m[id] = true
			}
		}
		return m
	}
	checkExactlyOnce(t, "PostgreSQL", pgUUIDs(t, ctx, sys.Postgres), want(kindValid))
	checkExactlyOnce(t, "egress", lrange(t, ctx, rdb, egress), want(kindValid))
	dlq := lrange(t, ctx, rdb, queue.DLQKey(ingress))
	checkExactlyOnce(t, "DLQ", dlq, want(kindMalformed))
	reasons, err := queue.Reasons(ctx, rdb, ingress, dlq)
	must(t, err)
	noReason := 0
	for _, id := range dlq {
		r := reasons[id]
		if r.Reason == "" || !strings.Contains(r.Reason+r.Step, "validate") && !strings.Contains(r.Reason, "jq") {
			noReason++
			if noReason < 4 {
				t.Errorf("DLQ %s: reason %+v does not name the failing link", id, r)
			}
		}
	}
	if noReason > 0 {
		t.Errorf("%d of %d dead letters without a reason naming the link", noReason, len(dlq))
	} else {
		r := reasons[dlq[0]]
		t.Logf("dead-letter reason: %q (chain %q, step %q)", r.Reason, r.Chain, r.Step)
	}

	// 6. Scaled up during the burst, back to minReplicas after.
	waitFor(t, ctx, "scale down to minReplicas", 2*time.Minute, func() (bool, string) {
		d, err := deployment(ctx, c)
		if err != nil {
			return false, err.Error()
		}
		return *d.Spec.Replicas == minReplicas && d.Status.Replicas == minReplicas,
			fmt.Sprintf("spec.replicas %d, running %d", *d.Spec.Replicas, d.Status.Replicas)
	})
	if m := watch.maxReplicas(); m <= minReplicas {
		t.Errorf("the operator never scaled up: at most %d replicas during the burst", m)
	} else {
		t.Logf("scaled 1 → %d → 1", m)
	}

	// 7. kubectl get chains showed the queue columns moving, and settles
	// on the outcome.
	watch.check(t)
	waitFor(t, ctx, "the Chain's status to show the outcome", 30*time.Second, func() (bool, string) {
		var ch vconv1.Chain
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: chain}, &ch); err != nil {
			return false, err.Error()
		}
		q := ch.Status.Queue
		return q.Ingress == 0 && q.InFlight == 0 && q.Egress == valid && q.DLQ == malformed,
			fmt.Sprintf("status.queue %+v, want ingress 0, in-flight 0, egress %d, DLQ %d", q, valid, malformed)
	})

	// 8. DLQNotEmpty fired; fix the link, replay, and it resolves.
	waitFor(t, ctx, "DLQNotEmpty firing", 2*time.Minute, func() (bool, string) {
		st := alertState(ctx, sys.PrometheusURL, "DLQNotEmpty")
		return st == "firing", "state " + st
	})
	t.Logf("DLQNotEmpty firing")
	var link vconv1.Link
	must(t, c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "validate"}, &link))
	lp := client.MergeFrom(link.DeepCopy())
	opts := map[string]any{}
	must(t, json.Unmarshal(link.Spec.Options.Raw, &opts))
	opts["filter"] = validateFixed
	raw, _ := json.Marshal(opts)
	link.Spec.Options.Raw = raw
	must(t, c.Patch(ctx, &link, lp))
	// The fix reaches the workers: the config hash changes, the runner
	// restarts them.
	before, _ := deployment(ctx, c)
	waitFor(t, ctx, "workers restarted with the fixed link", 2*time.Minute, func() (bool, string) {
		d, err := deployment(ctx, c)
		if err != nil {
			return false, err.Error()
		}
		rolled := d.Spec.Template.Annotations["vcon.dev/config-hash"] != before.Spec.Template.Annotations["vcon.dev/config-hash"]
		return rolled && d.Status.ObservedGeneration == d.Generation && d.Status.UpdatedReplicas == *d.Spec.Replicas &&
				d.Status.ReadyReplicas == *d.Spec.Replicas && d.Status.Replicas == *d.Spec.Replicas,
			fmt.Sprintf("rolled %v, status %+v", rolled, d.Status)
	})
	// Prometheus follows the runner's processes: the restarted workers are
	// its vcon-worker targets, and they are up.
	waitFor(t, ctx, "Prometheus scraping the running workers", time.Minute, func() (bool, string) {
		up, want := workerTargetsUp(ctx, sys.PrometheusURL), map[string]bool{}
		for _, w := range sys.Runner.Workers() {
			want[w.Pod] = true
		}
		return len(want) > 0 && reflect.DeepEqual(up, want), fmt.Sprintf("targets up %v, workers %v", up, want)
	})
	kubectlVcon(t, sys, plugin, "dlq", "replay", chain, "--redis-url", sys.RedisURL)
	waitFor(t, ctx, "replayed vCons stored", 3*time.Minute, func() (bool, string) {
		d, _ := rdb.LLen(ctx, queue.DLQKey(ingress)).Result()
		e, _ := rdb.LLen(ctx, egress).Result()
		return d == 0 && e >= valid+malformed && inFlight(ctx, rdb) == 0, fmt.Sprintf("DLQ %d, egress %d/%d", d, e, valid+malformed)
	})
	both := want(kindValid)
	for id := range want(kindMalformed) {
		both[id] = true
	}
	checkExactlyOnce(t, "PostgreSQL after replay", pgUUIDs(t, ctx, sys.Postgres), both)
	checkExactlyOnce(t, "egress after replay", lrange(t, ctx, rdb, egress), both)
	waitFor(t, ctx, "DLQNotEmpty resolved", 2*time.Minute, func() (bool, string) {
		st := alertState(ctx, sys.PrometheusURL, "DLQNotEmpty")
		return st == "inactive", "state " + st
	})
	t.Logf("DLQNotEmpty resolved after the fix and the replay")
	// The guide's ServiceDown watches the API as job vcon-server: up, so inactive.
	if st := alertState(ctx, sys.PrometheusURL, "ServiceDown"); st != "inactive" {
		t.Errorf("ServiceDown is %s while the API is up", st)
	}

	// 9. Ctrl-C leaves nothing behind.
	sys.Stop()
	stopped = true
	if left := sys.Leftovers(); len(left) > 0 {
		t.Errorf("processes left after Stop: %v", left)
	}
	if left := processesMentioning(state); len(left) > 0 {
		t.Errorf("processes still mentioning %s after Stop:\n%s", state, strings.Join(left, "\n"))
	}
	t.Logf("total %s", time.Since(start).Round(time.Second))
}

// --- helpers ---

// quietRedis drops go-redis' own log lines (dial failures while Redis
// restarts are expected); failures reach the test through errors.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, ctx context.Context, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	lastLog := time.Now()
	for {
		ok, state := cond()
		if ok {
			return
		}
		if state != last && time.Since(lastLog) > 10*time.Second {
			t.Logf("waiting for %s: %s", what, state)
			lastLog = time.Now()
		}
		last = state
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("timed out after %s waiting for %s: %s", timeout, what, state)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func kubectlVcon(t *testing.T, sys *devsys.System, plugin string, args ...string) {
	t.Helper()
	full := append([]string{"--kubeconfig", sys.KubeconfigPath, "-n", ns}, args...)
	cmd := exec.Command(plugin, full...)
	cmd.Env = append(os.Environ(), "REDIS_URL="+sys.RedisURL)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl vcon %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("kubectl vcon %s:\n%s", strings.Join(args, " "), strings.TrimSpace(string(out)))
}

func deployment(ctx context.Context, c client.Client) (*appsv1.Deployment, error) {
	var d appsv1.Deployment
	err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: chain + "-worker"}, &d)
	return &d, err
}

func vconBody(id string, k kind, i int) []byte {
	score := strconv.Itoa(i % 10)
	parties := []map[string]any{{"tel": "+1555" + fmt.Sprintf("%07d", i)}, {"tel": "+15550000000"}}
	switch k {
	case kindMalformed:
		score = "n/a"
	case kindFiltered:
		parties = parties[:1]
	}
	b, _ := json.Marshal(map[string]any{
		"uuid": id, "vcon": "0.0.1", "created_at": "2024-01-15T10:30:00Z",
		"subject": "score:" + score, "parties": parties,
	})
	return b
}

// push POSTs the vCons from 16 clients; each must be answered 201.
func push(t *testing.T, ctx context.Context, sys *devsys.System, kinds map[string]kind, ids []string) {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	work := make(chan int)
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				id := ids[i]
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, sys.APIURL+"/api/vcon?ingress_lists="+ingress, bytes.NewReader(vconBody(id, kinds[id], i)))
				req.Header.Set("content-type", "application/json")
				req.Header.Set("x-conserver-api-token", sys.APIToken)
				resp, err := client.Do(req)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != http.StatusCreated {
						err = fmt.Errorf("POST /api/vcon %s: status %d", id, resp.StatusCode)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	for i := range ids {
		work <- i
	}
	close(work)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d POSTs failed, first: %v", n, len(ids), firstErr.Load())
	}
}

func inFlight(ctx context.Context, rdb *redis.Client) int64 {
	keys, _ := rdb.Keys(ctx, queue.InFlightPrefix(ingress)+"*").Result()
	var n int64
	for _, k := range keys {
		l, _ := rdb.LLen(ctx, k).Result()
		n += l
	}
	return n
}

func lrange(t *testing.T, ctx context.Context, rdb *redis.Client, key string) []string {
	t.Helper()
	v, err := rdb.LRange(ctx, key, 0, -1).Result()
	must(t, err)
	return v
}

func pgUUIDs(t *testing.T, ctx context.Context, pg *devsys.Postgres) []string {
	t.Helper()
	conn, err := pgx.Connect(ctx, pg.DSN())
	must(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT uuid::text FROM vcons`)
	must(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	must(t, err)
	return ids
}

// checkExactlyOnce: got holds every wanted id once and nothing else.
func checkExactlyOnce(t *testing.T, where string, got []string, want map[string]bool) {
	t.Helper()
	seen := map[string]int{}
	for _, id := range got {
		seen[id]++
	}
	var dup, extra, missing []string
	for id, n := range seen {
		switch {
		case !want[id]:
			extra = append(extra, id)
		case n > 1:
			dup = append(dup, id)
		}
	}
	for id := range want {
		if seen[id] == 0 {
			missing = append(missing, id)
		}
	}
	if len(dup)+len(extra)+len(missing) > 0 {
		t.Errorf("%s: %d entries for %d wanted: %d missing %v, %d duplicated %v, %d unexpected %v",
			where, len(got), len(want), len(missing), head(missing), len(dup), head(dup), len(extra), head(extra))
		return
	}
	t.Logf("%s: each of %d vCons exactly once", where, len(want))
}

func head(s []string) []string {
	sort.Strings(s)
	if len(s) > 3 {
		return s[:3]
	}
	return s
}

// alertState is the state of an alert in Prometheus: firing, pending or
// inactive (or an error text).
func alertState(ctx context.Context, promURL, name string) string {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, promURL+"/api/v1/alerts", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return err.Error()
	}
	state := "inactive"
	for _, a := range body.Data.Alerts {
		if a.Labels["alertname"] != name {
			continue
		}
		if a.State == "firing" {
			return "firing"
		}
		state = a.State
	}
	return state
}

// workerTargetsUp is the pod label of every vcon-worker target of chain
// e2e that Prometheus scraped successfully last time.
func workerTargetsUp(ctx context.Context, promURL string) map[string]bool {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, promURL+"/api/v1/targets?state=active", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			ActiveTargets []struct {
				Labels map[string]string `json:"labels"`
				Health string            `json:"health"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if json.NewDecoder(resp.Body).Decode(&body) != nil {
		return nil
	}
	up := map[string]bool{}
	for _, tg := range body.Data.ActiveTargets {
		l := tg.Labels
		if l["job"] == "vcon-worker" && l["chain"] == chain && l["namespace"] == ns && tg.Health == "up" {
			up[l["pod"]] = true
		}
	}
	return up
}

// watch samples the Chain's status (what `kubectl get chains` prints) and
// the Deployment's replicas.
type watch struct {
	mu      sync.Mutex
	rows    []vconv1.QueueStatus
	maxRepl int32
}

func startWatch(ctx context.Context, c client.Client) *watch {
	w := &watch{}
	go func() {
		for ctx.Err() == nil {
			var ch vconv1.Chain
			if c.Get(ctx, types.NamespacedName{Namespace: ns, Name: chain}, &ch) == nil {
				w.mu.Lock()
				if n := len(w.rows); n == 0 || w.rows[n-1].ObservedAt == nil || ch.Status.Queue.ObservedAt == nil || !w.rows[n-1].ObservedAt.Equal(ch.Status.Queue.ObservedAt) {
					w.rows = append(w.rows, ch.Status.Queue)
				}
				w.mu.Unlock()
			}
			if d, err := deployment(ctx, c); err == nil && d.Spec.Replicas != nil {
				w.mu.Lock()
				w.maxRepl = max(w.maxRepl, *d.Spec.Replicas)
				w.mu.Unlock()
			}
			time.Sleep(250 * time.Millisecond)
		}
	}()
	return w
}

func (w *watch) maxReplicas() int32 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.maxRepl
}

// check: the INGRESS, IN-FLIGHT, DLQ and EGRESS columns took many values
// while the vCons went through.
func (w *watch) check(t *testing.T) {
	w.mu.Lock()
	defer w.mu.Unlock()
	distinct := func(f func(vconv1.QueueStatus) int64) int {
		m := map[int64]bool{}
		for _, r := range w.rows {
			m[f(r)] = true
		}
		return len(m)
	}
	in := distinct(func(q vconv1.QueueStatus) int64 { return q.Ingress })
	fl := distinct(func(q vconv1.QueueStatus) int64 { return q.InFlight })
	dl := distinct(func(q vconv1.QueueStatus) int64 { return q.DLQ })
	eg := distinct(func(q vconv1.QueueStatus) int64 { return q.Egress })
	t.Logf("kubectl get chains: %d status samples; distinct values: ingress %d, in-flight %d, DLQ %d, egress %d", len(w.rows), in, fl, dl, eg)
	for i, r := range w.rows {
		if i%max(1, len(w.rows)/8) == 0 {
			t.Logf("  INGRESS %5d  IN-FLIGHT %3d  DLQ %4d  EGRESS %5d", r.Ingress, r.InFlight, r.DLQ, r.Egress)
		}
	}
	if in < 3 || fl < 2 || dl < 3 || eg < 3 {
		t.Errorf("the queue columns did not move: distinct ingress %d, in-flight %d, DLQ %d, egress %d", in, fl, dl, eg)
	}
}

// processesMentioning lists processes whose command line contains s.
func processesMentioning(s string) []string {
	var out []string
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil || !bytes.Contains(b, []byte(s)) {
			continue
		}
		if st, err := os.ReadFile(filepath.Join(d, "stat")); err == nil && strings.Contains(string(st), ") Z") {
			continue
		}
		out = append(out, filepath.Base(d)+": "+strings.ReplaceAll(string(b), "\x00", " "))
	}
	return out
}
