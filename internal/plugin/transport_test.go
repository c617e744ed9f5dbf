package plugin

import (
	"context"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// seedQueues empties r and dead-letters uuidA (a jq error) and uuidB (no
// reason) on "default" and uuidC (a timeout) on "priority", as the worker
// and conserver write them.
func seedQueues(t *testing.T, r *testenv.Redis) {
	t.Helper()
	ctx := context.Background()
	rdb := r.Client()
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	at := testNow.Add(-2 * time.Hour)
	pipe := rdb.TxPipeline()
	queue.QueueDeadLetter(pipe, queue.Item{List: "default", UUID: uuidA}, queue.DLQReason{Reason: "link jq-filter: jq: error: cannot iterate over null", Chain: "main", Step: "jq-filter", At: at})
	pipe.RPush(ctx, queue.DLQKey("default"), uuidB)
	queue.QueueDeadLetter(pipe, queue.Item{List: "priority", UUID: uuidC}, queue.DLQReason{Reason: "timeout after 30s", Chain: "main", At: at})
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	body := `{"vcon":"0.0.1","uuid":"` + uuidA + `","created_at":"2026-03-01T10:00:00Z","subject":"refund","parties":[{"tel":"+15551234567"}],"dialog":[],"analysis":[],"attachments":[]}`
	if err := vconstore.New(rdb, vconstore.Options{}).Create(ctx, uuidA, []byte(body), 0); err != nil {
		t.Fatal(err)
	}
}

// TestThroughAPIAsThroughRedis runs each command straight on Redis and
// through the API behind the test API server's service proxy, from the same
// state: the output and what is left in Redis must be the same.
func TestThroughAPIAsThroughRedis(t *testing.T) {
	r := testenv.StartRedis(t)
	ns := namespace(t)
	createChain(t, ns, "main", vconv1.ChainSpec{IngressLists: []string{"default", "priority"}, EgressLists: []string{"out"}, Redis: vconv1.RedisConnection{URL: r.URL()}}, nil)
	p := startProxiedAPI(t, ns, r)
	tests := []struct {
		name  string
		args  []string
		stdin string
		code  int
		out   string // the output must contain it
		// left are the lists and their uuids afterwards.
		left map[string][]string
	}{
		{name: "dlq list", args: []string{"dlq", "list", "main"}, out: "jq-filter"},
		{name: "dlq list -o json", args: []string{"dlq", "list", "main", "-o", "json"}, out: `"reason": "timeout after 30s"`},
		{name: "replay by reason", args: []string{"dlq", "replay", "main", "--reason", "jq:"}, out: "Replayed 1 dead-lettered vCons.",
			left: map[string][]string{"default": {uuidA}, "DLQ:default": {uuidB}, "DLQ:priority": {uuidC}}},
		{name: "replay by reason matches nothing", args: []string{"dlq", "replay", "main", "--reason", "nothing like it"}, out: "Replayed 0 dead-lettered vCons."},
		{name: "replay count", args: []string{"dlq", "replay", "main", "--count", "2"}, out: "Replayed 2 dead-lettered vCons.",
			left: map[string][]string{"default": {uuidA, uuidB}, "DLQ:priority": {uuidC}}},
		{name: "replay all", args: []string{"dlq", "replay", "main"}, out: "Replayed 3 dead-lettered vCons.",
			left: map[string][]string{"default": {uuidA, uuidB}, "priority": {uuidC}}},
		{name: "purge by reason with --yes", args: []string{"dlq", "purge", "main", "--reason", "timeout", "--yes"}, out: "Purged 1 dead-lettered vCons.",
			left: map[string][]string{"DLQ:default": {uuidA, uuidB}}},
		{name: "purge confirmed", args: []string{"dlq", "purge", "main"}, stdin: "main\n",
			out:  "3 dead-lettered vCons in chain main (DLQ:default: 2, DLQ:priority: 1).\nType the chain's name (main) to remove them for good: Purged 3 dead-lettered vCons.",
			left: map[string][]string{}},
		{name: "purge not confirmed", args: []string{"dlq", "purge", "main"}, stdin: "mian\n", code: 1, out: "3 dead-lettered vCons in chain main"},
		{name: "get", args: []string{"get", uuidA}, out: "  chain main:\n    dead-lettered in DLQ:default (position 0 from the head)\n      dead-lettered 120m ago at step jq-filter: link jq-filter: jq: error: cannot iterate over null\n  body: in Redis, 195 bytes, no expiry\n        created_at 2026-03-01T10:00:00Z, subject \"refund\", 1 parties, 0 dialog, 0 analysis, 0 attachments"},
		{name: "get -o json", args: []string{"get", uuidA, "-o", "json", "--chain", "main"}, out: `"subject": "refund"`},
		{name: "get nowhere", args: []string{"get", "018f3c1e-0000-7000-8000-0000000000ff"}, code: 1, out: "chain main: in none of its lists\n  body: not in Redis"},
		{name: "status --live", args: []string{"status", "main", "--live"}, out: "  Live:     ingress 0  in-flight 0  retry 0  DLQ 3  egress 0 (measured now)"},
		{name: "status --live -o json", args: []string{"status", "main", "--live", "-o", "json"}, out: `"key": "DLQ:priority",`},
		{name: "purge nothing", args: []string{"dlq", "purge", "main", "--reason", "nothing like it"}, out: `No dead-lettered vCons whose reason contains "nothing like it" in chain main`},
	}
	untouched := map[string][]string{"DLQ:default": {uuidA, uuidB}, "DLQ:priority": {uuidC}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var outs []string
			for _, via := range [][]string{{"--via", "redis"}, p.flags()} {
				seedQueues(t, r)
				args := append(append([]string{}, tc.args...), "-n", ns)
				res := invocation{kubeconfig: admin(t), stdin: tc.stdin}.run(t, append(args, via...)...)
				if res.code != tc.code || !strings.Contains(res.out, tc.out) {
					t.Fatalf("%v: exit %d, want %d; stdout %q lacks %q; stderr %q", via, res.code, tc.code, res.out, tc.out, res.errOut)
				}
				if strings.Contains(res.out+res.errOut, p.token) {
					t.Errorf("%v: the API token was printed", via)
				}
				left := tc.left
				if left == nil {
					left = untouched
				}
				for _, key := range []string{"default", "priority", "DLQ:default", "DLQ:priority"} {
					if got := rdbLRange(t, r, key); strings.Join(got, ",") != strings.Join(left[key], ",") {
						t.Errorf("%v: %s = %v, want %v", via, key, got, left[key])
					}
				}
				outs = append(outs, res.out+res.errOut)
			}
			if outs[0] != outs[1] {
				t.Errorf("through Redis:\n%s\nthrough the API:\n%s", outs[0], outs[1])
			}
		})
	}
}

// grant gives user the rules in ns.
func grant(t *testing.T, ns, user string, rules ...rbacv1.PolicyRule) {
	t.Helper()
	ctx := context.Background()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user}, Rules: rules}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: user},
		Subjects:   []rbacv1.Subject{{Kind: "User", Name: user, APIGroup: "rbac.authorization.k8s.io"}},
	}
	if err := testKube.Client.Create(ctx, role); err != nil {
		t.Fatal(err)
	}
	if err := testKube.Client.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
}

var (
	readChains  = rbacv1.PolicyRule{APIGroups: []string{"vcon.dev"}, Resources: []string{"chains"}, Verbs: []string{"get", "list"}}
	findService = rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"get", "list"}}
	useProxy    = rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"services/proxy"}, Verbs: []string{"get", "create"}}
	readToken   = rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"vcon-api-token"}, Verbs: []string{"get"}}
)

// TestThroughAPIRefusals: what a user is told when RBAC or the API refuses,
// and that the token never reaches the output.
func TestThroughAPIRefusals(t *testing.T) {
	r := testenv.StartRedis(t)
	ns := namespace(t)
	// The Chain's Redis is an in-cluster name a laptop cannot resolve.
	createChain(t, ns, "main", vconv1.ChainSpec{IngressLists: []string{"default", "priority"}, Redis: vconv1.RedisConnection{URL: "redis://redis.vcon-system.svc:6379"}}, nil)
	p := startProxiedAPI(t, ns, r)
	seedQueues(t, r)
	user := func(name string, rules ...rbacv1.PolicyRule) string {
		grant(t, ns, name, rules...)
		return kubeconfigFor(t, envtest.User{Name: name})
	}
	full := user("plugin-user", readChains, findService, useProxy, readToken)
	noProxy := user("no-proxy", readChains, findService, readToken)
	noSecret := user("no-secret", readChains, findService, useProxy)
	noServices := user("no-services", readChains, useProxy, readToken)
	getOnly := user("proxy-get-only", readChains, findService, readToken,
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"services/proxy"}, Verbs: []string{"get"}})
	replay := []string{"dlq", "replay", "main", "-n", ns, "--reason", "no such reason"}
	list := []string{"dlq", "list", "main", "-n", ns, "-o", "json"}
	tests := []struct {
		name       string
		kubeconfig string
		env        map[string]string
		flags      []string
		args       []string // default: dlq list
		wantErr    string   // empty: the command succeeds
	}{
		{name: "the chart's Role is enough", kubeconfig: full, flags: p.flags()},
		{name: "auto finds the API Service", kubeconfig: full, flags: []string{"--api-namespace", ns}},
		{name: "--api-service names it", kubeconfig: full, flags: []string{"--via", "api", "--api-service", ns + "/" + p.service}},
		{name: "no services/proxy", kubeconfig: noProxy, flags: p.flags(),
			wantErr: "error: the Kubernetes API server refused to proxy to Service " + ns + "/vcon-api: services \"vcon-api:http\" is forbidden: User \"no-proxy\" cannot get resource \"services/proxy\""},
		{name: "token Secret not readable", kubeconfig: noSecret, flags: p.flags(),
			wantErr: "error: the API token is in Secret " + ns + "/vcon-api-token, which you may not read: pass --token or set CONSERVER_API_TOKEN"},
		{name: "token Secret not readable but env", kubeconfig: noSecret, env: map[string]string{"CONSERVER_API_TOKEN": p.token}, flags: p.flags()},
		{name: "token Secret not readable but --token", kubeconfig: noSecret, flags: append(p.flags(), "--token", p.token)},
		{name: "wrong token", kubeconfig: full, flags: append(p.flags(), "--token", "not-the-token"),
			wantErr: "error: the API (Service " + ns + "/vcon-api, through the Kubernetes API server) refused the API token (403)"},
		{name: "services not listable", kubeconfig: noServices, flags: p.flags(),
			wantErr: "error: not allowed to list Services in namespace " + ns + " to find the API: pass --api-service NAMESPACE/NAME"},
		{name: "no API Service there", kubeconfig: admin(t), flags: []string{"--via", "api", "--api-namespace", "vcon-system"},
			wantErr: "error: no vcon-operator API Service in namespace vcon-system"},
		{name: "a POST needs create on services/proxy", kubeconfig: getOnly, flags: p.flags(), args: replay,
			wantErr: "error: the Kubernetes API server refused to proxy to Service " + ns + "/vcon-api: services \"vcon-api:http\" is forbidden: User \"proxy-get-only\" cannot create resource \"services/proxy\""},
		{name: "the chart's Role may POST", kubeconfig: full, flags: p.flags(), args: replay},
		{name: "bad --via", kubeconfig: full, flags: []string{"--via", "carrier-pigeon"}, wantErr: `error: --via "carrier-pigeon": use api, redis or auto`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := list
			if tc.args != nil {
				args = tc.args
			}
			res := invocation{kubeconfig: tc.kubeconfig, env: tc.env}.run(t, append(append([]string{}, args...), tc.flags...)...)
			if strings.Contains(res.out+res.errOut, p.token) {
				t.Errorf("the API token was printed: %s %s", res.out, res.errOut)
			}
			if tc.wantErr == "" {
				want := uuidC
				if tc.args != nil {
					want = "Replayed 0 dead-lettered vCons."
				}
				if res.code != 0 || !strings.Contains(res.out, want) {
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

// TestPushThroughProxy: without --api-url a push goes to the API Service
// through the service proxy, and --direct there is the API's POST.
func TestPushThroughProxy(t *testing.T) {
	r := testenv.StartRedis(t)
	ns := namespace(t)
	createChain(t, ns, "main", vconv1.ChainSpec{IngressLists: []string{"default"}, Redis: vconv1.RedisConnection{URL: "redis://redis.vcon-system.svc:6379"}}, nil)
	p := startProxiedAPI(t, ns, r)
	dir, _ := vconDir(t)
	for _, tc := range []struct {
		name  string
		flags []string
		out   string
	}{
		{"push", []string{"--api-namespace", ns}, "Pushed 2 of 4 vCons onto default (chain main) through the API."},
		{"push --direct --via api", append([]string{"--direct"}, p.flags()...), "Pushed 2 of 4 vCons onto default (chain main) through the API (its POST is --direct's write, done by the API)."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := r.Client().FlushAll(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
			res := invocation{kubeconfig: admin(t)}.run(t, append([]string{"push", "main", dir, "-n", ns}, tc.flags...)...)
			if res.code != 1 || !strings.Contains(res.out, tc.out) || strings.Contains(res.out+res.errOut, p.token) {
				t.Fatalf("exit %d, stdout %q, stderr %q", res.code, res.out, res.errOut)
			}
			assertList(t, rdbLRange(t, r, "default"), goodUUID1, strings.ToLower(goodUUID2))
		})
	}
}

// TestEraseThroughProxy: kubectl vcon erase reaches the API as the other
// commands do, through the Kubernetes API server's service proxy with the
// user's credentials and the token from the Secret the Service names.
func TestEraseThroughProxy(t *testing.T) {
	r := testenv.StartRedis(t)
	ns := namespace(t)
	p := startProxiedAPI(t, ns, r)
	ctx := context.Background()
	if err := r.Client().Set(ctx, "vcon:"+goodUUID1, `{"uuid":"`+goodUUID1+`","vcon":"0.4.0","parties":[],"dialog":[]}`, 0).Err(); err != nil {
		t.Fatal(err)
	}
	res := invocation{kubeconfig: admin(t)}.run(t, "erase", goodUUID1, "--api-namespace", ns, "-o", "json")
	if res.code != 0 || !strings.Contains(res.out, `"complete": true`) || strings.Contains(res.out+res.errOut, p.token) {
		t.Fatalf("exit %d, stdout %q, stderr %q", res.code, res.out, res.errOut)
	}
	if n := r.Client().Exists(ctx, "vcon:"+goodUUID1).Val(); n != 0 {
		t.Error("the body is still in Redis after erase through the proxy")
	}
}
