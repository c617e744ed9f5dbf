package main

import (
	"bytes"
	"fmt"
	"slices"
	"time"
)

type report struct {
	set          settings
	warm         warmUpResult
	cold         []coldTry
	bursts       []burstTry
	mem          []memRow
	node, image  string
	upIn, total  time.Duration
	load0, load1 string
}

func (r report) markdown() []byte {
	var out bytes.Buffer
	w := func(format string, a ...any) { fmt.Fprintf(&out, format, a...) }
	col := func(f func(coldTry) time.Duration) []time.Duration {
		var ds []time.Duration
		for _, t := range r.cold {
			ds = append(ds, f(t))
		}
		return sortedCopy(ds)
	}
	egress := col(func(t coldTry) time.Duration { return t.egress })
	replicas := col(func(t coldTry) time.Duration { return t.replicas })
	// Only the tries whose pod was ever Ready (see coldTry.ready).
	ready := slices.DeleteFunc(col(func(t coldTry) time.Duration { return t.ready }), func(d time.Duration) bool { return d == 0 })
	neverReady := len(r.cold) - len(ready)
	created := col(func(t coldTry) time.Duration { return t.created })
	running := col(func(t coldTry) time.Duration { return t.running })
	zero := col(func(t coldTry) time.Duration { return t.zero })
	gone := col(func(t coldTry) time.Duration { return t.gone })
	med := func(s []time.Duration) time.Duration { return s[medianIndex(len(s))] }
	// The median try: the one whose time to egress is the median.
	medTry := slices.IndexFunc(r.cold, func(t coldTry) bool { return t.egress == med(egress) })
	mt := r.cold[medTry]

	w("## Real pods\n\n")
	w("Run %s at %s on %s; load average %s at the start, %s at the end. ",
		time.Now().UTC().Format("2006-01-02"), commit(), machine(), r.load0, r.load1)
	w("internal/devsys brought up this machine's single-node Kubernetes (node %s: kubelet + containerd, real pods), "+
		"Redis on the node's address and `helm install` of charts/vcon-operator (operator and API as pods, image %s) in %v (image build, waiting for the machine's cluster lock, bring-up, install); "+
		"no PostgreSQL, no Prometheus. The operator polls the queues every %v, the chart's default `operator.queuePollInterval`. "+
		"The benchmark drives the system from outside, as a user: vCons are POSTed to the API's Service (`/api/vcon?ingress_lists=`), "+
		"Chains and Links are created with the API server, and the egress lists are read from Redis. The measurements took %v once the system was up.\n\n",
		r.node, r.image, r.upIn.Round(time.Second), queuePoll, (r.total - r.upIn).Round(time.Second))

	if r.warm.failures > 0 {
		w("Before the measurements the API answered %d POSTs with an error over %v (first: %s) before it stored one; "+
			"the benchmark waits for a 201 on a list no Chain reads before it times anything.\n\n", r.warm.failures, round(r.warm.took), r.warm.first)
	} else {
		w("Before the measurements one POST to a list no Chain reads checked the path: 201 at once.\n\n")
	}
	w("| measure | result | target |\n|---|---:|---|\n")
	w("| cold start, 0 pods → one vCon POSTed until its uuid is on egress, p50 | **%v** | |\n", round(med(egress)))
	w("| cold start, p95 | **%v** | < 5 s |\n", round(percentile(egress, 0.95)))
	w("| cold start, max (of %d) | %v | |\n", len(egress), round(egress[len(egress)-1]))
	w("| cold start, median of each step: POST → Deployment replicas 1 (operator) | %v | at most one poll, %v |\n", round(med(replicas)), queuePoll)
	w("| … POST → worker pod created (Deployment and ReplicaSet controllers) | %v | |\n", round(med(created)))
	w("| … POST → worker container running | %v | |\n", round(med(running)))
	w("| … POST → on egress | %v | |\n", round(med(egress)))
	if len(ready) > 0 {
		w("| … POST → worker pod Ready (startup probe every 1 s), of the %d tries whose pod was ever Ready | %v | |\n", len(ready), round(med(ready)))
	}
	w("| tries whose pod was removed before it was ever Ready | %d of %d | |\n", neverReady, len(r.cold))
	w("| after the vCon: Deployment back at replicas 0, median | %v | scaleDownDelay %v + a poll |\n", round(med(zero)), scaleDownDelay)
	w("| after the vCon: no worker pod left, median | %v | |\n", round(med(gone)))
	for i, b := range r.bursts {
		w("| burst %d of %d vCons: push → Deployment replicas %d; → %d pods Ready | %v; **%v** | |\n",
			i+1, r.set.burstSize, burstMaxReplicas, burstMaxReplicas, round(b.replicas), round(b.ready))
	}
	w("\n")

	w("| pod (as the kubelet's stats/summary reports it) | idle: working set / RSS | after %d vCons: working set / RSS |\n|---|---:|---:|\n", r.set.load)
	for _, m := range r.mem {
		w("| %s | %.1f / %.1f MiB | **%.1f** / %.1f MiB |\n", m.what, mib(m.idle.WorkingSet), mib(m.idle.RSS), mib(m.after.WorkingSet), mib(m.after.RSS))
	}
	w("\n")

	w("**Cold start.** A Chain (`%s`: links.tag only, no storage, one egress list; workers minReplicas 0, maxReplicas %d, "+
		"targetQueueDepth %d, concurrency 4, scaleDownDelay %v) idle at 0 replicas with no pod left; one vCon is POSTed and Redis is polled "+
		"every 20 ms (LPOS) for its uuid on the egress list; then the benchmark waits until the Deployment says 0 and the pod is gone, and goes again. "+
		"The steps come from watches on the worker Deployment (spec.replicas) and its pods (the Ready condition) opened before the POST; "+
		"times are when this process saw the event. The median try (egress %v): replicas 1 at %v, pod created at %v, container running at %v, pod Ready at %v (0s: never). ",
		coldChain, coldMaxReplicas, targetQueueDepth, scaleDownDelay, round(mt.egress), round(mt.replicas), round(mt.created), round(mt.running), round(mt.ready))
	w("The worker takes vCons as soon as its process runs, so the vCon is usually through before the kubelet marks the pod Ready: "+
		"its startup probe asks /readyz every second until the first success (the readiness probe, every 5 s, takes over after), "+
		"and the kubelet's status update follows. With scaleDownDelay %v an idle pod may still be removed before it was ever Ready; "+
		"nothing waits on that readiness (the worker is no Service endpoint), but it is what a user sees in `kubectl get pods`.\n\n", scaleDownDelay)
	w("- POST → on egress, sorted: %s.\n", joinDurations(egress))
	w("- POST → Deployment replicas 1, sorted: %s.\n", joinDurations(replicas))
	w("- POST → container running, sorted: %s.\n", joinDurations(running))
	w("- POST → pod Ready, sorted (the %d tries whose pod was Ready): %s.\n", len(ready), joinDurations(ready))
	w("- on egress → no pod left, sorted: %s.\n\n", joinDurations(gone))

	w("**Burst.** A second Chain (`%s`: links.tag, then links.webhook to a receiver on the node's address that answers each vCon after %v; "+
		"maxReplicas %d, targetQueueDepth %d, concurrency 1) idle at 0 pods gets %d vCons POSTed by 32 clients at once; "+
		"the autoscaler wants ceil(%d / %d) capped at %d pods. The clock starts with the first POST. Per try:\n\n",
		burstChain, r.set.sinkDelay, burstMaxReplicas, targetQueueDepth, r.set.burstSize, r.set.burstSize, targetQueueDepth, burstMaxReplicas)
	w("| try | all POSTed | Deployment replicas 1, 2, …, %d | %d pods Ready | all on egress | then no pod left |\n|---|---:|---|---:|---:|---:|\n", burstMaxReplicas, burstMaxReplicas)
	for i, b := range r.bursts {
		w("| %d | %v | %s | %v | %v | %v |\n", i+1, round(b.pushed), joinDurations(b.firstReplicas), round(b.ready), round(b.drained), round(b.gone))
	}
	w("\n")

	w("**Memory.** GET /api/v1/nodes/%s/proxy/stats/summary through the API server: each pod's containers' memory "+
		"workingSetBytes and rssBytes (cgroup figures from the kubelet, summed over the pod's containers), in MiB. "+
		"Idle: the Chain `%s` at minReplicas 1, a sample taken after its pod was Ready. After: the first sample taken after %d more vCons "+
		"went through the API to that Chain's egress (up to %d pods may run for it, so this pod handled all or part of them). Both are the current "+
		"figures at the sample, not peaks; RSS here is the cgroup's anonymous memory, so it leaves out the binary's file-backed pages "+
		"that a process's VmRSS counts. Raw bytes (working set / RSS, sample time):\n\n",
		r.node, coldChain, r.set.load, coldMaxReplicas)
	for _, m := range r.mem {
		w("- %s `%s`: idle %d / %d (%s), after %d / %d (%s).\n", m.what, m.pod,
			m.idle.WorkingSet, m.idle.RSS, m.idle.Time.UTC().Format("15:04:05"),
			m.after.WorkingSet, m.after.RSS, m.after.Time.UTC().Format("15:04:05"))
	}
	w("\n")

	w("For comparison, KEDA's defaults (not measured here): its Redis lists scaler polls every 30 s, so a vCon pushed to a Chain "+
		"at zero pods waits up to 30 s before the first pod is even asked for, then the same pod start as here; beyond one pod the HPA acts "+
		"at its 15 s sync, and scale-down waits its 5 min stabilisation. Here the operator asks for the pod at its next %v poll, "+
		"sets N replicas in the same reconcile, and removes pods once demand has been lower for scaleDownDelay.\n", queuePoll)
	w("Reproduce: `go run ./hack/bench/pods` (root; it takes the machine's cluster lock, waiting while another run holds it). " +
		"Settings: BENCH_COLD_TRIES, BENCH_BURST_TRIES, BENCH_BURST_SIZE, BENCH_SINK_DELAY, BENCH_LOAD.\n")
	return out.Bytes()
}
