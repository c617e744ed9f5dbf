package devsys

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vcon-operator/vcon-operator/internal/workload"
)

// Runner plays the kubelet for the operator's worker Deployments, and only
// for them: for each Deployment labelled app.kubernetes.io/name=vcon-worker
// it keeps spec.replicas bin/conserver processes running with the pod
// template's args and environment, stops extra ones with SIGTERM and the
// pod's grace period, restarts ones that die (with backoff), rolls all of
// them when the template's config hash changes, and writes the
// Deployment's status the way the Deployment controller would.
type Runner struct {
	Client    client.Client
	Conserver string // path of bin/conserver
	StateDir  string // chain configs go to StateDir/chains/<ns>/<chain>/, logs to StateDir/logs/workers/
	// TargetsFile is the Prometheus file_sd file listing every running
	// worker's metrics address.
	TargetsFile string
	Interval    time.Duration // how often Deployments are listed (default 500ms)
	Log         logr.Logger
	// onStart is told the pid of every process started (leak checks).
	onStart func(*proc)

	ports portAllocator
	mu    sync.Mutex
	deps  map[types.NamespacedName]*deployment
	// terminating are processes told to stop, waited for in the background.
	terminating sync.WaitGroup
	lastTargets string
}

// deployment is what the runner runs for one Deployment.
type deployment struct {
	key      types.NamespacedName
	chain    string
	hash     string // template identity the slots run
	slots    []*slot
	lastErr  string
	status   appsv1.DeploymentStatus
	statusOK bool
	// stopping: processes of this Deployment that were told to stop.
	stopping []*slot
}

// slot is one replica: the process running for it and its restart state.
type slot struct {
	index    int
	hash     string
	proc     *proc
	port     int
	spec     procSpec
	grace    time.Duration
	ready    bool
	started  time.Time
	restarts int
	nextTry  time.Time
}

// Worker describes one running worker process (for tests and the targets file).
type Worker struct {
	Namespace, Chain, Pod string
	PID, Port             int
	Ready                 bool
	Restarts              int
}

// Run reconciles until ctx ends, then stops every worker gracefully.
func (r *Runner) Run(ctx context.Context) error {
	if r.Interval <= 0 {
		r.Interval = 500 * time.Millisecond
	}
	r.mu.Lock()
	r.deps = map[types.NamespacedName]*deployment{}
	r.mu.Unlock()
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	for {
		if err := r.syncOnce(ctx); err != nil && ctx.Err() == nil {
			r.Log.Info("runner: list deployments failed; retrying", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			r.stopAll()
			return nil
		case <-t.C:
		}
	}
}

// Workers lists the running worker processes.
func (r *Runner) Workers() []Worker {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Worker
	for _, d := range r.deps {
		for _, s := range d.slots {
			if s.proc != nil && s.proc.running() {
				out = append(out, Worker{Namespace: d.key.Namespace, Chain: d.chain, Pod: podName(d.key.Name, s.index),
					PID: s.proc.pid(), Port: s.port, Ready: s.ready, Restarts: s.restarts})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pod < out[j].Pod })
	return out
}

func podName(deployment string, i int) string { return deployment + "-" + strconv.Itoa(i) }

func (r *Runner) syncOnce(ctx context.Context) error {
	var list appsv1.DeploymentList
	if err := r.Client.List(ctx, &list, client.MatchingLabels{workload.LabelName: workload.WorkerName}); err != nil {
		return err
	}
	seen := map[types.NamespacedName]bool{}
	for i := range list.Items {
		dep := &list.Items[i]
		key := types.NamespacedName{Namespace: dep.Namespace, Name: dep.Name}
		seen[key] = true
		r.mu.Lock()
		d := r.deps[key]
		if d == nil {
			d = &deployment{key: key}
			r.deps[key] = d
		}
		r.mu.Unlock()
		r.reconcile(ctx, dep, d)
	}
	r.mu.Lock()
	var gone []*deployment
	for key, d := range r.deps {
		if !seen[key] {
			gone = append(gone, d)
			delete(r.deps, key)
		}
	}
	r.mu.Unlock()
	for _, d := range gone {
		r.Log.Info("runner: deployment deleted; stopping its workers", "deployment", d.key.String())
		for _, s := range d.slots {
			r.stopSlot(s)
		}
	}
	r.writeTargets()
	return nil
}

func (r *Runner) reconcile(ctx context.Context, dep *appsv1.Deployment, d *deployment) {
	want := int32(1)
	if dep.Spec.Replicas != nil {
		want = *dep.Spec.Replicas
	}
	d.chain = dep.Labels[workload.LabelChain]
	if d.chain == "" {
		d.chain = strings.TrimSuffix(dep.Name, "-worker")
	}
	hash := templateHash(dep)

	// Resolve the process to run only when something needs starting; the
	// Secrets and ConfigMap are read at that moment, as a kubelet would.
	var spec *procSpec
	var grace time.Duration
	resolve := func() bool {
		if spec != nil {
			return true
		}
		s, g, err := r.processFor(ctx, dep, d)
		if err != nil {
			if msg := err.Error(); msg != d.lastErr {
				r.Log.Info("runner: cannot start workers", "deployment", d.key.String(), "error", msg)
				d.lastErr = msg
			}
			return false
		}
		d.lastErr = ""
		spec, grace = &s, g
		return true
	}

	r.mu.Lock()
	// Roll: a new template replaces every process (the new ones start at
	// once, the old ones finish their vCons and stop: maxUnavailable 0).
	if d.hash != hash {
		if d.hash != "" {
			r.Log.Info("runner: pod template changed; restarting workers", "deployment", d.key.String())
		}
		old := d.slots
		d.slots = nil
		d.hash = hash
		r.mu.Unlock()
		for _, s := range old {
			r.stopSlot(s)
		}
		r.mu.Lock()
	}
	// Scale down: the highest indexes go first.
	var extra []*slot
	for len(d.slots) > int(want) {
		extra = append(extra, d.slots[len(d.slots)-1])
		d.slots = d.slots[:len(d.slots)-1]
	}
	for len(d.slots) < int(want) {
		d.slots = append(d.slots, &slot{index: len(d.slots), hash: hash})
	}
	slots := append([]*slot(nil), d.slots...)
	r.mu.Unlock()
	for _, s := range extra {
		r.stopSlot(s)
	}

	now := time.Now()
	for _, s := range slots {
		if s.proc != nil && s.proc.running() {
			continue
		}
		if s.proc != nil { // it died
			r.Log.Info("runner: worker exited; restarting with backoff", "pod", podName(d.key.Name, s.index), "error", fmt.Sprint(s.proc.err), "restarts", s.restarts+1)
			r.ports.release(s.port)
			r.mu.Lock()
			s.proc = nil
			s.ready = false
			if now.Sub(s.started) > 30*time.Second {
				s.restarts = 0 // it ran a while: no backoff
			}
			s.restarts++
			s.nextTry = now.Add(backoff(s.restarts))
			r.mu.Unlock()
		}
		if now.Before(s.nextTry) || !resolve() {
			continue
		}
		r.startSlot(d, s, *spec, grace)
	}
	r.probe(slots)
	r.writeStatus(ctx, dep, d, hash)
}

// backoff after the n-th consecutive failure: 0.5s, 1s, 2s … 20s (the
// kubelet's CrashLoopBackOff, shortened for a laptop).
func backoff(n int) time.Duration {
	d := 250 * time.Millisecond << min(n, 7)
	return min(d, 20*time.Second)
}

func (r *Runner) startSlot(d *deployment, s *slot, spec procSpec, grace time.Duration) {
	port, err := r.ports.get(0)
	if err != nil {
		r.Log.Error(err, "runner: no port for a worker")
		return
	}
	pod := podName(d.key.Name, s.index)
	spec.name = "worker " + pod
	spec.log = filepath.Join(r.StateDir, "logs", "workers", d.key.Namespace, pod+".log")
	spec.args = withHTTPAddr(spec.args, "127.0.0.1:"+strconv.Itoa(port))
	spec.env = append(spec.env, "HOSTNAME="+pod, "POD_NAME="+pod, "POD_NAMESPACE="+d.key.Namespace)
	p, err := startProc(spec)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.ports.release(port)
		s.restarts++
		s.nextTry = time.Now().Add(backoff(s.restarts))
		r.Log.Error(err, "runner: start worker", "pod", pod)
		return
	}
	s.proc, s.port, s.spec, s.grace, s.started, s.ready = p, port, spec, grace, time.Now(), false
	if r.onStart != nil {
		r.onStart(p)
	}
}

// stopSlot stops a slot's process in the background with SIGTERM and its
// grace period, then SIGKILL.
func (r *Runner) stopSlot(s *slot) {
	r.mu.Lock()
	p, port, grace := s.proc, s.port, s.grace
	s.proc = nil
	r.mu.Unlock()
	if p == nil {
		return
	}
	r.terminating.Add(1)
	go func() {
		defer r.terminating.Done()
		p.stop(grace)
		r.ports.release(port)
	}()
}

// stopAll stops every worker and waits for them.
func (r *Runner) stopAll() {
	r.mu.Lock()
	var all []*slot
	for _, d := range r.deps {
		all = append(all, d.slots...)
	}
	r.mu.Unlock()
	for _, s := range all {
		r.stopSlot(s)
	}
	r.terminating.Wait()
	_ = os.Remove(r.TargetsFile)
}

// probe asks every running worker's /readyz, as the readiness probe would.
func (r *Runner) probe(slots []*slot) {
	client := &http.Client{Timeout: 500 * time.Millisecond}
	var wg sync.WaitGroup
	for _, s := range slots {
		r.mu.Lock()
		p, port := s.proc, s.port
		r.mu.Unlock()
		if p == nil || !p.running() {
			continue
		}
		wg.Add(1)
		go func(s *slot) {
			defer wg.Done()
			ready := false
			resp, err := client.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/readyz")
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				ready = resp.StatusCode == http.StatusOK
			}
			r.mu.Lock()
			if s.proc == p {
				s.ready = ready && p.running()
			}
			r.mu.Unlock()
		}(s)
	}
	wg.Wait()
}

func (r *Runner) writeStatus(ctx context.Context, dep *appsv1.Deployment, d *deployment, hash string) {
	r.mu.Lock()
	var running, ready, updated int32
	for _, s := range d.slots {
		if s.proc != nil && s.proc.running() {
			running++
			if s.hash == hash {
				updated++
			}
			if s.ready {
				ready++
			}
		}
	}
	r.mu.Unlock()
	st := dep.Status.DeepCopy()
	st.ObservedGeneration = dep.Generation
	st.Replicas = running
	st.ReadyReplicas = ready
	st.AvailableReplicas = ready
	st.UpdatedReplicas = updated
	st.UnavailableReplicas = max(0, desired(dep)-ready)
	if st.ObservedGeneration == dep.Status.ObservedGeneration && st.Replicas == dep.Status.Replicas &&
		st.ReadyReplicas == dep.Status.ReadyReplicas && st.AvailableReplicas == dep.Status.AvailableReplicas &&
		st.UpdatedReplicas == dep.Status.UpdatedReplicas && st.UnavailableReplicas == dep.Status.UnavailableReplicas {
		return
	}
	patch := client.MergeFrom(dep.DeepCopy())
	dep.Status = *st
	if err := r.Client.Status().Patch(ctx, dep, patch); err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
		r.Log.Info("runner: write deployment status failed; retrying next round", "deployment", d.key.String(), "error", err.Error())
	}
}

func desired(dep *appsv1.Deployment) int32 {
	if dep.Spec.Replicas == nil {
		return 1
	}
	return *dep.Spec.Replicas
}

// templateHash identifies what the processes run: the operator's config
// hash annotation, which changes exactly when the config or environment
// does, plus the template's args so that a change the annotation does not
// cover still rolls.
func templateHash(dep *appsv1.Deployment) string {
	b, _ := json.Marshal(dep.Spec.Template.Spec.Containers)
	return dep.Spec.Template.Annotations[workload.AnnotationConfigHash] + "/" + shortHash(b)
}

func (r *Runner) writeTargets() {
	type group struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	groups := []group{}
	for _, w := range r.Workers() {
		groups = append(groups, group{
			Targets: []string{"127.0.0.1:" + strconv.Itoa(w.Port)},
			Labels:  map[string]string{"chain": w.Chain, "namespace": w.Namespace, "pod": w.Pod},
		})
	}
	b, _ := json.MarshalIndent(groups, "", "  ")
	if string(b) == r.lastTargets || r.TargetsFile == "" {
		return
	}
	if err := writeFileAtomic(r.TargetsFile, b, 0o644); err != nil {
		r.Log.Error(err, "runner: write Prometheus targets")
		return
	}
	r.lastTargets = string(b)
}

// processFor turns the Deployment's worker container into a local
// process: /conserver becomes bin/conserver, ConfigMap volume mounts become
// directories under StateDir/chains/<ns>/<chain>/, and env, secretKeyRef,
// configMapKeyRef and envFrom are resolved from the API server.
func (r *Runner) processFor(ctx context.Context, dep *appsv1.Deployment, d *deployment) (procSpec, time.Duration, error) {
	pod := dep.Spec.Template.Spec
	var c *corev1.Container
	for i := range pod.Containers {
		if pod.Containers[i].Name == "worker" {
			c = &pod.Containers[i]
		}
	}
	if c == nil && len(pod.Containers) > 0 {
		c = &pod.Containers[0]
	}
	if c == nil {
		return procSpec{}, 0, fmt.Errorf("pod template has no container")
	}
	ns := dep.Namespace
	cmd := append(append([]string{}, c.Command...), c.Args...)
	if len(cmd) == 0 || filepath.Base(cmd[0]) != "conserver" {
		return procSpec{}, 0, fmt.Errorf("worker container runs %q, the runner only runs /conserver", cmd)
	}

	// Volumes: ConfigMaps are written to files; the mount path is replaced
	// in the args by the local directory.
	chainDir := filepath.Join(r.StateDir, "chains", ns, d.chain)
	mounts := map[string]string{} // mountPath -> local dir
	for _, m := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			if v.Name != m.Name || v.ConfigMap == nil {
				continue
			}
			var cm corev1.ConfigMap
			if err := r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: v.ConfigMap.Name}, &cm); err != nil {
				return procSpec{}, 0, fmt.Errorf("configmap %s/%s: %w", ns, v.ConfigMap.Name, err)
			}
			dir := chainDir
			if len(mounts) > 0 {
				dir = filepath.Join(chainDir, v.Name)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return procSpec{}, 0, err
			}
			for k, val := range cm.Data {
				if err := writeFileAtomic(filepath.Join(dir, k), []byte(val), 0o644); err != nil {
					return procSpec{}, 0, err
				}
			}
			mounts[m.MountPath] = dir
		}
	}
	args := make([]string, 0, len(cmd)-1)
	for _, a := range cmd[1:] {
		for mp, dir := range mounts {
			a = strings.ReplaceAll(a, strings.TrimSuffix(mp, "/")+"/", dir+"/")
		}
		args = append(args, a)
	}

	env, err := r.resolveEnv(ctx, ns, c)
	if err != nil {
		return procSpec{}, 0, err
	}
	grace := 30 * time.Second
	if pod.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	}
	return procSpec{path: r.Conserver, args: args, env: env, dir: chainDir}, grace, nil
}

func (r *Runner) resolveEnv(ctx context.Context, ns string, c *corev1.Container) ([]string, error) {
	secrets := map[string]*corev1.Secret{}
	secret := func(name string) (*corev1.Secret, error) {
		if s, ok := secrets[name]; ok {
			return s, nil
		}
		var s corev1.Secret
		if err := r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &s); err != nil {
			return nil, fmt.Errorf("secret %s/%s: %w", ns, name, err)
		}
		secrets[name] = &s
		return &s, nil
	}
	var env []string
	for _, from := range c.EnvFrom {
		switch {
		case from.SecretRef != nil:
			s, err := secret(from.SecretRef.Name)
			if err != nil {
				if from.SecretRef.Optional != nil && *from.SecretRef.Optional {
					continue
				}
				return nil, err
			}
			for k, v := range s.Data {
				env = append(env, from.Prefix+k+"="+string(v))
			}
		case from.ConfigMapRef != nil:
			var cm corev1.ConfigMap
			if err := r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: from.ConfigMapRef.Name}, &cm); err != nil {
				if from.ConfigMapRef.Optional != nil && *from.ConfigMapRef.Optional {
					continue
				}
				return nil, fmt.Errorf("configmap %s/%s: %w", ns, from.ConfigMapRef.Name, err)
			}
			for k, v := range cm.Data {
				env = append(env, from.Prefix+k+"="+v)
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			s, err := secret(ref.Name)
			if err != nil {
				if ref.Optional != nil && *ref.Optional {
					continue
				}
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
			v, ok := s.Data[ref.Key]
			if !ok {
				if ref.Optional != nil && *ref.Optional {
					continue
				}
				return nil, fmt.Errorf("env %s: secret %s/%s has no key %q", e.Name, ns, ref.Name, ref.Key)
			}
			env = append(env, e.Name+"="+string(v))
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			var cm corev1.ConfigMap
			if err := r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.Name}, &cm); err != nil {
				if ref.Optional != nil && *ref.Optional {
					continue
				}
				return nil, fmt.Errorf("env %s: configmap %s/%s: %w", e.Name, ns, ref.Name, err)
			}
			v, ok := cm.Data[ref.Key]
			if !ok {
				if ref.Optional != nil && *ref.Optional {
					continue
				}
				return nil, fmt.Errorf("env %s: configmap %s/%s has no key %q", e.Name, ns, ref.Name, ref.Key)
			}
			env = append(env, e.Name+"="+v)
		default:
			return nil, fmt.Errorf("env %s: only value, secretKeyRef and configMapKeyRef are supported by the local runner", e.Name)
		}
	}
	return env, nil
}

// withHTTPAddr replaces (or adds) --http-addr.
func withHTTPAddr(args []string, addr string) []string {
	out := make([]string, 0, len(args)+1)
	skipNext := false
	for _, a := range args {
		switch {
		case skipNext:
			skipNext = false
		case a == "--http-addr" || a == "-http-addr":
			skipNext = true
		case strings.HasPrefix(a, "--http-addr=") || strings.HasPrefix(a, "-http-addr="):
		default:
			out = append(out, a)
		}
	}
	return append(out, "--http-addr="+addr)
}
