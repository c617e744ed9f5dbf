//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/devsys"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/workload"
)

func kubectlVcon(t *testing.T, sys *devsys.System, plugin string, args ...string) {
	t.Helper()
	out, errOut := runKubectlVcon(t, sys, plugin, args...)
	t.Logf("kubectl vcon %s:\n%s", strings.Join(args, " "), strings.TrimSpace(out+errOut))
}

// runKubectlVcon runs the plugin and returns its standard output and
// standard error; it fails the test when the plugin fails.
func runKubectlVcon(t *testing.T, sys *devsys.System, plugin string, args ...string) (stdout, stderr string) {
	t.Helper()
	full := append([]string{"--kubeconfig", sys.KubeconfigPath, "-n", ns}, args...)
	cmd := exec.Command(plugin, full...)
	cmd.Env = append(os.Environ(), "REDIS_URL="+sys.RedisURL)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl vcon %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut.Bytes())
	}
	return string(out), errOut.String()
}

func workerDeployment(ctx context.Context, sys *devsys.System) (*appsv1.Deployment, error) {
	return sys.Kube.AppsV1().Deployments(ns).Get(ctx, workload.DeploymentName(chain), metav1.GetOptions{})
}

// runningWorkers are the Chain's worker pods that are Running and not
// being deleted.
func runningWorkers(ctx context.Context, sys *devsys.System) []corev1.Pod {
	pods, err := sys.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(workload.SelectorLabels(chain)).String(),
	})
	if err != nil {
		return nil
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
			out = append(out, p)
		}
	}
	return out
}

// waitForReplicas waits until the worker Deployment asks for n pods and
// exactly n exist (none terminating).
func waitForReplicas(t *testing.T, ctx context.Context, sys *devsys.System, n int32) {
	t.Helper()
	waitFor(t, ctx, fmt.Sprintf("%d worker pods", n), 3*time.Minute, func() (bool, string) {
		d, err := workerDeployment(ctx, sys)
		if err != nil {
			return false, err.Error()
		}
		pods, err := sys.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{
			LabelSelector: labels.SelectorFromSet(workload.SelectorLabels(chain)).String(),
		})
		if err != nil {
			return false, err.Error()
		}
		ready := 0
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil && podReady(&p) {
				ready++
			}
		}
		return *d.Spec.Replicas == n && len(pods.Items) == int(n) && ready == int(n),
			fmt.Sprintf("spec.replicas %d, pods %d (%d ready)", *d.Spec.Replicas, len(pods.Items), ready)
	})
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// patchChain changes the Chain's spec with a merge patch.
func patchChain(t *testing.T, ctx context.Context, sys *devsys.System, change func(*vconv1.ChainSpec)) {
	t.Helper()
	var ch vconv1.Chain
	must(t, sys.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: chain}, &ch))
	p := client.MergeFrom(ch.DeepCopy())
	change(&ch.Spec)
	must(t, sys.Client.Patch(ctx, &ch, p))
}

// patchWorkers changes the Chain's spec.workers with a merge patch.
func patchWorkers(t *testing.T, ctx context.Context, sys *devsys.System, change func(*vconv1.WorkerSpec)) {
	t.Helper()
	patchChain(t, ctx, sys, func(spec *vconv1.ChainSpec) { change(&spec.Workers) })
}

func setMinReplicas(t *testing.T, ctx context.Context, sys *devsys.System, n int32) {
	t.Helper()
	patchWorkers(t, ctx, sys, func(w *vconv1.WorkerSpec) { w.MinReplicas = n })
}

func setMaxReplicas(t *testing.T, ctx context.Context, sys *devsys.System, n int32) {
	t.Helper()
	patchWorkers(t, ctx, sys, func(w *vconv1.WorkerSpec) { w.MaxReplicas = n })
}

func chainReady(ch *vconv1.Chain) bool {
	return meta.IsStatusConditionTrue(ch.Status.Conditions, "Ready")
}

// checkReasons: every dead letter says why: a malformed vCon names the
// link that failed, the poison pill the limit of deliveries that ended
// without an outcome.
func checkReasons(t *testing.T, ctx context.Context, rdb *redis.Client, dlq []string, kinds map[string]kind) {
	t.Helper()
	reasons, err := queue.Reasons(ctx, rdb, ingress, dlq)
	must(t, err)
	wrong := 0
	var linkReason queue.DLQReason
	for _, id := range dlq {
		r := reasons[id]
		var ok bool
		if kinds[id] == kindPoison {
			if ok = strings.HasPrefix(r.Reason, "redelivery_limit"); ok {
				t.Logf("poison pill %s dead-lettered: %q", id, r.Reason)
			}
		} else {
			ok = r.Reason != "" && (strings.Contains(r.Reason+r.Step, "validate") || strings.Contains(r.Reason, "jq"))
			linkReason = r
		}
		if !ok {
			wrong++
			if wrong < 4 {
				t.Errorf("DLQ %s (kind %d): reason %+v does not say why", id, kinds[id], r)
			}
		}
	}
	if wrong > 0 {
		t.Errorf("%d of %d dead letters without the reason their kind should have", wrong, len(dlq))
	} else if linkReason.Reason != "" {
		t.Logf("dead-letter reason: %q (chain %q, step %q)", linkReason.Reason, linkReason.Chain, linkReason.Step)
	}
}

// promClient asks the Prometheus the Prometheus Operator runs.
type promClient struct{ url string }

func (p promClient) get(ctx context.Context, path string, out any) error {
	return devsys.GetJSON(ctx, p.url+path, out)
}

type sample struct {
	Metric map[string]string
	Value  string
}

// query runs an instant PromQL query; NaN answers count as data (the
// error-rate ratio is NaN when nothing was processed in the window).
func (p promClient) query(ctx context.Context, q string) ([]sample, error) {
	var body struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := p.get(ctx, "/api/v1/query?query="+url.QueryEscape(q), &body); err != nil {
		return nil, err
	}
	var out []sample
	for _, r := range body.Data.Result {
		out = append(out, sample{Metric: r.Metric, Value: fmt.Sprint(r.Value[1])})
	}
	return out, nil
}

// alertState is firing, pending or inactive (or an error text).
func (p promClient) alertState(ctx context.Context, name string) string {
	var body struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	if err := p.get(ctx, "/api/v1/alerts", &body); err != nil {
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

type target struct {
	Labels     map[string]string `json:"labels"`
	Health     string            `json:"health"`
	ScrapePool string            `json:"scrapePool"`
}

func (p promClient) targets(ctx context.Context) ([]target, error) {
	var body struct {
		Data struct {
			ActiveTargets []target `json:"activeTargets"`
		} `json:"data"`
	}
	err := p.get(ctx, "/api/v1/targets?state=active", &body)
	return body.Data.ActiveTargets, err
}

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

func vconBody(id string, k kind, i int) []byte {
	subject := "score:" + strconv.Itoa(i%10)
	parties := []map[string]any{{"tel": "+1555" + fmt.Sprintf("%07d", i)}, {"tel": "+15550000000"}}
	switch k {
	case kindMalformed:
		subject = "score:n/a"
	case kindFiltered:
		parties = parties[:1]
	case kindPoison:
		subject = "poison"
	}
	b, _ := json.Marshal(map[string]any{
		"uuid": id, "vcon": "0.0.1", "created_at": "2024-01-15T10:30:00Z",
		"subject": subject, "parties": parties,
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

// watch samples the Chain's status (what `kubectl get chains` prints) and
// the Deployment's replicas.
type watch struct {
	mu      sync.Mutex
	rows    []vconv1.QueueStatus
	maxRepl int32
	// lastRepl and busyScaleDowns: how often spec.replicas went down
	// while the Chain still had vCons queued or in flight, i.e. while the
	// pods being removed could be mid-vCon.
	lastRepl       int32
	busyScaleDowns int
}

func startWatch(ctx context.Context, sys *devsys.System) *watch {
	w := &watch{}
	c := sys.Client
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
			if d, err := workerDeployment(ctx, sys); err == nil && d.Spec.Replicas != nil {
				w.mu.Lock()
				r := *d.Spec.Replicas
				w.maxRepl = max(w.maxRepl, r)
				if q := ch.Status.Queue; r < w.lastRepl && q.Ingress+q.InFlight > 0 {
					w.busyScaleDowns++
				}
				w.lastRepl = r
				w.mu.Unlock()
			}
			time.Sleep(250 * time.Millisecond)
		}
	}()
	return w
}

// resetMax starts a new maximum and scale-down count (for the next load).
func (w *watch) resetMax() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.maxRepl, w.busyScaleDowns = 0, 0
}

func (w *watch) scaleDownsWhileBusy() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.busyScaleDowns
}

// maxRetry is the largest RETRY column the Chain's status showed from
// from to to.
func (w *watch) maxRetry(from, to time.Time) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var m int64
	for _, r := range w.rows {
		if r.ObservedAt != nil && !r.ObservedAt.Time.Before(from) && !r.ObservedAt.Time.After(to) {
			m = max(m, r.Retry)
		}
	}
	return m
}

// replicas is the worker Deployment's spec.replicas at the last sample.
func (w *watch) replicas() int32 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastRepl
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
			t.Logf("  INGRESS %5d  IN-FLIGHT %3d  RETRY %4d  DLQ %4d  EGRESS %5d", r.Ingress, r.InFlight, r.Retry, r.DLQ, r.Egress)
		}
	}
	if in < 3 || fl < 2 || dl < 3 || eg < 3 {
		t.Errorf("the queue columns did not move: distinct ingress %d, in-flight %d, DLQ %d, egress %d", in, fl, dl, eg)
	}
}

// oomWatch records every worker container the kubelet reports OOMKilled
// (killed by the kernel at the container's memory limit), once each. It
// watches the Chain's pods rather than polling them: a container killed
// in a terminating pod shows OOMKilled only in the pod's last status
// update, a moment before the pod is gone.
type oomWatch struct {
	mu    sync.Mutex
	kills map[string]oomKill // by container ID
}

type oomKill struct {
	pod      string
	at       time.Time
	exitCode int32
	// restarted: the kubelet started the container again after the kill
	// (a newer one runs or ended); restarts is its restart count then.
	restarted bool
	restarts  int32
}

func startOOMWatch(ctx context.Context, sys *devsys.System) *oomWatch {
	w := &oomWatch{kills: map[string]oomKill{}}
	sel := labels.SelectorFromSet(workload.SelectorLabels(chain)).String()
	pods := sys.Kube.CoreV1().Pods(ns)
	go func() {
		for ctx.Err() == nil {
			list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: sel})
			if err != nil {
				time.Sleep(250 * time.Millisecond)
				continue
			}
			w.record(list.Items)
			events, err := pods.Watch(ctx, metav1.ListOptions{LabelSelector: sel, ResourceVersion: list.ResourceVersion})
			if err != nil {
				time.Sleep(250 * time.Millisecond)
				continue
			}
			for ev := range events.ResultChan() {
				if p, ok := ev.Object.(*corev1.Pod); ok {
					w.record([]corev1.Pod{*p})
				}
			}
			events.Stop()
		}
	}()
	return w
}

// record: a kill shows as the container's state until the kubelet
// restarts it (for good when its pod is terminating), as its last
// termination while it waits to be restarted (crash-loop back-off), and
// beside a newer container once it was.
func (w *oomWatch) record(pods []corev1.Pod) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range pods {
		for _, cs := range p.Status.ContainerStatuses {
			for _, term := range []*corev1.ContainerStateTerminated{cs.State.Terminated, cs.LastTerminationState.Terminated} {
				if term == nil || term.Reason != "OOMKilled" {
					continue
				}
				id := term.ContainerID
				if id == "" {
					id = p.Name + "@" + term.FinishedAt.String()
				}
				k, seen := w.kills[id]
				if !seen {
					k = oomKill{pod: p.Name, at: term.FinishedAt.Time, exitCode: term.ExitCode, restarts: cs.RestartCount}
				}
				newer := cs.State.Running != nil || cs.State.Terminated != nil && cs.State.Terminated.ContainerID != term.ContainerID
				if term == cs.LastTerminationState.Terminated && newer && !k.restarted {
					k.restarted, k.restarts = true, cs.RestartCount
				}
				w.kills[id] = k
			}
		}
	}
}

// list returns the kills seen so far, oldest first.
func (w *oomWatch) list() []oomKill {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]oomKill, 0, len(w.kills))
	for _, k := range w.kills {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out
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
