package plugin

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
)

func healthyStatus(ingress, dlq int64) *vconv1.ChainStatus {
	at := metav1.NewTime(testNow.Add(-30 * time.Second))
	due := metav1.NewTime(testNow.Add(90 * time.Second))
	since := metav1.NewTime(testNow.Add(-5 * time.Minute))
	return &vconv1.ChainStatus{
		ObservedGeneration: 1,
		Replicas:           2, ReadyReplicas: 2, Workers: "2/2",
		Queue: vconv1.QueueStatus{Ingress: ingress, InFlight: 4, DLQ: dlq, Egress: 7, ObservedAt: &at,
			Retry: 2, NextRetryAt: &due, OldestQueuedSince: &since, StorageDLQ: 6},
		Conditions: []metav1.Condition{
			cond("Ready", true, "Running", "2/2 workers ready"),
			cond("RedisReachable", true, "Measured", "queues measured"),
			cond("DLQEmpty", dlq == 0, "Empty", "no dead-lettered vCons"),
			cond("ScalingLimited", false, "WithinLimits", "demand is within workers.maxReplicas"),
		},
	}
}

func redisDownStatus() *vconv1.ChainStatus {
	st := healthyStatus(3, 0)
	st.Queue.Stale = true
	st.Conditions = []metav1.Condition{
		cond("Ready", false, "RedisUnreachable", "cannot reach the Chain's Redis: dial tcp 10.0.0.9:6379: connect: connection refused"),
		cond("RedisReachable", false, "RedisUnreachable", "cannot measure the queues: dial tcp 10.0.0.9:6379: connect: connection refused"),
	}
	return st
}

var chainSpec = vconv1.ChainSpec{IngressLists: []string{"default"}, EgressLists: []string{"processed"}, Links: []string{"tag"}}

// TestCheck pins monitor.sh's order and messages on summaries (no cluster).
func TestCheck(t *testing.T) {
	sum := func(name string, st *vconv1.ChainStatus) ChainSummary {
		return Summarize(&vconv1.Chain{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Spec: chainSpec, Status: *st})
	}
	th := Thresholds{Queue: 100, DLQ: 0}
	tests := []struct {
		name   string
		chains []ChainSummary
		th     Thresholds
		apiErr error
		want   CheckResult
	}{
		{"all fine", []ChainSummary{sum("a", healthyStatus(100, 0))}, th, nil, CheckResult{0, "OK: All checks passed"}},
		{"queue above threshold", []ChainSummary{sum("a", healthyStatus(101, 0))}, th, nil, CheckResult{1, "WARNING: Queue depth is 101 (threshold: 100)"}},
		{"dlq above threshold", []ChainSummary{sum("a", healthyStatus(0, 1))}, th, nil, CheckResult{1, "WARNING: DLQ has 1 items"}},
		{"dlq within a raised threshold", []ChainSummary{sum("a", healthyStatus(0, 5))}, Thresholds{Queue: 100, DLQ: 5}, nil, CheckResult{0, "OK: All checks passed"}},
		{"queue is checked before dlq", []ChainSummary{sum("a", healthyStatus(500, 9))}, th, nil, CheckResult{1, "WARNING: Queue depth is 500 (threshold: 100)"}},
		{"api health first", []ChainSummary{sum("a", redisDownStatus())}, th, errors.New("down"), CheckResult{2, "CRITICAL: API health check failed"}},
		{"redis unreachable", []ChainSummary{sum("a", redisDownStatus())}, th, nil, CheckResult{2, "CRITICAL: Redis unreachable for chain a: cannot reach the Chain's Redis: dial tcp 10.0.0.9:6379: connect: connection refused"}},
		{"several chains name the worst", []ChainSummary{sum("a", healthyStatus(150, 0)), sum("b", healthyStatus(900, 0)), sum("c", healthyStatus(1, 0))}, th, nil, CheckResult{1, "WARNING: Queue depth is 900 (threshold: 100) (chain ns/b)"}},
		{"critical on any chain beats warnings", []ChainSummary{sum("a", healthyStatus(150, 3)), sum("b", redisDownStatus())}, th, nil, CheckResult{2, "CRITICAL: Redis unreachable (chain ns/b): cannot reach the Chain's Redis: dial tcp 10.0.0.9:6379: connect: connection refused"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Check(tc.chains, tc.th, tc.apiErr); got != tc.want {
				t.Errorf("Check = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestStatusCheck runs `status --check` against Chains in a real API server.
func TestStatusCheck(t *testing.T) {
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/health" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(`{"status":"healthy","version":{"version":"dev"}}`))
	}))
	defer healthy.Close()
	unhealthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"unhealthy"}`))
	}))
	defer unhealthy.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL := gone.URL + "/api"
	gone.Close()

	type chainDef struct {
		name   string
		status *vconv1.ChainStatus
	}
	tests := []struct {
		name     string
		chains   []chainDef
		args     []string
		env      map[string]string
		wantCode int
		wantLine string
	}{
		{"ok", []chainDef{{"main", healthyStatus(5, 0)}}, []string{"main"}, nil, 0, "OK: All checks passed"},
		{"queue depth at the threshold is ok", []chainDef{{"main", healthyStatus(100, 0)}}, []string{"main"}, nil, 0, "OK: All checks passed"},
		{"queue depth", []chainDef{{"main", healthyStatus(150, 0)}}, []string{"main"}, nil, 1, "WARNING: Queue depth is 150 (threshold: 100)"},
		{"queue threshold flag", []chainDef{{"main", healthyStatus(11, 0)}}, []string{"main", "--threshold-queue", "10"}, nil, 1, "WARNING: Queue depth is 11 (threshold: 10)"},
		{"dlq", []chainDef{{"main", healthyStatus(5, 3)}}, []string{"main"}, nil, 1, "WARNING: DLQ has 3 items"},
		{"dlq threshold flag", []chainDef{{"main", healthyStatus(5, 3)}}, []string{"main", "--threshold-dlq", "3"}, nil, 0, "OK: All checks passed"},
		{"redis unreachable", []chainDef{{"main", redisDownStatus()}}, []string{"main"}, nil, 2, "CRITICAL: Redis unreachable for chain main: cannot reach the Chain's Redis: dial tcp 10.0.0.9:6379: connect: connection refused"},
		{"not measured yet is not critical", []chainDef{{"main", notMeasuredStatus()}}, []string{"main"}, nil, 0, "OK: All checks passed"},
		{"api healthy", []chainDef{{"main", healthyStatus(5, 2)}}, []string{"main", "--api-url", healthy.URL + "/api"}, nil, 1, "WARNING: DLQ has 2 items"},
		{"api unhealthy", []chainDef{{"main", healthyStatus(5, 2)}}, []string{"main", "--api-url", unhealthy.URL + "/api"}, nil, 2, "CRITICAL: API health check failed"},
		{"api unreachable", []chainDef{{"main", healthyStatus(5, 0)}}, []string{"main", "--api-url", goneURL}, nil, 2, "CRITICAL: API health check failed"},
		{"api url from env API_URL", []chainDef{{"main", healthyStatus(5, 0)}}, []string{"main"}, map[string]string{"API_URL": unhealthy.URL + "/api"}, 2, "CRITICAL: API health check failed"},
		{"chain not found", []chainDef{{"main", healthyStatus(5, 0)}}, []string{"nope"}, nil, 2, `CRITICAL: chain "nope" not found in namespace`},
		{"all chains of the namespace", []chainDef{{"a", healthyStatus(5, 0)}, {"b", healthyStatus(300, 0)}}, nil, nil, 1, "WARNING: Queue depth is 300 (threshold: 100) (chain "},
		{"empty namespace", nil, nil, nil, 2, "CRITICAL: no Chains found in namespace"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ns := namespace(t)
			for _, c := range tc.chains {
				createChain(t, ns, c.name, chainSpec, c.status)
			}
			inv := invocation{kubeconfig: admin(t), env: tc.env}
			args := append([]string{"status", "--check", "-n", ns}, tc.args...)
			res := inv.run(t, args...)
			if res.code != tc.wantCode {
				t.Errorf("exit code %d, want %d (stdout %q, stderr %q)", res.code, tc.wantCode, res.out, res.errOut)
			}
			lines := strings.Split(strings.TrimRight(res.out, "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], tc.wantLine) {
				t.Errorf("stdout %q, want one line starting %q", res.out, tc.wantLine)
			}
			if res.errOut != "" {
				t.Errorf("stderr %q, want nothing", res.errOut)
			}
		})
	}
}

// TestStatusShow checks the human summary and the -o yaml|json list.
func TestStatusShow(t *testing.T) {
	ns := namespace(t)
	createChain(t, ns, "main", chainSpec, healthyStatus(12, 3))
	createChain(t, ns, "flaky", chainSpec, redisDownStatus())
	limited := healthyStatus(3000, 0)
	for i, c := range limited.Conditions {
		if c.Type == string(vconv1.ConditionScalingLimited) {
			limited.Conditions[i] = cond("ScalingLimited", true, vconv1.ReasonLinkLimit, "link summarize's limit of 600 requests/min binds: it can use 2 workers, the queue wants 10; raise the Link's limits to scale further")
		}
	}
	createChain(t, ns, "limited", chainSpec, limited)
	inv := invocation{kubeconfig: admin(t)}

	t.Run("human", func(t *testing.T) {
		res := inv.run(t, "status", "main", "-n", ns)
		if res.code != 0 {
			t.Fatalf("exit %d: %s", res.code, res.errOut)
		}
		for _, want := range []string{
			"Chain " + ns + "/main",
			"Ready:    True (Running): 2/2 workers ready",
			"ingress 12  in-flight 4  DLQ 3  egress 7",
			"figures last changed 30s ago",
			"oldest waiting vCon queued 5m ago",
			"2 waiting for a retry (holding no worker), next due in 90s",
			"kubectl vcon dlq list main -n " + ns,
			"6 failed storage writes waiting for a replay: kubectl vcon dlq list main -n " + ns + " --storage NAME",
			"Workers:  2/2 ready (min 0, max 10)",
			"RedisReachable",
			"ScalingLimited",
		} {
			if !strings.Contains(res.out, want) {
				t.Errorf("output lacks %q:\n%s", want, res.out)
			}
		}
	})
	t.Run("human, limited by a link", func(t *testing.T) {
		res := inv.run(t, "status", "limited", "-n", ns)
		want := "Scaling:  limited (LinkLimit): link summarize's limit of 600 requests/min binds: it can use 2 workers"
		if res.code != 0 || !strings.Contains(res.out, want) {
			t.Fatalf("exit %d, output lacks %q:\n%s%s", res.code, want, res.out, res.errOut)
		}
		if main := inv.run(t, "status", "main", "-n", ns); strings.Contains(main.out, "Scaling:") {
			t.Errorf("a Chain within its limits shows a Scaling line:\n%s", main.out)
		}
	})
	t.Run("human stale", func(t *testing.T) {
		res := inv.run(t, "status", "flaky", "-n", ns)
		if res.code != 0 {
			t.Fatalf("exit %d: %s", res.code, res.errOut)
		}
		for _, want := range []string{"Ready:    False (RedisUnreachable)", "STALE: Redis could not be reached; last known figures, from 30s ago"} {
			if !strings.Contains(res.out, want) {
				t.Errorf("output lacks %q:\n%s", want, res.out)
			}
		}
	})
	for _, format := range []string{"json", "yaml"} {
		t.Run(format, func(t *testing.T) {
			res := inv.run(t, "status", "-n", ns, "-o", format)
			if res.code != 0 {
				t.Fatalf("exit %d: %s", res.code, res.errOut)
			}
			var got []ChainSummary
			var err error
			if format == "json" {
				err = json.Unmarshal([]byte(res.out), &got)
			} else {
				err = yaml.Unmarshal([]byte(res.out), &got)
			}
			if err != nil {
				t.Fatalf("output is not %s: %v\n%s", format, err, res.out)
			}
			if len(got) != 3 || got[0].Name != "flaky" || got[1].Name != "limited" || got[2].Name != "main" {
				t.Fatalf("want chains flaky, limited and main, got %+v", got)
			}
			m := got[2]
			if m.Queue.Retry != 2 || m.Queue.NextRetryAt == nil || m.Queue.OldestQueuedSince == nil {
				t.Errorf("main's retries and age summarised as %+v", m.Queue)
			}
			if m.Queue.Ingress != 12 || m.Queue.DLQ != 3 || m.Queue.StorageDLQ != 6 || m.Queue.InFlight != 4 || m.Queue.Egress != 7 || m.Ready.Status != "True" || m.Workers.Ready != 2 || len(m.Conditions) != 4 {
				t.Errorf("main summarised as %+v", m)
			}
			if !got[0].Queue.Stale || got[0].Ready.Reason != "RedisUnreachable" {
				t.Errorf("flaky summarised as %+v", got[0])
			}
		})
	}
}

// TestErrors: every failure is one line on stderr and a non-zero exit.
func TestErrors(t *testing.T) {
	ns := namespace(t)
	missing := t.TempDir() + "/no-such-kubeconfig"
	pushNS := namespace(t)
	createChain(t, pushNS, "main", vconv1.ChainSpec{IngressLists: []string{"default"}}, nil)
	pushDir, _ := vconDir(t)
	tests := []struct {
		name string
		inv  invocation
		args []string
		want string
	}{
		{"unknown output format", invocation{kubeconfig: admin(t)}, []string{"status", "-n", ns, "-o", "wide"}, `error: unknown output format "wide": use -o yaml or -o json or no -o`},
		{"check with -o", invocation{kubeconfig: admin(t)}, []string{"status", "--check", "-o", "json"}, "error: --check prints one line; leave out -o"},
		{"chain not found", invocation{kubeconfig: admin(t)}, []string{"status", "nope", "-n", ns}, `error: chain "nope" not found in namespace ` + ns},
		{"no chains", invocation{kubeconfig: admin(t)}, []string{"status", "-n", ns}, "error: no Chains found in namespace " + ns},
		{"unreadable kubeconfig", invocation{kubeconfig: missing}, []string{"status"}, "error: load kubeconfig:"},
		{"unknown context", invocation{kubeconfig: admin(t)}, []string{"status", "--context", "elsewhere"}, "error: load kubeconfig:"},
		{"missing argument", invocation{kubeconfig: admin(t)}, []string{"dlq", "list"}, "error: name the Chain: kubectl vcon dlq list CHAIN"},
		{"unknown command", invocation{}, []string{"frobnicate"}, `error: unknown command "frobnicate"`},
		{"unknown flag", invocation{}, []string{"status", "--frob"}, "error: unknown flag: --frob"},
		{"push without a destination", invocation{kubeconfig: admin(t)}, []string{"push", "main", pushDir, "-n", pushNS}, "error: say where to push: no vcon-operator API Service in namespace vcon-system"},
		{"import of a missing file", invocation{}, []string{"import", "/nonexistent/conserver.yml"}, "error: read /nonexistent/conserver.yml:"},
		{"import of a broken file", invocation{stdin: "links: [\n"}, []string{"import", "-"}, "error: - is not a conserver config:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := tc.inv.run(t, tc.args...)
			if res.code == 0 {
				t.Fatalf("exit 0, want non-zero (stdout %q)", res.out)
			}
			if strings.Count(res.errOut, "\n") != 1 || !strings.HasPrefix(res.errOut, tc.want) {
				t.Errorf("stderr %q, want one line starting %q", res.errOut, tc.want)
			}
		})
	}
}

// notMeasuredStatus is a Chain's status before the operator's first poll:
// what it cannot know yet is Unknown.
func notMeasuredStatus() *vconv1.ChainStatus {
	unknown := func(typ, msg string) metav1.Condition {
		c := cond(typ, false, "NotMeasured", msg)
		c.Status = metav1.ConditionUnknown
		return c
	}
	return &vconv1.ChainStatus{Conditions: []metav1.Condition{
		unknown("RedisReachable", "the queues have not been measured yet"),
		unknown("DLQEmpty", "the dead-letter lists have not been measured yet"),
	}}
}
