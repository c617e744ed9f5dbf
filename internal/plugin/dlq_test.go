package plugin

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

const (
	uuidA = "018f3c1e-0000-7000-8000-00000000000a"
	uuidB = "018f3c1e-0000-7000-8000-00000000000b"
	uuidC = "018f3c1e-0000-7000-8000-00000000000c"
)

// TestDLQ lists and replays dead letters in a real redis-server, written
// the way the worker writes them.
func TestDLQ(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	rdb := r.Client()
	ns := namespace(t)
	spec := vconv1.ChainSpec{IngressLists: []string{"default", "priority"}, Redis: vconv1.RedisConnection{URL: r.URL()}}
	createChain(t, ns, "main", spec, nil)

	at := testNow.Add(-2 * time.Hour)
	pipe := rdb.TxPipeline()
	queue.QueueDeadLetter(pipe, queue.Item{List: "default", UUID: uuidA}, queue.DLQReason{Reason: "link jq-filter: jq: error: cannot iterate over null", Chain: "main", Step: "jq-filter", At: at})
	pipe.RPush(ctx, queue.DLQKey("default"), uuidB) // dead-lettered by conserver: no reason recorded
	queue.QueueDeadLetter(pipe, queue.Item{List: "priority", UUID: uuidC}, queue.DLQReason{Reason: "timeout", Chain: "main", At: at})
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	inv := invocation{kubeconfig: admin(t)}

	t.Run("list", func(t *testing.T) {
		res := inv.run(t, "dlq", "list", "main", "-n", ns)
		if res.code != 0 {
			t.Fatalf("exit %d: %s", res.code, res.errOut)
		}
		lines := strings.Split(strings.TrimSpace(res.out), "\n")
		if len(lines) != 4 {
			t.Fatalf("want a header and 3 rows, got:\n%s", res.out)
		}
		for i, want := range [][]string{
			{"INGRESS", "UUID", "AGE", "STEP", "REASON"},
			{"default", uuidA, "120m", "jq-filter", "link jq-filter: jq: error: cannot iterate over null"},
			{"default", uuidB, "-", "-", "(no reason recorded)"},
			{"priority", uuidC, "120m", "-", "timeout"},
		} {
			for _, w := range want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("row %d %q lacks %q", i, lines[i], w)
				}
			}
		}
	})
	t.Run("list one ingress list", func(t *testing.T) {
		res := inv.run(t, "dlq", "list", "main", "-n", ns, "--ingress-list", "priority", "-o", "json")
		var got []DLQEntry
		if err := json.Unmarshal([]byte(res.out), &got); err != nil || res.code != 0 {
			t.Fatalf("exit %d, %v: %s %s", res.code, err, res.out, res.errOut)
		}
		if len(got) != 1 || got[0].UUID != uuidC || got[0].Reason != "timeout" {
			t.Errorf("got %+v", got)
		}
	})
	for _, format := range []string{"json", "yaml"} {
		t.Run("list -o "+format, func(t *testing.T) {
			res := inv.run(t, "dlq", "list", "main", "-n", ns, "-o", format)
			if res.code != 0 {
				t.Fatalf("exit %d: %s", res.code, res.errOut)
			}
			var got []DLQEntry
			var err error
			if format == "json" {
				err = json.Unmarshal([]byte(res.out), &got)
			} else {
				err = yaml.Unmarshal([]byte(res.out), &got)
			}
			if err != nil {
				t.Fatalf("not %s: %v\n%s", format, err, res.out)
			}
			want := []DLQEntry{
				{IngressList: "default", UUID: uuidA, Reason: "link jq-filter: jq: error: cannot iterate over null", Chain: "main", Step: "jq-filter", At: &at},
				{IngressList: "default", UUID: uuidB},
				{IngressList: "priority", UUID: uuidC, Reason: "timeout", Chain: "main", At: &at},
			}
			if len(got) != len(want) {
				t.Fatalf("got %d entries, want %d: %+v", len(got), len(want), got)
			}
			for i := range want {
				g, w := got[i], want[i]
				sameAt := (g.At == nil) == (w.At == nil) && (g.At == nil || g.At.Equal(*w.At))
				g.At, w.At = nil, nil
				if g != w || !sameAt {
					t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
				}
			}
		})
	}
	t.Run("replay some", func(t *testing.T) {
		res := inv.run(t, "dlq", "replay", "main", "-n", ns, "--count", "1")
		if res.code != 0 || !strings.Contains(res.out, "Replayed 1 dead-lettered vCons.") {
			t.Fatalf("exit %d: %s %s", res.code, res.out, res.errOut)
		}
		assertList(t, rdbLRange(t, r, "default"), uuidA)
		assertList(t, rdbLRange(t, r, queue.DLQKey("default")), uuidB)
		if n := rdb.HLen(ctx, queue.DLQReasonsKey("default")).Val(); n != 0 {
			t.Errorf("the replayed uuid's reason is still recorded (%d reasons)", n)
		}
	})
	t.Run("replay the rest", func(t *testing.T) {
		res := inv.run(t, "dlq", "replay", "main", "-n", ns)
		if res.code != 0 || !strings.Contains(res.out, "Replayed 2 dead-lettered vCons.") || !strings.Contains(res.out, "DLQ:priority -> priority: 1 moved") {
			t.Fatalf("exit %d: %s %s", res.code, res.out, res.errOut)
		}
		assertList(t, rdbLRange(t, r, "default"), uuidA, uuidB)
		assertList(t, rdbLRange(t, r, "priority"), uuidC)
		assertList(t, rdbLRange(t, r, queue.DLQKey("priority")))
	})
	t.Run("list empty", func(t *testing.T) {
		res := inv.run(t, "dlq", "list", "main", "-n", ns)
		if res.code != 0 || !strings.Contains(res.out, "No dead-lettered vCons for chain main (DLQ:default, DLQ:priority).") {
			t.Fatalf("exit %d: %s %s", res.code, res.out, res.errOut)
		}
		res = inv.run(t, "dlq", "list", "main", "-n", ns, "-o", "json")
		if strings.TrimSpace(res.out) != "[]" {
			t.Errorf("-o json of an empty DLQ = %q, want []", res.out)
		}
	})
}

func rdbLRange(t *testing.T, r *testenv.Redis, key string) []string {
	t.Helper()
	v, err := r.Client().LRange(context.Background(), key, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func assertList(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Errorf("list = %v, want %v", got, want)
	}
}

// TestRedisURL: where `dlq` finds the Redis, and what it says when it
// cannot; a password in a URL never reaches the output.
func TestRedisURL(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	if err := r.Client().RPush(ctx, queue.DLQKey("in"), uuidA).Err(); err != nil {
		t.Fatal(err)
	}
	ns := namespace(t)
	dead := "redis://:s3cr3t-pass@127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "redis-url"}, StringData: map[string]string{"url": r.URL()}}
	if err := testKube.Client.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	spec := func(url string, ref *corev1.SecretKeySelector) vconv1.ChainSpec {
		return vconv1.ChainSpec{IngressLists: []string{"in"}, Redis: vconv1.RedisConnection{URL: url, URLSecretRef: ref}}
	}
	ref := func(name, key string) *corev1.SecretKeySelector {
		return &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}
	}
	createChain(t, ns, "by-url", spec(r.URL(), nil), nil)
	createChain(t, ns, "by-dead-url", spec(dead, nil), nil)
	createChain(t, ns, "by-secret", spec("", ref("redis-url", "url")), nil)
	createChain(t, ns, "by-missing-secret", spec("", ref("nope", "url")), nil)
	createChain(t, ns, "by-missing-key", spec("", ref("redis-url", "nokey")), nil)
	createChain(t, ns, "by-default", spec("", nil), nil)

	viewer := kubeconfigFor(t, envtest.User{Name: "viewer"})
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chain-viewer"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"vcon.dev"}, Resources: []string{"chains"}, Verbs: []string{"get", "list"}}},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chain-viewer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "chain-viewer"},
		Subjects:   []rbacv1.Subject{{Kind: "User", Name: "viewer", APIGroup: "rbac.authorization.k8s.io"}},
	}
	if err := testKube.Client.Create(ctx, role); err != nil {
		t.Fatal(err)
	}
	if err := testKube.Client.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		kubeconfig string
		chain      string
		env        map[string]string
		flags      []string
		wantErr    string // empty: the DLQ is listed
	}{
		{"spec.redis.url", admin(t), "by-url", nil, nil, ""},
		{"urlSecretRef", admin(t), "by-secret", nil, nil, ""},
		{"env REDIS_URL before the spec", admin(t), "by-dead-url", map[string]string{"REDIS_URL": r.URL()}, nil, ""},
		{"--redis-url before env", admin(t), "by-url", map[string]string{"REDIS_URL": dead}, []string{"--redis-url", r.URL()}, ""},
		{"operator default needs a flag", admin(t), "by-default", nil, nil, "error: chain by-default names no Redis (it uses the operator's default): pass --redis-url or set REDIS_URL"},
		{"secret not readable", viewer, "by-secret", nil, nil, "error: the Chain's Redis URL is in Secret " + ns + "/redis-url, which you may not read: pass --redis-url or set REDIS_URL"},
		{"secret not readable but a flag", viewer, "by-secret", nil, []string{"--redis-url", r.URL()}, ""},
		{"secret missing", admin(t), "by-missing-secret", nil, nil, "error: the Chain's Redis URL Secret " + ns + "/nope does not exist"},
		{"secret key missing", admin(t), "by-missing-key", nil, nil, `error: Secret ` + ns + `/redis-url has no key "nokey"`},
		{"unreachable", admin(t), "by-dead-url", nil, nil, "error: cannot reach Redis at redis://:xxxxx@127.0.0.1:"},
		{"bad url", admin(t), "by-url", nil, []string{"--redis-url", "http://x"}, `error: redis url from --redis-url: redis url: unknown scheme "http"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv := invocation{kubeconfig: tc.kubeconfig, env: tc.env}
			res := inv.run(t, append([]string{"dlq", "list", tc.chain, "-n", ns, "-o", "json"}, tc.flags...)...)
			if strings.Contains(res.out+res.errOut, "s3cr3t-pass") {
				t.Errorf("a Redis password reached the output: %s %s", res.out, res.errOut)
			}
			if tc.wantErr == "" {
				var got []DLQEntry
				if res.code != 0 || json.Unmarshal([]byte(res.out), &got) != nil || len(got) != 1 || got[0].UUID != uuidA {
					t.Fatalf("exit %d, stdout %q, stderr %q", res.code, res.out, res.errOut)
				}
				return
			}
			if res.code == 0 || strings.Count(res.errOut, "\n") != 1 || !strings.HasPrefix(res.errOut, tc.wantErr) {
				t.Errorf("exit %d, stderr %q, want one line starting %q", res.code, res.errOut, tc.wantErr)
			}
		})
	}
}
