package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// crashScenario queues n vCons, SIGKILLs the worker kills times mid-run
// (each restart is a new process with a new worker id, as a new pod would
// be), lets a last worker finish, and checks that nothing was lost: the
// ingress list, every in-flight list and the DLQ are empty, and the egress
// list holds every uuid at least once. storedCount says how many distinct
// vCons the chain's storage holds.
type crashScenario struct {
	redisURL    string
	rdb         redis.UniversalClient
	config      string
	n           int
	kills       int
	storedCount func(t *testing.T) int
}

func (s crashScenario) run(t *testing.T) {
	ctx := context.Background()
	const in, out = "crash-in", "crash-out"
	uuids := enqueue(t, s.rdb, in, s.n, 2000)
	cfg := writeConfig(t, s.config)
	args := func(id string) []string {
		return []string{"--worker-id", id, "--heartbeat-ttl", "2s", "--concurrency", "8", "--grace-period", "5s"}
	}
	overall := time.Now().Add(6 * time.Minute)
	egressLen := func() int64 { return s.rdb.LLen(ctx, out).Val() }

	var caughtInFlight int64
	for k := range s.kills {
		id := "crash-" + strconv.Itoa(k)
		w := startWorker(t, cfg, s.redisURL, args(id)...)
		w.waitReady(60 * time.Second)
		before := egressLen()
		// Kill once the worker is into the run: some progress made, or
		// 1.5s of it. The worker may drain hundreds of vCons between
		// Ready and the kill, so the bar is low and n is large enough
		// that every kill lands before the ingress list is empty.
		started := time.Now()
		for egressLen()-before < int64(max(1, s.n/100)) && time.Since(started) < 1500*time.Millisecond {
			select {
			case <-w.exited:
				t.Fatalf("worker %d exited on its own: %v\n%s", k, w.err, w.logTail())
			default:
			}
			if time.Now().After(overall) {
				t.Fatalf("no progress: egress %d of %d after kill %d\n%s", egressLen(), s.n, k, w.logTail())
			}
			time.Sleep(20 * time.Millisecond)
		}
		w.kill()
		// Read before any reaper can have moved them (heartbeat TTL 2s).
		inFlight := s.rdb.LLen(ctx, queue.InFlightKey(in, id)).Val()
		caughtInFlight += inFlight
		t.Logf("kill %d: SIGKILL after %s, egress %d -> %d, %d vCons in flight", k+1, time.Since(started).Round(time.Millisecond), before, egressLen(), inFlight)
	}
	if caughtInFlight == 0 {
		t.Fatal("no kill caught a vCon in flight: the scenario tested nothing")
	}
	if done := int64(len(distinct(s.rdb.LRange(ctx, out, 0, -1).Val()))); done >= int64(s.n) {
		t.Fatalf("the run finished before the last kill (%d of %d done): the kills were not mid-run", done, s.n)
	}

	last := startWorker(t, cfg, s.redisURL, args("crash-final")...)
	var d queue.Depths
	for {
		depths, err := queue.ReapAndMeasure(ctx, s.rdb, []queue.Target{{Ingress: []string{in}, Egress: []string{out}}})
		if err == nil {
			d = depths[0]
			if d.Ingress == 0 && d.InFlight == 0 && strayInFlight(t, s.rdb) == 0 {
				break
			}
		}
		if time.Now().After(overall) {
			t.Fatalf("not finished in time: ingress %d, in flight %d (stray %d), DLQ %d, egress %d of %d, err %v\n%s",
				d.Ingress, d.InFlight, strayInFlight(t, s.rdb), d.DLQ, d.Egress, s.n, err, last.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := last.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-last.exited:
	case <-time.After(60 * time.Second):
		t.Fatal("last worker did not stop within 60s of SIGTERM")
	}
	if last.err != nil {
		t.Errorf("last worker exit: %v, want 0\n%s", last.err, last.logTail())
	}

	egress := s.rdb.LRange(ctx, out, 0, -1).Val()
	seen := distinct(egress)
	var missing []string
	for _, u := range uuids {
		if !seen[u] {
			missing = append(missing, u)
		}
	}
	dlq := s.rdb.LRange(ctx, queue.DLQKey(in), 0, -1).Val()
	if len(dlq) > 0 {
		reasons, _ := queue.Reasons(ctx, s.rdb, in, dlq)
		t.Errorf("%d vCons dead-lettered, e.g. %+v", len(dlq), reasons[dlq[0]])
	}
	if len(missing) > 0 {
		t.Errorf("%d of %d vCons never reached egress (e.g. %s)", len(missing), s.n, missing[0])
	}
	stored := s.storedCount(t)
	if stored != s.n {
		t.Errorf("storage holds %d distinct vCons, want %d", stored, s.n)
	}
	t.Logf("%d vCons, %d kills: egress %d entries (%d redeliveries), stored %d, DLQ %d",
		s.n, s.kills, len(egress), len(egress)-len(seen), stored, len(dlq))

	// Spot-check that the bodies went through the chain.
	for _, u := range []string{uuids[0], uuids[s.n/2], uuids[s.n-1]} {
		b, err := vconstore.New(s.rdb, vconstore.Options{}).Get(ctx, u)
		if err != nil {
			t.Fatalf("body %s: %v", u, err)
		}
		v, err := vcon.Parse(b.Data)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := vcon.Tag(v, "crashed"); !ok {
			t.Errorf("body %s lacks the chain's tag", u)
		}
	}
}

func distinct(items []string) map[string]bool {
	m := make(map[string]bool, len(items))
	for _, u := range items {
		m[u] = true
	}
	return m
}

// strayInFlight counts items in in-flight lists, registered or not: an
// item in the list of a worker that no workers set names would escape
// both reapers and Measure.
func strayInFlight(t *testing.T, rdb redis.UniversalClient) int64 {
	ctx := context.Background()
	count := func(ctx context.Context, c *redis.Client) (int64, error) {
		var total int64
		iter := c.Scan(ctx, 0, "vcon-operator:inflight:*", 1000).Iterator()
		for iter.Next(ctx) {
			total += c.LLen(ctx, iter.Val()).Val()
		}
		return total, iter.Err()
	}
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		var total int64
		var mu = make(chan struct{}, 1)
		err := c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			n, err := count(ctx, m)
			mu <- struct{}{}
			total += n
			<-mu
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return total
	case *redis.Client:
		n, err := count(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	t.Fatalf("unsupported client %T", rdb)
	return 0
}

const crashLinks = `
links:
  tagger: {module: links.tag, options: {tags: [crashed]}}
`

// TestCrashPostgres: 2,000 vCons, the worker SIGKILLed five times mid-run;
// every vCon ends in PostgreSQL exactly once (the upsert absorbs
// redeliveries) and in egress, and nothing is left queued or in flight.
func TestCrashPostgres(t *testing.T) {
	rdb := testenv.StartRedis(t)
	pg := testenv.StartPostgres(t)
	t.Setenv("CRASH_PG_PASSWORD", pg.Password)
	s := crashScenario{
		redisURL: rdb.URL(),
		rdb:      rdb.Client(),
		n:        2000,
		kills:    5,
		config: crashLinks + fmt.Sprintf(`
storages:
  pg:
    module: storage.postgres
    options: {host: %s, port: "%d", user: %s, password: "${CRASH_PG_PASSWORD}", database: %s}
chains:
  main: {links: [tagger], storages: [pg], ingress_lists: [crash-in], egress_lists: [crash-out]}
`, pg.Host, pg.Port, pg.User, pg.Database),
		storedCount: func(t *testing.T) int {
			var rows, ids int
			err := pg.Conn().QueryRow(context.Background(), `SELECT count(*), count(DISTINCT id) FROM vcons`).Scan(&rows, &ids)
			if err != nil {
				t.Fatalf("count rows: %v", err)
			}
			if rows != ids {
				t.Errorf("%d rows for %d uuids: a redelivery created a duplicate row", rows, ids)
			}
			return ids
		},
	}
	s.run(t)
}

// TestCrashRedisCluster runs the crash scenario on a three-node Redis
// Cluster: every atomic move stays in the ingress list's slot, and the
// cross-slot writes land before the in-flight removal.
func TestCrashRedisCluster(t *testing.T) {
	cluster := testenv.StartRedisCluster(t, 3)
	rdb := cluster.Client()
	const n = 2000
	s := crashScenario{
		redisURL: cluster.URL(),
		rdb:      rdb,
		n:        n,
		kills:    4,
		config: crashLinks + `
storages:
  copy: {module: storage.redis_storage, options: {prefix: crashcopy}}
chains:
  main: {links: [tagger], storages: [copy], ingress_lists: [crash-in], egress_lists: [crash-out]}
`,
		storedCount: func(t *testing.T) int {
			ctx := context.Background()
			pipe := rdb.Pipeline()
			cmds := make([]*redis.IntCmd, n)
			for i := range n {
				cmds[i] = pipe.Exists(ctx, "crashcopy:"+testUUID(i))
			}
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
			stored := 0
			for _, c := range cmds {
				stored += int(c.Val())
			}
			return stored
		},
	}
	s.run(t)
}

// TestCrashBetweenRouteAndOutcome SIGKILLs the worker after links.tag_router
// has routed its vCons and while a later link holds them, before their
// outcome, on one server and on a cluster. The routed list is empty at the
// kill (routes go with the outcome), and after a second worker has the
// redelivered vCons done it holds each uuid exactly once, as egress does.
func TestCrashBetweenRouteAndOutcome(t *testing.T) {
	servers := map[string]func(t *testing.T) (url string, rdb redis.UniversalClient){
		"single": func(t *testing.T) (string, redis.UniversalClient) {
			srv := testenv.StartRedis(t)
			return srv.URL(), srv.Client()
		},
		"cluster": func(t *testing.T) (string, redis.UniversalClient) {
			c := testenv.StartRedisCluster(t, 3)
			return c.URL(), c.Client()
		},
	}
	for name, start := range servers {
		t.Run(name, func(t *testing.T) {
			url, rdb := start(t)
			crashBetweenRouteAndOutcome(t, url, rdb)
		})
	}
}

func crashBetweenRouteAndOutcome(t *testing.T, redisURL string, rdb redis.UniversalClient) {
	ctx := context.Background()
	const n = 5

	// The webhook holds every call while hold is set, until the killed
	// worker's connection goes; then it answers 200.
	var hold atomic.Bool
	hold.Store(true)
	var held atomic.Int64
	release := make(chan struct{})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if hold.Load() {
			held.Add(1)
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(hook.Close)
	t.Cleanup(func() { close(release) })

	cfg := writeConfig(t, fmt.Sprintf(`
links:
  urgent: {module: links.tag, options: {tags: [urgent]}}
  router: {module: links.tag_router, options: {tag_routes: {urgent: routed}}}
  notify: {module: links.webhook, options: {webhook-urls: [%q], retries: 0}}
chains:
  main: {links: [urgent, router, notify], ingress_lists: [in], egress_lists: [out]}
`, hook.URL))
	uuids := enqueue(t, rdb, "in", n, 2000)
	args := func(id string) []string {
		return []string{"--worker-id", id, "--heartbeat-ttl", "2s", "--concurrency", "8"}
	}

	first := startWorker(t, cfg, redisURL, args("first")...)
	first.waitReady(60 * time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for held.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d vCons reached the webhook\n%s", held.Load(), n, first.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := rdb.LRange(ctx, "routed", 0, -1).Val(); len(got) != 0 {
		t.Errorf("routed list holds %d uuids before any outcome, want none", len(got))
	}
	first.kill()
	if got := rdb.LLen(ctx, queue.InFlightKey("in", "first")).Val(); got != n {
		t.Fatalf("%d vCons in flight at the kill, want %d: the kill was not between the link and the outcome", got, n)
	}

	hold.Store(false)
	second := startWorker(t, cfg, redisURL, args("second")...)
	deadline = time.Now().Add(60 * time.Second)
	for rdb.LLen(ctx, "out").Val() < n {
		if time.Now().After(deadline) {
			t.Fatalf("egress %d of %d after the redelivery\n%s", rdb.LLen(ctx, "out").Val(), n, second.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, list := range []string{"routed", "out"} {
		got := rdb.LRange(ctx, list, 0, -1).Val()
		slices.Sort(got)
		if !slices.Equal(got, uuids) {
			t.Errorf("%s holds %q, want each of the %d uuids once", list, got, n)
		}
	}
	if got := rdb.LLen(ctx, queue.DLQKey("in")).Val(); got != 0 {
		t.Errorf("%d vCons dead-lettered", got)
	}
}
