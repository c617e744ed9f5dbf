// Command pods measures the system on real pods: internal/devsys brings up
// this machine's single-node Kubernetes (kubelet, containerd), Redis on the
// node's address and `helm install` of charts/vcon-operator, and the
// benchmark drives it from outside as a user would, through the API's
// Service and the Chain objects. It prints a Markdown section for
// docs/benchmarks.md (hack/bench.sh runs it). Root on Linux only; it waits
// for the machine's cluster lock while another run holds it.
//
//	go run ./hack/bench/pods
//
// It reports the cold start of a Chain idle at zero pods (POST of one vCon
// until its uuid is on the egress list, broken down into the operator's
// reaction, the pod's readiness and the processing), the time from a burst
// to five Ready worker pods, and the memory the kubelet reports for the
// operator, API and worker pods. Settings: BENCH_COLD_TRIES (20),
// BENCH_BURST_TRIES (3, to keep the run near 6 minutes), BENCH_BURST_SIZE (1000 vCons),
// BENCH_SINK_DELAY (50ms per vCon at the slow receiver), BENCH_LOAD (2000).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/hack/bench/benchutil"
	"github.com/vcon-operator/vcon-operator/internal/devsys"
	"github.com/vcon-operator/vcon-operator/internal/workload"
)

const (
	namespace = "bench-pods"

	// coldChain is links.tag only: the cold start measures pods, not links.
	coldChain = "cold"
	// burstChain adds a webhook to a deliberately slow receiver, so that
	// a burst stays queued long enough for all its pods to come up.
	burstChain = "burst"

	coldMaxReplicas  = 3
	burstMaxReplicas = 5
	targetQueueDepth = 100
	scaleDownDelay   = 2 * time.Second
	// queuePoll is the chart's default operator.queuePollInterval.
	queuePoll = 2 * time.Second
)

func ingressOf(chain string) string { return chain + "-ingress" }
func egressOf(chain string) string  { return chain + "-egress" }

type settings struct {
	coldTries, burstTries, burstSize, load int
	sinkDelay                              time.Duration
}

var progress = benchutil.Progress("pods")

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench pods:", err)
		os.Exit(1)
	}
}

func run() error {
	set := settings{
		coldTries:  benchutil.EnvInt("BENCH_COLD_TRIES", 20),
		burstTries: benchutil.EnvInt("BENCH_BURST_TRIES", 3),
		burstSize:  benchutil.EnvInt("BENCH_BURST_SIZE", 1000),
		load:       benchutil.EnvInt("BENCH_LOAD", 2000),
	}
	var err error
	if set.sinkDelay, err = benchutil.EnvDuration("BENCH_SINK_DELAY", 50*time.Millisecond); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	begin := time.Now()
	load0 := loadAverage()

	progress("starting the system (devsys: image, cluster, Redis, helm install)")
	sys, err := devsys.Start(ctx, devsys.Options{
		Postgres: false, Prometheus: false, QueuePollInterval: queuePoll,
		Log: prefixWriter{"bench pods: devsys: "},
	})
	if err != nil {
		return err
	}
	defer sys.Stop()
	upIn := time.Since(begin)
	progress(fmt.Sprintf("system up in %v", upIn.Round(time.Second)))

	b := &bench{sys: sys, set: set, http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}}
	b.rdb = redis.NewClient(&redis.Options{Addr: strings.TrimPrefix(sys.RedisURL, "redis://")})
	defer b.rdb.Close()
	if b.node, err = nodeName(ctx, sys); err != nil {
		return err
	}
	sink, err := startSlowSink(sys, set.sinkDelay)
	if err != nil {
		return err
	}
	defer sink.Close()
	if err := b.createChains(ctx, sink.url); err != nil {
		return err
	}
	// A run once had its first POST, seconds after helm install, answered
	// 500 "Failed to store vCon": the path is checked (and any such
	// answers counted and reported) before anything is timed.
	warm, err := b.warmUp(ctx)
	if err != nil {
		return err
	}

	progress(fmt.Sprintf("cold start: %d tries", set.coldTries))
	cold, err := b.coldStarts(ctx)
	if err != nil {
		return err
	}
	progress(fmt.Sprintf("burst of %d vCons: %d tries", set.burstSize, set.burstTries))
	bursts, err := b.bursts(ctx)
	if err != nil {
		return err
	}
	progress("memory: operator, API and one worker, idle and after a load")
	mem, err := b.memory(ctx)
	if err != nil {
		return err
	}

	r := report{set: set, warm: warm, cold: cold, bursts: bursts, mem: mem, node: b.node,
		upIn: upIn, total: time.Since(begin), load0: load0, load1: loadAverage(), image: sys.Image}
	_, err = os.Stdout.Write(r.markdown())
	return err
}

type bench struct {
	sys  *devsys.System
	set  settings
	rdb  *redis.Client
	http *http.Client
	node string
}

// --- setup ---

func (b *bench) createChains(ctx context.Context, sinkURL string) error {
	c := b.sys.Client
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		return err
	}
	links := []*vconv1.Link{
		{ObjectMeta: metav1.ObjectMeta{Name: "tag", Namespace: namespace},
			Spec: vconv1.LinkSpec{Module: "links.tag", Options: rawJSON(map[string]any{"tags": []string{"bench:pods"}})}},
		{ObjectMeta: metav1.ObjectMeta{Name: "slow", Namespace: namespace},
			Spec: vconv1.LinkSpec{Module: "links.webhook", Options: rawJSON(map[string]any{"webhook-urls": []string{sinkURL}, "retries": 0})}},
	}
	for _, l := range links {
		if err := c.Create(ctx, l); err != nil {
			return fmt.Errorf("create Link %s: %w", l.Name, err)
		}
	}
	chains := []*vconv1.Chain{
		chain(coldChain, []string{"tag"}, coldMaxReplicas, 4),
		// Concurrency 1: each pod takes one vCon at a time, so the slow
		// receiver sets the drain rate (1/BENCH_SINK_DELAY per pod).
		chain(burstChain, []string{"tag", "slow"}, burstMaxReplicas, 1),
	}
	for _, ch := range chains {
		if err := c.Create(ctx, ch); err != nil {
			return fmt.Errorf("create Chain %s: %w", ch.Name, err)
		}
	}
	for _, ch := range chains {
		if err := waitFor(ctx, "Chain "+ch.Name+" Ready", 2*time.Minute, func() (bool, string) {
			var got vconv1.Chain
			if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: ch.Name}, &got); err != nil {
				return false, err.Error()
			}
			ok := apimeta.IsStatusConditionTrue(got.Status.Conditions, string(vconv1.ConditionReady)) && got.Status.ObservedGeneration == got.Generation
			return ok, fmt.Sprintf("conditions %v", got.Status.Conditions)
		}); err != nil {
			return err
		}
		if _, _, err := b.waitIdle(ctx, ch.Name); err != nil {
			return err
		}
	}
	return nil
}

func chain(name string, links []string, maxReplicas, concurrency int32) *vconv1.Chain {
	return &vconv1.Chain{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: vconv1.ChainSpec{
			IngressLists: []string{ingressOf(name)},
			EgressLists:  []string{egressOf(name)},
			Links:        links,
			Workers: vconv1.WorkerSpec{
				MinReplicas: 0, MaxReplicas: maxReplicas, TargetQueueDepth: targetQueueDepth, Concurrency: concurrency,
				ScaleDownDelay: &metav1.Duration{Duration: scaleDownDelay},
			},
		},
	}
}

func rawJSON(v any) *apiextensionsv1.JSON {
	b, _ := json.Marshal(v)
	return &apiextensionsv1.JSON{Raw: b}
}

func nodeName(ctx context.Context, sys *devsys.System) (string, error) {
	nodes, err := sys.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", err
	}
	if len(nodes.Items) != 1 {
		return "", fmt.Errorf("want one node, the cluster has %d", len(nodes.Items))
	}
	return nodes.Items[0].Name, nil
}

// slowSink is a links.webhook receiver on the node's address that answers
// each vCon after a delay: a downstream that takes time.
type slowSink struct {
	url      string
	srv      *http.Server
	received atomic.Int64
}

func startSlowSink(sys *devsys.System, delay time.Duration) (*slowSink, error) {
	l, err := sys.ListenInNode(net.JoinHostPort(sys.Node.IP, "0"))
	if err != nil {
		return nil, err
	}
	s := &slowSink{url: "http://" + l.Addr().String() + "/slow"}
	s.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(delay)
		s.received.Add(1)
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = s.srv.Serve(l) }()
	return s, nil
}

func (s *slowSink) Close() { _ = s.srv.Close() }

// --- the Chain's pods, watched ---

// tracker records, from watches opened before a push, when the worker
// Deployment first asked for n replicas and when n worker pods were first
// Ready at once.
type tracker struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu         sync.Mutex
	ready      map[string]bool
	replicasAt map[int32]time.Time
	readyAt    map[int]time.Time
	// createdAt and runningAt: the first pod object seen, the first pod
	// whose containers all run (before its readiness probe passes).
	createdAt, runningAt time.Time
	closed               error
}

func (b *bench) track(ctx context.Context, chain string) (*tracker, error) {
	wctx, cancel := context.WithCancel(ctx)
	deps, err := b.sys.Kube.AppsV1().Deployments(namespace).Watch(wctx, metav1.ListOptions{FieldSelector: "metadata.name=" + workload.DeploymentName(chain)})
	if err != nil {
		cancel()
		return nil, err
	}
	pods, err := b.sys.Kube.CoreV1().Pods(namespace).Watch(wctx, metav1.ListOptions{LabelSelector: selector(chain)})
	if err != nil {
		deps.Stop()
		cancel()
		return nil, err
	}
	t := &tracker{cancel: cancel, done: make(chan struct{}), ready: map[string]bool{},
		replicasAt: map[int32]time.Time{}, readyAt: map[int]time.Time{}}
	go func() {
		defer close(t.done)
		defer deps.Stop()
		defer pods.Stop()
		for {
			select {
			case ev, ok := <-deps.ResultChan():
				if !ok {
					t.fail(errors.New("Deployment watch closed"))
					return
				}
				if d, isDep := ev.Object.(*appsv1.Deployment); isDep && d.Spec.Replicas != nil {
					t.sawReplicas(*d.Spec.Replicas, time.Now())
				}
			case ev, ok := <-pods.ResultChan():
				if !ok {
					t.fail(errors.New("pod watch closed"))
					return
				}
				if p, isPod := ev.Object.(*corev1.Pod); isPod {
					t.sawPod(p, ev.Type == watch.Deleted, time.Now())
				}
			case <-wctx.Done():
				return
			}
		}
	}()
	return t, nil
}

func (t *tracker) stop() { t.cancel(); <-t.done }

func (t *tracker) fail(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed == nil {
		t.closed = err
	}
}

func (t *tracker) sawReplicas(n int32, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := int32(1); i <= n; i++ {
		if _, ok := t.replicasAt[i]; !ok {
			t.replicasAt[i] = at
		}
	}
}

func (t *tracker) sawPod(p *corev1.Pod, deleted bool, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.createdAt.IsZero() && !deleted {
		t.createdAt = at
	}
	if t.runningAt.IsZero() && !deleted && containersRunning(p) {
		t.runningAt = at
	}
	if deleted {
		delete(t.ready, p.Name)
	} else {
		t.ready[p.Name] = p.DeletionTimestamp == nil && podReady(p)
	}
	n := 0
	for _, r := range t.ready {
		if r {
			n++
		}
	}
	for i := 1; i <= n; i++ {
		if _, ok := t.readyAt[i]; !ok {
			t.readyAt[i] = at
		}
	}
}

// waitMilestones waits until the Deployment asked for n replicas and n
// pods were Ready, and returns when each happened.
func (t *tracker) waitMilestones(ctx context.Context, n int, within time.Duration) (replicas, ready time.Time, err error) {
	err = waitFor(ctx, fmt.Sprintf("%d replicas asked for and Ready", n), within, func() (bool, string) {
		t.mu.Lock()
		defer t.mu.Unlock()
		replicas, ready = t.replicasAt[int32(n)], t.readyAt[n]
		if t.closed != nil {
			return false, t.closed.Error()
		}
		return !replicas.IsZero() && !ready.IsZero(), fmt.Sprintf("replicas asked %v, ready %v", !replicas.IsZero(), !ready.IsZero())
	})
	return replicas, ready, err
}

func selector(chain string) string {
	return labels.SelectorFromSet(workload.SelectorLabels(chain)).String()
}

func containersRunning(p *corev1.Pod) bool {
	if len(p.Status.ContainerStatuses) == 0 {
		return false
	}
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Running == nil {
			return false
		}
	}
	return true
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitIdle waits until the Chain's Deployment asks for 0 replicas and no
// pod of it is left (terminating ones included), and says when each was
// first seen (polled every 100 ms).
func (b *bench) waitIdle(ctx context.Context, chain string) (zero, gone time.Time, err error) {
	err = waitFor(ctx, "Chain "+chain+" at 0 pods", 3*time.Minute, func() (bool, string) {
		d, err := b.sys.Kube.AppsV1().Deployments(namespace).Get(ctx, workload.DeploymentName(chain), metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 0 {
			return false, fmt.Sprintf("spec.replicas %v", d.Spec.Replicas)
		}
		if zero.IsZero() {
			zero = time.Now()
		}
		pods, err := b.sys.Kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector(chain)})
		if err != nil {
			return false, err.Error()
		}
		if len(pods.Items) > 0 {
			return false, fmt.Sprintf("%d pods left", len(pods.Items))
		}
		gone = time.Now()
		return true, ""
	})
	return zero, gone, err
}

// --- pushing vCons ---

func vconBody(id string) []byte {
	b, _ := json.Marshal(map[string]any{
		"uuid": id, "vcon": "0.0.1", "created_at": time.Now().UTC().Format(time.RFC3339),
		"subject": "bench pods", "parties": []map[string]any{{"tel": "+15550000001"}, {"tel": "+15550000002"}},
	})
	return b
}

func (b *bench) post(ctx context.Context, chain, id string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.sys.APIURL+"/api/vcon?ingress_lists="+ingressOf(chain), bytes.NewReader(vconBody(id)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-conserver-api-token", b.sys.APIToken)
	resp, err := b.http.Do(req)
	if err != nil {
		return fmt.Errorf("POST /api/vcon: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("POST /api/vcon: status %d: %s", resp.StatusCode, body)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}

// warmUpResult is how the API answered before its first 201.
type warmUpResult struct {
	failures int
	first    string
	took     time.Duration
}

// warmUp POSTs vCons to a list no Chain consumes until the API answers
// 201, and says how many answers before that were errors.
func (b *bench) warmUp(ctx context.Context) (warmUpResult, error) {
	var w warmUpResult
	start := time.Now()
	err := waitFor(ctx, "the API to store a vCon", time.Minute, func() (bool, string) {
		err := b.post(ctx, "warm-up", uuid.NewString())
		if err == nil {
			return true, ""
		}
		if w.failures == 0 {
			w.first = err.Error()
			progress("warm-up: " + w.first + "; the API's log:\n" + b.apiLog(ctx))
		}
		w.failures++
		return false, err.Error()
	})
	w.took = time.Since(start)
	if err != nil {
		return w, err
	}
	return w, b.rdb.Del(ctx, ingressOf("warm-up")).Err()
}

// apiLog is the tail of the API pod's log, for a failure's context.
func (b *bench) apiLog(ctx context.Context) string {
	pod, err := b.podOf(ctx, devsys.APIDeployment)
	if err != nil {
		return err.Error()
	}
	raw, err := b.sys.Kube.CoreV1().Pods(devsys.ReleaseNamespace).GetLogs(pod, &corev1.PodLogOptions{TailLines: ptr.To(int64(20))}).DoRaw(ctx)
	if err != nil {
		return err.Error()
	}
	return string(raw)
}

// pushAll POSTs n vCons from 32 clients at once.
func (b *bench) pushAll(ctx context.Context, chain string, n int) error {
	var g errgroup.Group
	g.SetLimit(32)
	for range n {
		id := uuid.NewString()
		g.Go(func() error { return b.post(ctx, chain, id) })
	}
	return g.Wait()
}

// waitEgress waits until n uuids are on the Chain's egress list.
func (b *bench) waitEgress(ctx context.Context, chain string, n int64, within time.Duration) (time.Time, error) {
	var at time.Time
	err := waitFor(ctx, fmt.Sprintf("%d vCons on %s", n, egressOf(chain)), within, func() (bool, string) {
		got, err := b.rdb.LLen(ctx, egressOf(chain)).Result()
		if err != nil {
			return false, err.Error()
		}
		at = time.Now()
		return got >= n, fmt.Sprintf("%d of %d", got, n)
	})
	return at, err
}

// --- 1. cold start ---

type coldTry struct {
	egress, replicas, created, running time.Duration // from the POST
	ready                              time.Duration // from the POST; 0: removed before it was Ready
	zero, gone                         time.Duration // from the uuid on egress
}

func (b *bench) coldStarts(ctx context.Context) ([]coldTry, error) {
	var tries []coldTry
	for i := range b.set.coldTries {
		tr, err := b.track(ctx, coldChain)
		if err != nil {
			return nil, err
		}
		t, err := b.coldStart(ctx, tr)
		tr.stop()
		if err != nil {
			return nil, fmt.Errorf("cold start %d: %w", i+1, err)
		}
		tries = append(tries, t)
		progress(fmt.Sprintf("cold start %d: egress %v (replicas 1 %v, pod created %v, running %v, Ready %v, 0s: never); back to 0 pods %v after", i+1,
			round(t.egress), round(t.replicas), round(t.created), round(t.running), round(t.ready), round(t.gone)))
	}
	return tries, nil
}

func (b *bench) coldStart(ctx context.Context, tr *tracker) (coldTry, error) {
	id := uuid.NewString()
	start := time.Now()
	if err := b.post(ctx, coldChain, id); err != nil {
		return coldTry{}, err
	}
	var onEgress time.Time
	deadline := start.Add(2 * time.Minute)
	for {
		// LPOS: the egress list only grows during the cold starts.
		_, err := b.rdb.LPos(ctx, egressOf(coldChain), id, redis.LPosArgs{}).Result()
		if err == nil {
			onEgress = time.Now()
			break
		}
		if !errors.Is(err, redis.Nil) {
			return coldTry{}, err
		}
		if time.Now().After(deadline) {
			return coldTry{}, fmt.Errorf("uuid %s not on %s within 2m", id, egressOf(coldChain))
		}
		time.Sleep(20 * time.Millisecond)
	}
	zero, gone, err := b.waitIdle(ctx, coldChain)
	if err != nil {
		return coldTry{}, err
	}
	// The pod is gone: once the watch has delivered its deletion, it
	// has delivered everything before. The worker consumes before its
	// readiness probe passes, and with a short scaleDownDelay a pod can be
	// removed before it was ever Ready: ready stays 0 then.
	var replicas, created, running, ready time.Time
	if err := waitFor(ctx, "the watches to see the pod come and go", 30*time.Second, func() (bool, string) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		replicas, created, running, ready = tr.replicasAt[1], tr.createdAt, tr.runningAt, tr.readyAt[1]
		if tr.closed != nil {
			return false, tr.closed.Error()
		}
		return !replicas.IsZero() && !created.IsZero() && !running.IsZero() && len(tr.ready) == 0,
			fmt.Sprintf("replicas 1 seen %v, pod created %v, running %v, pods left %d", !replicas.IsZero(), !created.IsZero(), !running.IsZero(), len(tr.ready))
	}); err != nil {
		return coldTry{}, err
	}
	t := coldTry{
		egress: onEgress.Sub(start), replicas: replicas.Sub(start), created: created.Sub(start), running: running.Sub(start),
		zero: zero.Sub(onEgress), gone: gone.Sub(onEgress),
	}
	if !ready.IsZero() {
		t.ready = ready.Sub(start)
	}
	return t, nil
}

// --- 2. burst ---

type burstTry struct {
	pushed, replicas, ready, drained time.Duration // from the start of the push
	gone                             time.Duration // from the last vCon on egress
	firstReplicas                    []time.Duration
}

func (b *bench) bursts(ctx context.Context) ([]burstTry, error) {
	var tries []burstTry
	for i := range b.set.burstTries {
		if err := b.rdb.Del(ctx, egressOf(burstChain)).Err(); err != nil {
			return nil, err
		}
		tr, err := b.track(ctx, burstChain)
		if err != nil {
			return nil, err
		}
		t, err := b.burst(ctx, tr)
		tr.stop()
		if err != nil {
			return nil, fmt.Errorf("burst %d: %w", i+1, err)
		}
		tries = append(tries, t)
		progress(fmt.Sprintf("burst %d: pushed in %v, Deployment %d at %v, %d Ready at %v, drained at %v", i+1,
			round(t.pushed), burstMaxReplicas, round(t.replicas), burstMaxReplicas, round(t.ready), round(t.drained)))
	}
	return tries, nil
}

func (b *bench) burst(ctx context.Context, tr *tracker) (burstTry, error) {
	start := time.Now()
	if err := b.pushAll(ctx, burstChain, b.set.burstSize); err != nil {
		return burstTry{}, err
	}
	pushed := time.Since(start)
	replicas, ready, err := tr.waitMilestones(ctx, burstMaxReplicas, 2*time.Minute)
	if err != nil {
		return burstTry{}, err
	}
	if n, _ := b.rdb.LLen(ctx, egressOf(burstChain)).Result(); n >= int64(b.set.burstSize) {
		return burstTry{}, fmt.Errorf("the burst drained before %d pods were Ready: raise BENCH_BURST_SIZE or BENCH_SINK_DELAY", burstMaxReplicas)
	}
	drained, err := b.waitEgress(ctx, burstChain, int64(b.set.burstSize), 5*time.Minute)
	if err != nil {
		return burstTry{}, err
	}
	_, gone, err := b.waitIdle(ctx, burstChain)
	if err != nil {
		return burstTry{}, err
	}
	t := burstTry{pushed: pushed, replicas: replicas.Sub(start), ready: ready.Sub(start), drained: drained.Sub(start), gone: gone.Sub(drained)}
	tr.mu.Lock()
	for i := int32(1); i <= burstMaxReplicas; i++ {
		t.firstReplicas = append(t.firstReplicas, tr.replicasAt[i].Sub(start))
	}
	tr.mu.Unlock()
	return t, nil
}

// --- 3. memory ---

type memRow struct {
	what, pod   string
	idle, after podMemory
}

func (b *bench) memory(ctx context.Context) ([]memRow, error) {
	c := b.sys.Client
	var ch vconv1.Chain
	if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: coldChain}, &ch); err != nil {
		return nil, err
	}
	patch := client.MergeFrom(ch.DeepCopy())
	ch.Spec.Workers.MinReplicas = 1
	if err := c.Patch(ctx, &ch, patch); err != nil {
		return nil, err
	}
	var worker string
	if err := waitFor(ctx, "one Ready worker at minReplicas 1", 2*time.Minute, func() (bool, string) {
		pods, err := b.sys.Kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector(coldChain)})
		if err != nil {
			return false, err.Error()
		}
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil && podReady(&p) {
				worker = p.Name
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d pods, none Ready", len(pods.Items))
	}); err != nil {
		return nil, err
	}
	operator, err := b.podOf(ctx, devsys.OperatorDeployment)
	if err != nil {
		return nil, err
	}
	api, err := b.podOf(ctx, devsys.APIDeployment)
	if err != nil {
		return nil, err
	}
	rows := []memRow{
		{what: "operator", pod: devsys.ReleaseNamespace + "/" + operator},
		{what: "API", pod: devsys.ReleaseNamespace + "/" + api},
		{what: "worker (Chain " + coldChain + ", links.tag)", pod: namespace + "/" + worker},
	}
	keys := []string{rows[0].pod, rows[1].pod, rows[2].pod}

	// Idle: a sample taken a few seconds after the worker was Ready.
	idle, err := b.summaryAfter(ctx, keys, time.Now().Add(3*time.Second))
	if err != nil {
		return nil, err
	}
	if err := b.rdb.Del(ctx, egressOf(coldChain)).Err(); err != nil {
		return nil, err
	}
	progress(fmt.Sprintf("memory: load of %d vCons through the API", b.set.load))
	if err := b.pushAll(ctx, coldChain, b.set.load); err != nil {
		return nil, err
	}
	done, err := b.waitEgress(ctx, coldChain, int64(b.set.load), 5*time.Minute)
	if err != nil {
		return nil, err
	}
	after, err := b.summaryAfter(ctx, keys, done)
	if err != nil {
		return nil, err
	}
	for i := range rows {
		rows[i].idle, rows[i].after = idle[rows[i].pod], after[rows[i].pod]
	}
	return rows, nil
}

// podOf is the Running pod of a Deployment of the release.
func (b *bench) podOf(ctx context.Context, deployment string) (string, error) {
	d, err := b.sys.Kube.AppsV1().Deployments(devsys.ReleaseNamespace).Get(ctx, deployment, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	pods, err := b.sys.Kube.CoreV1().Pods(devsys.ReleaseNamespace).List(ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(d.Spec.Selector.MatchLabels).String(),
	})
	if err != nil {
		return "", err
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
			return p.Name, nil
		}
	}
	return "", fmt.Errorf("no Running pod of Deployment %s", deployment)
}

// summaryAfter polls the kubelet's stats/summary through the apiserver
// until every pod in keys has a memory sample taken after t.
func (b *bench) summaryAfter(ctx context.Context, keys []string, t time.Time) (map[string]podMemory, error) {
	var got map[string]podMemory
	err := waitFor(ctx, "stats/summary samples after "+t.Format("15:04:05"), 2*time.Minute, func() (bool, string) {
		raw, err := b.sys.Kube.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", b.node, "proxy", "stats", "summary").DoRaw(ctx)
		if err != nil {
			return false, err.Error()
		}
		if got, err = parseSummary(raw); err != nil {
			return false, err.Error()
		}
		for _, k := range keys {
			m, ok := got[k]
			if !ok {
				return false, "no memory sample of " + k
			}
			if !m.Time.After(t) {
				return false, fmt.Sprintf("%s sampled at %s", k, m.Time.Format("15:04:05"))
			}
		}
		return true, ""
	})
	return got, err
}

// --- helpers ---

// waitFor polls cond every 100 ms until it holds or within has passed.
func waitFor(ctx context.Context, what string, within time.Duration, cond func() (bool, string)) error {
	deadline := time.Now().Add(within)
	for {
		ok, state := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s: %s", within, what, state)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (%s)", what, ctx.Err(), state)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// prefixWriter sends devsys' lines to stderr with the benchmark's prefix:
// stdout is the Markdown section.
type prefixWriter struct{ prefix string }

func (w prefixWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		fmt.Fprintln(os.Stderr, w.prefix+line)
	}
	return len(p), nil
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func commit() string {
	out, err := exec.Command("git", "describe", "--always", "--dirty", "--exclude", "*").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func machine() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s (%s, %d CPUs, %s)", host, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
}
