//go:build e2e

// Package e2e runs the whole system on this machine's real single-node
// Kubernetes (internal/devsys: real pods on a real kubelet, the chart
// installed with helm, the Prometheus Operator scraping its monitors) under
// load and faults, and checks that nothing is lost or duplicated. Run it
// with `make e2e` (root, Linux; it builds what it needs).
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/devsys"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
	"github.com/vcon-operator/vcon-operator/internal/workload"
)

const (
	ns      = "e2e"
	chain   = "e2e"
	ingress = "e2e-ingress"
	egress  = "e2e-egress"

	total     = 5000
	malformed = 250 // accepted by the API, dead-lettered by the validate link
	filtered  = 500 // one party: halted by the only-calls link
	// A poison pill: a valid vCon whose subject makes the explode link
	// take more memory than the worker's limit, so the kernel OOM-kills
	// every worker that runs it. Queued among the first, it must be
	// dead-lettered (redelivery_limit) after at most maxDeliveries deaths.
	poisonPills = 1
	poisonAt    = 11 // its index in the load
	valid       = total - malformed - filtered - poisonPills

	// The worker's memory limit: a normal worker peaks under 80 MiB
	// (docs/benchmarks.md: 79 MiB at concurrency 32 on 5 KB vCons; these
	// are smaller and run 8 at a time), the poison pill's list of 10^8
	// numbers needs gigabytes.
	workerMemoryLimit = "128Mi"
	maxDeliveries     = 3

	// The vendor outage: the webhook receiver answers 503 for outageFor
	// from the start of the load. The Chain's retry policy outlasts it:
	// waits of 5 s doubling to at most 20 s (±20 %) add up to 124 s or
	// more before the tenth and last attempt, twice the outage.
	outageFor      = 60 * time.Second
	retryAttempts  = 10
	retryInitial   = 5 * time.Second
	retryMaxWait   = 20 * time.Second
	retryJitterPct = 20

	// The second, fault-free load: scale 0 → N → 0 with every removed pod
	// given its grace period. The receiver answers each delivery after
	// cleanDelay, so every pod holds vCons (4 pods × 8 at a time, about
	// 64 a second) when maxReplicas is cut to cleanCut mid-load: the
	// autoscaler never removes pods its in-flight count says are busy, but
	// a lower maxReplicas does, and the Deployment picks which pods go.
	cleanLoad  = 1200
	cleanDelay = 500 * time.Millisecond
	cleanCut   = 2

	maxReplicas = 4

	// A Chain on the guide's list "default", disabled: its backlog is
	// held, for HighQueueDepth (redis_list_length{list="default"} > 1000).
	backlogChain = "backlog"
	backlog      = 1100
)

// The conserver config the test imports. explode runs first (before
// validate would dead-letter the poison pill's subject) and builds a list
// of 10^8 numbers for the poison pill only, as cmd/conserver's poison test
// does. validate fails (a jq runtime error) on a subject whose score is
// not a number: valid for the API, not for the chain. The fix is
// validateFixed. notify posts every vCon to the test's receiver, which
// counts deliveries per uuid: a vCon processed twice (redelivered) is
// delivered twice. notify does not retry a 503 itself (retries: 0): the
// Chain's delayed retries wait out the outage without holding a worker.
// validate and notify say strict: true, so that the jq error dead-letters
// and the 503 fails the link (conserver's way, which the import keeps
// for links that do not say, filters out and goes on).
const (
	explodeFilter  = `if .subject == "poison" then ([range(0; 100000000)] | length > 0) else true end`
	validateBroken = `(.subject | ltrimstr("score:") | tonumber) >= 0`
	validateFixed  = `((.subject | ltrimstr("score:") | tonumber?) // 0) >= 0`
)

func conserverConfig(pg *devsys.Postgres, webhook string) string {
	return fmt.Sprintf(`links:
  explode:
    module: links.jq_link
    options:
      filter: '%s'
      forward_matches: true
  validate:
    module: links.jq_link
    options:
      filter: '%s'
      forward_matches: true
      strict: true
  only_calls:
    module: links.jq_link
    options:
      filter: '.parties | length > 1'
      forward_matches: true
  tag:
    module: links.tag
    options:
      tags: [source:e2e]
  notify:
    module: links.webhook
    options:
      webhook-urls: [%s]
      retries: 0
      strict: true
storages:
  postgres:
    module: storage.postgres
    options:
      host: postgres.%s.svc.cluster.local
      port: %d
      database: %s
      user: %s
      password: ${PG_PASSWORD}
      table_name: vcons
chains:
  %s:
    links: [explode, validate, only_calls, tag, notify]
    storages: [postgres]
    ingress_lists: [%s]
    egress_lists: [%s]
    enabled: 1
`, explodeFilter, validateBroken, webhook, devsys.DatabaseNamespace, pg.Port, pg.Database, pg.User, chain, ingress, egress)
}

type kind int

const (
	kindValid kind = iota
	kindMalformed
	kindFiltered
	kindPoison
)

func TestEndToEnd(t *testing.T) {
	start := time.Now()
	// Bringing the system up may first wait for the machine's one cluster
	// (another make dev or e2e holding its lock): that wait has its own
	// budget, the test's starts once the system is up.
	upCtx, upCancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer upCancel()
	root, err := testenv.RepoRoot()
	must(t, err)
	plugin := filepath.Join(root, "bin", "kubectl-vcon")
	if _, err := os.Stat(plugin); err != nil {
		t.Fatalf("bin/kubectl-vcon not found: run `make build` (make e2e does)")
	}
	state := t.TempDir()
	sys, err := devsys.Start(upCtx, devsys.Options{
		Root: root, StateDir: state, Postgres: true, Prometheus: true,
		QueuePollInterval: 500 * time.Millisecond,
		ScrapeInterval:    time.Second,
		// The guide's alerts wait minutes; the chart's alertFor lets a test
		// (or an impatient operator) shorten them without rewriting them.
		AlertFor: map[string]string{"DLQNotEmpty": "10s", "ServiceDown": "10s", "HighQueueDepth": "10s"},
		Log:      testWriter{t},
	})
	must(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 14*time.Minute)
	defer cancel()
	stopped := false
	defer func() {
		if !stopped {
			sys.Stop()
		}
	}()
	t.Logf("system up in %s: helm release %s/%s, image %s", time.Since(start).Round(time.Second), devsys.ReleaseNamespace, devsys.ReleaseName, sys.Image)
	c := sys.Client
	redis.SetLogger(quietRedis{})
	rdb := redis.NewClient(&redis.Options{Addr: strings.TrimPrefix(sys.RedisURL, "redis://")})
	defer rdb.Close()
	sink, err := sys.StartWebhookSink()
	must(t, err)
	defer sink.Close()

	// The operator runs as the chart's ServiceAccount, never as an admin.
	checkOperatorIdentity(t, ctx, sys)

	// 1. Import the conserver config with kubectl vcon, give the Secret
	// it refers to, size the workers for the test (a memory limit the
	// poison pill exceeds) and give the Chain a retry policy for the
	// outage (the import keeps conserver's dead-letter-at-once).
	must(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	cfgFile := filepath.Join(state, "conserver.yml")
	must(t, os.WriteFile(cfgFile, []byte(conserverConfig(sys.Postgres, sink.URL)), 0o644))
	kubectlVcon(t, sys, plugin, "import", cfgFile, "--apply")
	must(t, c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "conserver-env", Namespace: ns},
		StringData: map[string]string{"PG_PASSWORD": sys.Postgres.Password},
	}))
	patchChain(t, ctx, sys, func(spec *vconv1.ChainSpec) {
		w := &spec.Workers
		w.MinReplicas, w.MaxReplicas, w.TargetQueueDepth, w.Concurrency = 0, maxReplicas, 250, 8
		w.ScaleDownDelay = &metav1.Duration{Duration: 5 * time.Second}
		w.MaxDeliveries = ptr.To[int32](maxDeliveries)
		w.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(workerMemoryLimit)}
		spec.Retry = vconv1.RetryPolicy{
			Attempts:       ptr.To[int32](retryAttempts),
			InitialBackoff: &metav1.Duration{Duration: retryInitial},
			MaxBackoff:     &metav1.Duration{Duration: retryMaxWait},
			JitterPercent:  ptr.To[int32](retryJitterPct),
		}
	})
	waitFor(t, ctx, "the Chain Ready at 0 workers", 2*time.Minute, func() (bool, string) {
		var ch vconv1.Chain
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: chain}, &ch); err != nil {
			return false, err.Error()
		}
		d, err := workerDeployment(ctx, sys)
		if err != nil {
			return false, err.Error()
		}
		return chainReady(&ch) && d.Spec.Replicas != nil && *d.Spec.Replicas == 0, fmt.Sprintf("conditions %v", ch.Status.Conditions)
	})

	// 2. Watch what `kubectl get chains` shows, the worker count, and the
	// worker containers the kernel OOM-kills.
	watch := startWatch(ctx, sys)
	ooms := startOOMWatch(ctx, sys)

	// 3. Push 5,000 vCons through the API's Service while worker pods are
	// force-deleted, one worker container is killed at the runtime, Redis
	// restarts once and the operator's pod is deleted once; meanwhile the
	// webhook receiver is down for a minute (503) and one of the vCons is
	// a poison pill.
	//
	// The outage and the poison pill share the chaos phase instead of
	// having phases of their own: each needs about a minute that no load
	// shortens (the outage by definition; the poison pill a heartbeat TTL,
	// 15 s, before each of its three deaths is noticed), while the chaos
	// alone drains in about 15 s: together they add about 70 s, on their
	// own two or three minutes. It is sound: the chaos phase checks outcomes
	// (PostgreSQL, egress and DLQ exactly once), which neither may change,
	// and vCons waiting for a retry must outlive the Redis restart (AOF)
	// and the operator's replacement (the operator promotes due retries
	// too). Not the clean phase: it checks that the receiver got each vCon
	// once, which a poison pill's death rightly breaks for the vCons in
	// flight beside it (at least once), and it needs busy workers for its
	// scale-down, which an outage would leave idle. The chaos spares the
	// pod whose worker holds the poison pill, so that each of its deaths
	// is the kernel's OOM kill, and the kubelet reports it before the pod
	// can go.
	kinds, order, poison := testVcons(t)
	outage := startOutage(t, sink, outageFor)
	chaos := startChaos(t, ctx, sys, rdb, poison)
	pushStart := time.Now()
	push(t, ctx, sys, kinds, order[:total/2])
	t.Logf("pushed %d vCons in %s; restarting Redis (SHUTDOWN, AOF)", total/2, time.Since(pushStart).Round(time.Millisecond))
	must(t, sys.RestartRedis(ctx))
	push(t, ctx, sys, kinds, order[total/2:])
	t.Logf("pushed %d vCons in %s; deleting the operator's pod", total, time.Since(pushStart).Round(time.Millisecond))
	must(t, sys.RestartOperator(ctx))
	t.Logf("operator pod replaced and Ready")

	// 4. Wait until every vCon has an outcome: valid ones on egress,
	// malformed ones and the poison pill in the DLQ, nothing queued,
	// waiting for a retry or in flight, and the outage over. The retry
	// set's size is sampled from Redis too while the outage lasts, and the
	// poison pill's count of deliveries without an outcome logged.
	var retrySetMax int64
	poisonDeaths, poisonDead := 0, false
	waitFor(t, ctx, "every vCon to reach an outcome", 6*time.Minute, func() (bool, string) {
		if n := deliveriesOf(ctx, rdb, poison); n > poisonDeaths {
			poisonDeaths = n
			t.Logf("poison pill: %d deliveries ended without an outcome (reaped %s after the load began)", n, time.Since(pushStart).Round(time.Second))
		}
		if _, err := rdb.LPos(ctx, queue.DLQKey(ingress), poison, redis.LPosArgs{}).Result(); err == nil && !poisonDead {
			poisonDead = true
			t.Logf("poison pill: dead-lettered %s after the load began", time.Since(pushStart).Round(time.Second))
		}
		e, _ := rdb.LLen(ctx, egress).Result()
		d, _ := rdb.LLen(ctx, queue.DLQKey(ingress)).Result()
		in, _ := rdb.LLen(ctx, ingress).Result()
		r, _ := rdb.ZCard(ctx, queue.RetryKey(ingress)).Result()
		fl := inFlight(ctx, rdb)
		if outage.active() {
			retrySetMax = max(retrySetMax, r)
		}
		// Every outcome counted and nothing left anywhere: the checks
		// below say what went where.
		done := !outage.active() && in == 0 && fl == 0 && r == 0 && e+d >= valid+malformed+poisonPills
		return done, fmt.Sprintf("ingress %d, in-flight %d, retry %d, egress %d/%d, DLQ %d/%d, %s, %s",
			in, fl, r, e, valid, d, malformed+poisonPills, outage, chaos)
	})
	chaos.stop()
	t.Logf("drained %d vCons in %s; %s; %s", total, time.Since(pushStart).Round(time.Second), outage, chaos)
	chaos.check(t)

	// 5. Exactly once: PostgreSQL, egress, DLQ (the malformed ones and the
	// poison pill, nothing the outage failed); the poison pill's deaths
	// were the kernel's OOM kills, no more than maxDeliveries; retries
	// were scheduled during the outage.
	want := func(ks ...kind) map[string]bool {
		m := map[string]bool{}
		for id, kk := range kinds {
			if slices.Contains(ks, kk) {
				m[id] = true
			}
		}
		return m
	}
	checkExactlyOnce(t, "PostgreSQL", pgUUIDs(t, ctx, sys.Postgres), want(kindValid))
	checkExactlyOnce(t, "egress", lrange(t, ctx, rdb, egress), want(kindValid))
	dlq := lrange(t, ctx, rdb, queue.DLQKey(ingress))
	checkExactlyOnce(t, "DLQ", dlq, want(kindMalformed, kindPoison))
	checkReasons(t, ctx, rdb, dlq, kinds)
	poisonKills := checkPoisonKills(t, ooms, chaos)
	outage.check(t, watch, retrySetMax)

	// 6. Back to 0 workers once idle; it had scaled up during the burst.
	waitForReplicas(t, ctx, sys, 0)
	if m := watch.maxReplicas(); m <= 1 {
		t.Errorf("the operator never scaled up: at most %d replicas during the burst", m)
	} else {
		t.Logf("scaled 0 → %d → 0 under faults", m)
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
		return q.Ingress == 0 && q.InFlight == 0 && q.Retry == 0 && q.Egress == valid && q.DLQ == malformed+poisonPills,
			fmt.Sprintf("status.queue %+v, want ingress 0, in-flight 0, retry 0, egress %d, DLQ %d", q, valid, malformed+poisonPills)
	})

	// 8. A fault-free load: 0 → N → 0 again, and every pod the scale-down
	// removes finishes its vCons within its grace period, so none is
	// delivered twice (the receiver counts deliveries per uuid).
	cleanPhase(t, ctx, sys, rdb, sink, watch)

	// 9. Prometheus, through the chart's monitors: every target up, the
	// guide's queries answer, DLQNotEmpty fires; fix the link, replay, and
	// it resolves.
	prom := promClient{url: sys.PrometheusURL}
	checkTargets(t, ctx, sys, prom)
	checkGuideQueries(t, ctx, prom)
	checkRetryMetrics(t, ctx, prom)
	waitFor(t, ctx, "DLQNotEmpty firing", 2*time.Minute, func() (bool, string) {
		st := prom.alertState(ctx, "DLQNotEmpty")
		return st == "firing", "state " + st
	})
	t.Logf("DLQNotEmpty firing")
	fixValidate(t, ctx, sys)
	// A replay starts a vCon's delivery count over: the poison pill would
	// kill three more workers before it is dead-lettered again. It is set
	// aside first, as an operator reading `kubectl vcon dlq list` would,
	// and the malformed ones, which the fixed link now takes, replayed.
	setAside(t, ctx, sys, plugin, rdb, poison)
	kubectlVcon(t, sys, plugin, "dlq", "replay", chain, "--redis-url", sys.RedisURL)
	waitFor(t, ctx, "replayed vCons stored", 3*time.Minute, func() (bool, string) {
		d, _ := rdb.LLen(ctx, queue.DLQKey(ingress)).Result()
		e, _ := rdb.LLen(ctx, egress).Result()
		msg := fmt.Sprintf("DLQ %d, egress %d/%d", d, e, valid+malformed+cleanLoad)
		if d > 0 {
			// Say why a replayed vCon came back: a stale worker or a
			// real failure.
			last, _ := rdb.LIndex(ctx, queue.DLQKey(ingress), 0).Result()
			if r, err := queue.Reasons(ctx, rdb, ingress, []string{last}); err == nil {
				msg += fmt.Sprintf(", newest dead letter %s at %s: %s", r[last].Step, r[last].At.Format(time.RFC3339Nano), r[last].Reason)
			}
		}
		return d == 0 && e >= valid+malformed+cleanLoad && inFlight(ctx, rdb) == 0, msg
	})
	waitFor(t, ctx, "DLQNotEmpty resolved", 2*time.Minute, func() (bool, string) {
		st := prom.alertState(ctx, "DLQNotEmpty")
		return st == "inactive", "state " + st
	})
	t.Logf("DLQNotEmpty resolved after the fix and kubectl vcon dlq replay")

	// 10. ServiceDown: the API scaled to 0 is down for the guide's
	// up{job="vcon-server"} == 0, and resolves when it is back.
	if st := prom.alertState(ctx, "ServiceDown"); st != "inactive" {
		t.Errorf("ServiceDown is %s while the API is up", st)
	}
	must(t, sys.ScaleAPI(ctx, 0))
	waitFor(t, ctx, "ServiceDown firing with the API at 0 replicas", 2*time.Minute, func() (bool, string) {
		st := prom.alertState(ctx, "ServiceDown")
		return st == "firing", "state " + st
	})
	t.Logf("ServiceDown firing with the API scaled to 0")
	must(t, sys.ScaleAPI(ctx, 1))
	waitFor(t, ctx, "ServiceDown resolved with the API back", 2*time.Minute, func() (bool, string) {
		st := prom.alertState(ctx, "ServiceDown")
		return st == "inactive", "state " + st
	})
	t.Logf("ServiceDown resolved")

	// 11. HighQueueDepth on a held backlog of the guide's list "default".
	heldBacklog(t, ctx, sys, rdb, prom)

	// 12. Every OOM kill was the poison pill's: a normal worker stays
	// under its memory limit through every phase.
	if n := len(ooms.list()); n > poisonKills {
		t.Errorf("%d worker containers OOMKilled after the poison pill was dead-lettered: normal work exceeds the %s limit", n-poisonKills, workerMemoryLimit)
	}

	// 13. Ctrl-C (Stop) leaves nothing behind.
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

// testVcons makes the load's uuids, in push order, and says what each is;
// poison is the poison pill's uuid.
func testVcons(t *testing.T) (kinds map[string]kind, order []string, poison string) {
	kinds = map[string]kind{}
	for i := range total {
		k := kindValid
		switch {
		case i == poisonAt:
			k = kindPoison
		case i%20 == 7:
			k = kindMalformed
		case i%10 == 3:
			k = kindFiltered
		}
		id := uuid.NewString()
		kinds[id] = k
		order = append(order, id)
		if k == kindPoison {
			poison = id
		}
	}
	counts := map[kind]int{}
	for _, k := range kinds {
		counts[k]++
	}
	if counts[kindMalformed] != malformed || counts[kindFiltered] != filtered || counts[kindPoison] != poisonPills {
		t.Fatalf("test data: %d malformed, %d filtered, %d poison pills; want %d, %d, %d",
			counts[kindMalformed], counts[kindFiltered], counts[kindPoison], malformed, filtered, poisonPills)
	}
	return kinds, order, poison
}

// chaos force-deletes a worker pod every 1–2 s (kubectl delete pod
// --grace-period=0 --force) and, once, kills a worker container at the
// runtime, behind the kubelet's back; the kubelet must restart it. It
// spares the pod whose worker holds the poison pill in flight.
type chaosRun struct {
	cancel  context.CancelFunc
	done    chan struct{}
	deleted atomic.Int64
	// spared counts the rounds that left the poison pill's pod alone;
	// poisonHits the deletions of a pod that had taken it meanwhile.
	spared, poisonHits atomic.Int64
	// killed is the pod whose container was killed, and its restart count
	// before; the loop spares that pod afterwards.
	killedPod      atomic.Value
	killedRestarts int32
	// restartSeen is set once the kubelet reported a higher restart count
	// for the killed container (watched right after the kill, before a
	// scale-down can take the pod away).
	restartSeen atomic.Bool
	restartIn   atomic.Int64 // ns from the kill to the restart seen
}

func (c *chaosRun) String() string {
	p, _ := c.killedPod.Load().(string)
	return fmt.Sprintf("%d worker pods force-deleted, container of %q killed at the runtime, %d rounds sparing the poison pill's pod",
		c.deleted.Load(), p, c.spared.Load())
}

func (c *chaosRun) stop() {
	c.cancel()
	<-c.done
}

func startChaos(t *testing.T, ctx context.Context, sys *devsys.System, rdb *redis.Client, poison string) *chaosRun {
	cctx, cancel := context.WithCancel(ctx)
	c := &chaosRun{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		rng := rand.New(rand.NewPCG(1, 2))
		for round := 0; ; round++ {
			select {
			case <-cctx.Done():
				return
			case <-time.After(time.Duration(1000+rng.IntN(1000)) * time.Millisecond):
			}
			pods := runningWorkers(cctx, sys)
			spared, _ := c.killedPod.Load().(string)
			holders := holdersOf(cctx, rdb, poison)
			var candidates []corev1.Pod
			for _, p := range pods {
				switch {
				case holders[p.Name]:
					c.spared.Add(1)
				case p.Name != spared:
					candidates = append(candidates, p)
				}
			}
			if len(candidates) == 0 {
				continue
			}
			p := candidates[rng.IntN(len(candidates))]
			if round == 4 && spared == "" && len(p.Status.ContainerStatuses) > 0 {
				cs := p.Status.ContainerStatuses[0]
				if err := sys.KillContainer(cctx, cs.ContainerID); err != nil {
					t.Errorf("chaos: kill container of %s: %v", p.Name, err)
					continue
				}
				c.killedRestarts = cs.RestartCount
				c.killedPod.Store(p.Name)
				t.Logf("chaos: SIGKILL container %s of %s at the runtime (restarts %d)", cs.Name, p.Name, cs.RestartCount)
				go c.watchRestart(ctx, sys, p.Name, time.Now())
				continue
			}
			err := sys.Kube.CoreV1().Pods(ns).Delete(cctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
			if err == nil {
				c.deleted.Add(1)
				t.Logf("chaos: force-deleted %s", p.Name)
				// Taken between the look above and the deletion: that
				// delivery may end without an OOM kill.
				if holdersOf(cctx, rdb, poison)[p.Name] {
					c.poisonHits.Add(1)
					t.Logf("chaos: %s held the poison pill when deleted", p.Name)
				}
			}
		}
	}()
	return c
}

// watchRestart polls the pod of the killed container until the kubelet
// reports its restart (or 30 s pass).
func (c *chaosRun) watchRestart(ctx context.Context, sys *devsys.System, pod string, killed time.Time) {
	for time.Since(killed) < 30*time.Second && ctx.Err() == nil {
		p, err := sys.Kube.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
		if err == nil && len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].RestartCount > c.killedRestarts {
			c.restartIn.Store(int64(time.Since(killed)))
			c.restartSeen.Store(true)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// check: enough pods were deleted to test recovery, and the kubelet
// restarted the killed container in its pod.
func (c *chaosRun) check(t *testing.T) {
	t.Helper()
	if c.deleted.Load() < 3 {
		t.Errorf("only %d worker pods were force-deleted: the run was too short to test recovery", c.deleted.Load())
	}
	name, _ := c.killedPod.Load().(string)
	switch {
	case name == "":
		t.Error("no worker container was killed at the runtime: the run was too short")
	case !c.restartSeen.Load():
		t.Errorf("the kubelet did not restart the killed container of %s within 30s", name)
	default:
		t.Logf("the kubelet restarted the killed container of %s %s after the kill", name, time.Duration(c.restartIn.Load()).Round(100*time.Millisecond))
	}
}

// holdersOf are the pods whose worker holds uuid in flight, alive or dead
// and not yet reaped: a worker's id is its pod's hostname (the pod name)
// and a random suffix.
func holdersOf(ctx context.Context, rdb *redis.Client, uuid string) map[string]bool {
	prefix := queue.InFlightPrefix(ingress)
	keys, _ := rdb.Keys(ctx, prefix+"*").Result()
	pods := map[string]bool{}
	for _, k := range keys {
		if _, err := rdb.LPos(ctx, k, uuid, redis.LPosArgs{}).Result(); err != nil {
			continue
		}
		id := strings.TrimPrefix(k, prefix)
		if i := strings.LastIndex(id, "-"); i > 0 {
			pods[id[:i]] = true
		}
	}
	return pods
}

// deliveriesOf is how many deliveries of uuid ended without an outcome so
// far, as the reapers counted them (0 again once it has an outcome).
func deliveriesOf(ctx context.Context, rdb *redis.Client, uuid string) int {
	pipe := rdb.Pipeline()
	pending := queue.QueueReadState(ctx, pipe, ingress, uuid)
	if _, err := pipe.Exec(ctx); err != nil {
		return 0
	}
	st, _ := pending.Result()
	return st.Deliveries
}

// outage is a vendor's: the webhook receiver answers 503 from start for
// its duration.
type outage struct {
	sink  *devsys.WebhookSink
	start time.Time
	end   atomic.Int64 // unix ns; 0 while it lasts
}

func startOutage(t *testing.T, sink *devsys.WebhookSink, d time.Duration) *outage {
	t.Helper()
	o := &outage{sink: sink, start: time.Now()}
	sink.SetStatus(http.StatusServiceUnavailable)
	time.AfterFunc(d, func() {
		sink.SetStatus(0)
		o.end.Store(time.Now().UnixNano())
	})
	t.Logf("vendor outage: the webhook receiver answers 503 for %s", d)
	return o
}

func (o *outage) active() bool { return o.end.Load() == 0 }

func (o *outage) String() string {
	if o.active() {
		return fmt.Sprintf("outage on for %s, %d posts refused", time.Since(o.start).Round(time.Second), o.sink.Refused.Load())
	}
	return fmt.Sprintf("outage over after %s, %d posts refused", time.Unix(0, o.end.Load()).Sub(o.start).Round(time.Second), o.sink.Refused.Load())
}

// check: the outage refused posts, and the Chain's status (the RETRY
// column) showed vCons waiting for a retry while it lasted, so that the
// exactly-once checks and the DLQ's contents (nothing the outage failed)
// did not pass for want of an outage. retrySetMax is the largest retry
// set seen in Redis during it.
func (o *outage) check(t *testing.T, w *watch, retrySetMax int64) {
	t.Helper()
	refused := o.sink.Refused.Load()
	waiting := w.maxRetry(o.start, time.Unix(0, o.end.Load()))
	if refused == 0 || waiting == 0 {
		t.Errorf("the outage tested nothing: %d posts refused, at most %d vCons waiting for a retry in status.queue.retry (%d in Redis' retry set)",
			refused, waiting, retrySetMax)
		return
	}
	t.Logf("vendor outage of %s: %d posts answered 503; up to %d vCons waiting for a retry in the Chain's status (RETRY column), %d in Redis' retry set; none dead-lettered by it",
		outageFor, refused, waiting, retrySetMax)
}

// cleanPhase pushes cleanLoad valid vCons with no fault: the Chain goes
// 0 → N → 0, and the receiver saw each exactly once.
func cleanPhase(t *testing.T, ctx context.Context, sys *devsys.System, rdb *redis.Client, sink *devsys.WebhookSink, w *watch) {
	t.Helper()
	before := sink.Deliveries()
	kinds := map[string]kind{}
	var ids []string
	for range cleanLoad {
		id := uuid.NewString()
		kinds[id] = kindValid
		ids = append(ids, id)
	}
	w.resetMax()
	sink.SetDelay(cleanDelay)
	defer sink.SetDelay(0)
	push(t, ctx, sys, kinds, ids)
	waitFor(t, ctx, fmt.Sprintf("%d busy workers", maxReplicas), 2*time.Minute, func() (bool, string) {
		n := len(runningWorkers(ctx, sys))
		return n == maxReplicas && inFlight(ctx, rdb) > 0, fmt.Sprintf("%d running, %d in flight", n, inFlight(ctx, rdb))
	})
	setMaxReplicas(t, ctx, sys, cleanCut)
	// The watch must have sampled the cut too: maxReplicas restored at
	// once can undo it between two of its samples, and the scale-down
	// would go uncounted.
	waitFor(t, ctx, fmt.Sprintf("the cut to %d workers", cleanCut), 2*time.Minute, func() (bool, string) {
		d, err := workerDeployment(ctx, sys)
		if err != nil {
			return false, err.Error()
		}
		return *d.Spec.Replicas == cleanCut && w.replicas() == cleanCut,
			fmt.Sprintf("spec.replicas %d, %d at the watch's last sample", *d.Spec.Replicas, w.replicas())
	})
	setMaxReplicas(t, ctx, sys, maxReplicas)
	waitFor(t, ctx, "the fault-free load to drain", 5*time.Minute, func() (bool, string) {
		e, _ := rdb.LLen(ctx, egress).Result()
		in, _ := rdb.LLen(ctx, ingress).Result()
		return in == 0 && inFlight(ctx, rdb) == 0 && e >= valid+cleanLoad, fmt.Sprintf("ingress %d, egress %d/%d", in, e, valid+cleanLoad)
	})
	waitForReplicas(t, ctx, sys, 0)
	m := w.maxReplicas()
	if m < maxReplicas || w.scaleDownsWhileBusy() == 0 {
		t.Errorf("the fault-free load ran on %d workers at most, %d scale-downs while vCons were queued or in flight: no scale-down mid-work to check",
			m, w.scaleDownsWhileBusy())
	}
	after := sink.Deliveries()
	var twice, missing []string
	for _, id := range ids {
		switch n := after[id] - before[id]; {
		case n == 0:
			missing = append(missing, id)
		case n > 1:
			twice = append(twice, id)
		}
	}
	if len(twice)+len(missing) > 0 {
		t.Errorf("fault-free load: %d vCons delivered more than once (redelivered after a scale-down) %v, %d never %v",
			len(twice), head(twice), len(missing), head(missing))
	} else {
		t.Logf("fault-free load: 0 → %d → 0 workers, %d scale-downs while vCons were in flight, each of %d vCons delivered exactly once (no redelivery on scale-down)",
			m, w.scaleDownsWhileBusy(), cleanLoad)
	}
}

func fixValidate(t *testing.T, ctx context.Context, sys *devsys.System) {
	t.Helper()
	c := sys.Client
	var link vconv1.Link
	must(t, c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "validate"}, &link))
	lp := client.MergeFrom(link.DeepCopy())
	opts := map[string]any{}
	must(t, json.Unmarshal(link.Spec.Options.Raw, &opts))
	opts["filter"] = validateFixed
	raw, _ := json.Marshal(opts)
	link.Spec.Options.Raw = raw
	before, err := workerDeployment(ctx, sys)
	must(t, err)
	oldHash := before.Spec.Template.Annotations[workload.AnnotationConfigHash]
	must(t, c.Patch(ctx, &link, lp))
	// The fix reaches the workers through the config hash of the pod
	// template: until it changed and no pod of the old template is left, a
	// replayed vCon could meet the broken filter again. A terminating pod
	// counts: until its container has stopped it may still take vCons (the
	// kubelet sends SIGTERM some time after the deletion timestamp).
	waitFor(t, ctx, "the fixed link in the worker Deployment", 3*time.Minute, func() (bool, string) {
		d, err := workerDeployment(ctx, sys)
		if err != nil {
			return false, err.Error()
		}
		hash := d.Spec.Template.Annotations[workload.AnnotationConfigHash]
		pods, err := sys.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{
			LabelSelector: labels.SelectorFromSet(workload.SelectorLabels(chain)).String(),
		})
		if err != nil {
			return false, err.Error()
		}
		stale := 0
		for _, p := range pods.Items {
			done := p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
			if !done && p.Annotations[workload.AnnotationConfigHash] != hash {
				stale++
			}
		}
		return hash != oldHash && stale == 0, fmt.Sprintf("config hash %s (was %s), %d pods of the old template", hash, oldHash, stale)
	})
}

// checkPoisonKills: the poison pill got its workers killed by the kernel
// (the kubelet reports the container OOMKilled: the memory limit is
// enforced), and no more often than maxDeliveries: each kill is one
// restart of a worker container (or the end of a terminating pod's), and
// only the poison pill exceeds the limit. It returns the kills seen.
func checkPoisonKills(t *testing.T, ooms *oomWatch, chaos *chaosRun) int {
	t.Helper()
	kills := ooms.list()
	for _, k := range kills {
		after := fmt.Sprintf("the kubelet restarted it (restart count %d)", k.restarts)
		if !k.restarted {
			after = "not restarted before its pod went"
		}
		t.Logf("poison pill: worker container of %s OOMKilled at %s (exit code %d); %s", k.pod, k.at.Format(time.TimeOnly), k.exitCode, after)
	}
	switch {
	case len(kills) == 0:
		t.Errorf("no worker container was OOMKilled: the poison pill never reached the %s memory limit, or the kernel did not enforce it", workerMemoryLimit)
	case len(kills) > maxDeliveries:
		t.Errorf("%d worker containers OOMKilled, want at most maxDeliveries (%d): the poison pill ran again after its limit", len(kills), maxDeliveries)
	default:
		t.Logf("poison pill: %d OOM kills (at most %d), then dead-lettered; the chaos deleted its pod %d times",
			len(kills), maxDeliveries, chaos.poisonHits.Load())
	}
	return len(kills)
}

// checkRetryMetrics: Prometheus saw the outage's retries: the workers'
// vcon_retries_scheduled_total (summed over each series' maximum, a lower
// bound: pods came and went, and a restarted container starts from 0)
// and the operator's measurement of the retry set.
func checkRetryMetrics(t *testing.T, ctx context.Context, prom promClient) {
	t.Helper()
	for _, q := range []string{
		fmt.Sprintf(`sum(max_over_time(vcon_retries_scheduled_total{chain=%q}[15m]))`, chain),
		fmt.Sprintf(`max(max_over_time(redis_list_length{chain=%q,kind="retry"}[15m]))`, chain),
	} {
		waitFor(t, ctx, "retries in "+q, time.Minute, func() (bool, string) {
			v, err := prom.query(ctx, q)
			if err != nil {
				return false, err.Error()
			}
			return len(v) > 0 && v[0].Value != "0", fmt.Sprintf("%v", v)
		})
		v, _ := prom.query(ctx, q)
		t.Logf("%s = %s", q, v[0].Value)
	}
}

// setAside finds the dead letters with reason redelivery_limit through
// kubectl vcon dlq list, checks they are the poison pill alone, and takes
// it out of the DLQ with its recorded reason, as an operator keeps a vCon
// that kills workers away from a replay.
func setAside(t *testing.T, ctx context.Context, sys *devsys.System, plugin string, rdb *redis.Client, poison string) {
	t.Helper()
	out, _ := runKubectlVcon(t, sys, plugin, "dlq", "list", chain, "-o", "json", "--redis-url", sys.RedisURL)
	var entries []struct {
		UUID   string `json:"uuid"`
		Reason string `json:"reason"`
	}
	must(t, json.Unmarshal([]byte(out), &entries))
	var pills []string
	for _, e := range entries {
		if strings.HasPrefix(e.Reason, "redelivery_limit") {
			pills = append(pills, e.UUID)
		}
	}
	if len(pills) != 1 || pills[0] != poison {
		t.Fatalf("kubectl vcon dlq list: dead letters with reason redelivery_limit %v, want the poison pill %s alone", pills, poison)
	}
	_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.LRem(ctx, queue.DLQKey(ingress), 0, poison)
		p.HDel(ctx, queue.DLQReasonsKey(ingress), poison)
		return nil
	})
	must(t, err)
	t.Logf("kubectl vcon dlq list: %d dead letters, the poison pill %s the one with reason redelivery_limit: set aside before the replay", len(entries), poison)
}

// heldBacklog: a disabled Chain on "default" holds more than 1,000 vCons;
// HighQueueDepth fires, and resolves once the backlog is gone.
func heldBacklog(t *testing.T, ctx context.Context, sys *devsys.System, rdb *redis.Client, prom promClient) {
	t.Helper()
	ch := &vconv1.Chain{
		ObjectMeta: metav1.ObjectMeta{Name: backlogChain, Namespace: ns},
		Spec: vconv1.ChainSpec{
			IngressLists: []string{"default"}, EgressLists: []string{"default-out"},
			Links: []string{"tag"}, Enabled: ptr.To(false),
			// The typed client sends every field: give the defaults.
			Workers: vconv1.WorkerSpec{MaxReplicas: 1, TargetQueueDepth: 100, Concurrency: 1},
		},
	}
	must(t, sys.Client.Create(ctx, ch))
	ids := make([]any, backlog)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	must(t, rdb.RPush(ctx, "default", ids...).Err())
	waitFor(t, ctx, "HighQueueDepth firing on the held backlog", 2*time.Minute, func() (bool, string) {
		st := prom.alertState(ctx, "HighQueueDepth")
		return st == "firing", "state " + st
	})
	t.Logf("HighQueueDepth firing with %d vCons held on default", backlog)
	v, err := prom.query(ctx, `redis_list_length{list="default"}`)
	must(t, err)
	if len(v) == 0 || v[0].Value != fmt.Sprint(backlog) {
		t.Errorf(`redis_list_length{list="default"} = %+v, want %d`, v, backlog)
	}
	must(t, rdb.Del(ctx, "default").Err())
	waitFor(t, ctx, "HighQueueDepth resolved", 2*time.Minute, func() (bool, string) {
		st := prom.alertState(ctx, "HighQueueDepth")
		return st == "inactive", "state " + st
	})
	t.Logf("HighQueueDepth resolved once the backlog was gone")
}

// checkTargets: Prometheus scrapes, through the chart's ServiceMonitors
// and PodMonitor, the operator, the API and every running worker pod.
func checkTargets(t *testing.T, ctx context.Context, sys *devsys.System, prom promClient) {
	t.Helper()
	// Start workers again for the look (the Chain is idle at 0): one pod.
	setMinReplicas(t, ctx, sys, 1)
	waitForReplicas(t, ctx, sys, 1)
	waitFor(t, ctx, "Prometheus scraping the operator, the API and the worker pods", 2*time.Minute, func() (bool, string) {
		ts, err := prom.targets(ctx)
		if err != nil {
			return false, err.Error()
		}
		jobs := map[string]int{}
		workers := map[string]bool{}
		for _, tg := range ts {
			if tg.Health != "up" {
				continue
			}
			jobs[tg.Labels["job"]]++
			if tg.Labels["chain"] == chain && tg.Labels["namespace"] == ns && tg.Labels["pod"] != "" && strings.Contains(tg.ScrapePool, "podMonitor") {
				workers[tg.Labels["pod"]] = true
			}
		}
		want := map[string]bool{}
		for _, p := range runningWorkers(ctx, sys) {
			want[p.Name] = true
		}
		ok := jobs["vcon-operator"] >= 1 && jobs["vcon-server"] >= 2 && len(want) > 0 && reflect.DeepEqual(workers, want)
		return ok, fmt.Sprintf("up targets by job %v, worker pods scraped %v, running %v", jobs, workers, want)
	})
	setMinReplicas(t, ctx, sys, 0)
}

// checkGuideQueries: the monitoring guide's key queries, as written,
// answer on this Prometheus.
func checkGuideQueries(t *testing.T, ctx context.Context, prom promClient) {
	t.Helper()
	queries := []string{
		`rate(vcon_processed_total[5m]) * 60`,
		`rate(vcon_processing_errors_total[5m]) / rate(vcon_processed_total[5m])`,
		`histogram_quantile(0.95, rate(vcon_processing_duration_seconds_bucket[5m]))`,
		`redis_list_length{list=~"DLQ:.*"}`,
		`up{job="vcon-server"}`,
	}
	for _, q := range queries {
		waitFor(t, ctx, "data for "+q, time.Minute, func() (bool, string) {
			v, err := prom.query(ctx, q)
			if err != nil {
				return false, err.Error()
			}
			return len(v) > 0, fmt.Sprintf("%d series", len(v))
		})
		v, _ := prom.query(ctx, q)
		t.Logf("guide query %s: %d series, e.g. %v = %s", q, len(v), v[0].Metric, v[0].Value)
	}
}

// checkOperatorIdentity: the operator's pod runs as the chart's
// ServiceAccount, whose token carries no admin group.
func checkOperatorIdentity(t *testing.T, ctx context.Context, sys *devsys.System) {
	t.Helper()
	pods, err := sys.Kube.CoreV1().Pods(devsys.ReleaseNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=operator"})
	must(t, err)
	if len(pods.Items) == 0 {
		t.Fatal("no operator pod")
	}
	for _, p := range pods.Items {
		if p.Spec.ServiceAccountName != devsys.ReleaseName {
			t.Errorf("operator pod %s runs as ServiceAccount %q, want the chart's %q", p.Name, p.Spec.ServiceAccountName, devsys.ReleaseName)
		}
	}
	bindings, err := sys.Kube.RbacV1().ClusterRoleBindings().List(ctx, metav1.ListOptions{})
	must(t, err)
	for _, b := range bindings.Items {
		for _, s := range b.Subjects {
			if s.Kind == "ServiceAccount" && s.Name == devsys.ReleaseName && s.Namespace == devsys.ReleaseNamespace && b.RoleRef.Name == "cluster-admin" {
				t.Errorf("ClusterRoleBinding %s makes the operator cluster-admin", b.Name)
			}
		}
	}
}
