package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// TestPoisonPillKillsAtMostMaxDeliveries: one vCon whose processing needs
// more memory than the worker process may map, among 300 normal ones. Each
// worker that runs it dies in the Go runtime ("fatal error: out of
// memory"), as a pod does in the OOM killer; a supervisor restarts the
// worker as the kubelet would. The vCon is dead-lettered with reason
// redelivery_limit after three deaths, no restart more than that is
// caused by it, and every normal vCon reaches egress exactly once: the
// ones that shared a worker with it are not blamed for its deaths.
func TestPoisonPillKillsAtMostMaxDeliveries(t *testing.T) {
	srv := testenv.StartRedis(t)
	rdb := srv.Client()
	ctx := context.Background()
	const in, out, normal = "poison-in", "poison-out", 300
	uuids := enqueue(t, rdb, in, normal, 2000)
	// The poison pill: an ordinary vCon whose subject makes the chain's jq
	// filter build a list of 10^8 numbers (gigabytes), queued among the
	// first. Its body is small: the worker reads it, as it reads any body
	// (bounded by VCON_MAX_BODY_BYTES), and dies only processing it.
	poison := testUUID(normal + 1)
	doc := `{"vcon":"0.0.1","uuid":"` + poison + `","created_at":"2024-03-05T10:00:00Z","subject":"poison","parties":[],"dialog":[]}`
	if err := rdb.Set(ctx, vconstore.Key(poison), doc, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.LInsert(ctx, in, "AFTER", uuids[3], poison).Err(); err != nil {
		t.Fatal(err)
	}
	// The poison pill's neighbours take 1.5 s in a webhook, so they are in
	// flight when it kills their worker: the test of who is blamed.
	slow := map[string]bool{}
	for _, u := range uuids[:8] {
		slow[u] = true
	}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v struct{ UUID string }
		_ = json.NewDecoder(r.Body).Decode(&v)
		if slow[v.UUID] {
			time.Sleep(1500 * time.Millisecond)
		}
	}))
	defer hook.Close()
	cfg := writeConfig(t, `
links:
  tagger: {module: links.tag, options: {tags: [survived]}}
  slowhook: {module: links.webhook, options: {webhook-urls: [`+hook.URL+`]}}
  explode:
    module: links.jq_link
    options: {filter: 'if .subject == "poison" then ([range(0; 100000000)] | length > 0) else true end'}
chains:
  main: {links: [tagger, slowhook, explode], ingress_lists: [poison-in], egress_lists: [poison-out], max_deliveries: 3}
`)

	wrap := addressSpaceLimit(t, cfg, srv.URL(), 256<<20)
	deaths := 0
	overall := time.Now().Add(4 * time.Minute)
	for run := 0; ; run++ {
		w := startWorkerWrapped(t, wrap, cfg, srv.URL(), "--worker-id", fmt.Sprintf("poison-%d", run), "--heartbeat-ttl", "1s", "--concurrency", "4")
		for {
			d, err := queue.ReapAndMeasure(ctx, rdb, []queue.Target{{Ingress: []string{in}, Egress: []string{out}}})
			finished := err == nil && d[0].Ingress == 0 && d[0].InFlight == 0
			select {
			case <-w.exited:
				deaths++
				if logs, _ := os.ReadFile(w.logs); !diedOfMemory(string(logs)) {
					t.Fatalf("worker %d died, not of memory: %v\n%s\n%s", run, w.err, fatalLines(string(logs)), w.logTail())
				}
				t.Logf("worker %d died of the poison pill (out of memory)", run)
			default:
			}
			if deaths > run {
				break
			}
			if finished {
				w.kill()
				goto done
			}
			if time.Now().After(overall) {
				t.Fatalf("not finished: %d deaths, %+v\n%s", deaths, d, w.logTail())
			}
			time.Sleep(50 * time.Millisecond)
		}
		if deaths > 3 {
			t.Fatalf("the poison pill killed %d workers, want at most 3", deaths)
		}
	}
done:
	if deaths != 3 {
		t.Errorf("%d workers died, want exactly 3 (max_deliveries)", deaths)
	}
	dlq := rdb.LRange(ctx, queue.DLQKey(in), 0, -1).Val()
	if len(dlq) != 1 || dlq[0] != poison {
		t.Fatalf("DLQ = %d entries %v, want the poison pill alone", len(dlq), dlq[:min(len(dlq), 5)])
	}
	r, _ := queue.Reasons(ctx, rdb, in, dlq)
	if !strings.HasPrefix(r[poison].Reason, "redelivery_limit: delivered 3 times without an outcome") {
		t.Errorf("reason %q", r[poison].Reason)
	}
	egress := rdb.LRange(ctx, out, 0, -1).Val()
	seen := map[string]int{}
	for _, u := range egress {
		seen[u]++
	}
	for _, u := range uuids {
		if seen[u] != 1 {
			t.Errorf("normal vCon %s reached egress %d times, want once", u, seen[u])
		}
	}
	t.Logf("%d normal vCons on egress once each, the poison pill dead-lettered after %d deaths", len(seen), deaths)
}

// addressSpaceLimit is a prlimit(1) prefix that caps a worker's address
// space at what an idle worker maps plus extra: the Go runtime then dies of
// "out of memory" on an allocation past it, as a pod past its memory limit
// is killed. The idle worker is measured first (its mapping depends on the
// machine), in a config with no work for it.
func addressSpaceLimit(t *testing.T, cfg, redisURL string, extra uint64) []string {
	t.Helper()
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Fatal("prlimit (util-linux) is needed to cap the worker's memory: apt-get install util-linux")
	}
	probe := startWorker(t, writeConfig(t, `
links:
  tagger: {module: links.tag, options: {tags: [probe]}}
chains:
  probe: {links: [tagger], ingress_lists: [probe-in]}
`), redisURL, "--worker-id", "probe", "--concurrency", "4")
	probe.waitReady(60 * time.Second)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", probe.cmd.Process.Pid))
	probe.kill()
	if err != nil {
		t.Fatal(err)
	}
	var vmKB uint64
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmSize:" {
			vmKB, _ = strconv.ParseUint(f[1], 10, 64)
		}
	}
	if vmKB == 0 {
		t.Fatal("no VmSize for the idle worker")
	}
	limit := vmKB<<10 + extra
	t.Logf("worker address space capped at %d MiB (idle %d MiB)", limit>>20, vmKB>>10)
	return []string{prlimit, fmt.Sprintf("--as=%d", limit), "--"}
}

// diedOfMemory says whether a worker's log ends in the Go runtime's own
// death by memory exhaustion under the address-space cap. Which allocation
// hits the cap first varies: the heap ("fatal error: out of memory",
// "runtime: out of memory", "cannot map pages in arena address space"), a
// new thread's stack ("failed to create new OS thread ... errno=12", then
// "fatal error: newosproc"), or another mmap ("cannot allocate memory"):
// the messages of the runtime's throws (src/runtime).
func diedOfMemory(logs string) bool {
	if !strings.Contains(logs, "fatal error: ") {
		return false
	}
	for _, sign := range []string{"out of memory", "cannot map pages in arena address space", "errno=12", "cannot allocate memory"} {
		if strings.Contains(logs, sign) {
			return true
		}
	}
	return false
}

// fatalLines are the runtime's "fatal error:" and "runtime:" lines of a
// log, which its tail (a goroutine dump) does not show.
func fatalLines(logs string) string {
	var out []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.HasPrefix(l, "fatal error: ") || strings.HasPrefix(l, "runtime: ") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
