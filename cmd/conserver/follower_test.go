package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/api"
	"github.com/vcon-operator/vcon-operator/internal/apiwire"
	"github.com/vcon-operator/vcon-operator/internal/config"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
	"github.com/vcon-operator/vcon-operator/internal/vcon/sample"
	"github.com/vcon-operator/vcon-operator/internal/workload"
)

// TestBinaryRunsFollowers runs the real worker on a config with a
// follower of our own API (in this process, with its own redis-server):
// standalone on a conserver file, and as the operator runs it, on the
// config workload.Render writes for a Chain with a follower (--chain,
// the token from the env its Secret fills). vCons posted upstream reach
// the chain here and its egress once each, the follower's metrics say
// so, the token never appears in the logs, and a SIGTERM hands the lease
// back.
func TestBinaryRunsFollowers(t *testing.T) {
	const token = "upstream-secret-token-42"
	for _, tc := range []struct {
		name     string
		config   func(upstream string) string
		args     []string
		follower string
	}{
		{name: "standalone conserver file", follower: "upstream_server", config: func(upstream string) string {
			return `
links:
  tagger: {module: links.tag, options: {tags: [followed]}}
chains:
  main: {links: [tagger], ingress_lists: [from_upstream], egress_lists: [done]}
followers:
  upstream_server:
    url: ` + upstream + `/api
    egress_list: processed
    follower_ingress_list: from_upstream
    auth_token: ${UPSTREAM_TOKEN}
    pulling_interval: 0.2
    fetch_vcon_limit: 4
`
		}},
		{name: "rendered for a Chain", follower: "calls/main/upstream", args: []string{"--chain", "main"}, config: func(upstream string) string {
			ch := &vconv1.Chain{
				ObjectMeta: metav1.ObjectMeta{Name: "main", Namespace: "calls"},
				Spec: vconv1.ChainSpec{IngressLists: []string{"from_upstream"}, EgressLists: []string{"done"}, Enabled: ptr.To(true),
					Followers: []vconv1.ChainFollower{{Name: "upstream", URL: upstream, EgressList: "processed",
						AuthTokenSecretRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "up"}, Key: "token"},
						PullingInterval:    &metav1.Duration{Duration: 200 * time.Millisecond}, FetchVconLimit: ptr.To(int32(4))}}},
			}
			r, err := workload.Render(workload.Inputs{Chain: ch, RedisURL: "redis://unused"})
			if err != nil {
				t.Fatal(err)
			}
			t.Setenv(workload.FollowerTokenEnvName("upstream"), token)
			return string(r.Config)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			upRedis := testenv.StartRedis(t).Client()
			up, err := api.New(upRedis, api.Options{Tokens: []string{token}, VconTTL: time.Hour, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = up.Close() })
			upstream := httptest.NewServer(up.Handler())
			t.Cleanup(upstream.Close)

			var ids []string
			for i := range 6 {
				id := testUUID(500 + i)
				ids = append(ids, id)
				req, _ := http.NewRequest(http.MethodPost, upstream.URL+"/api/vcon?ingress_lists=processed", bytes.NewReader(sample.Document(id, 2000)))
				req.Header.Set(apiwire.DefaultHeaderName, token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					t.Fatalf("POST upstream: %s", resp.Status)
				}
			}

			t.Setenv("UPSTREAM_TOKEN", token)
			srv := testenv.StartRedis(t)
			rdb := srv.Client()
			w := startWorker(t, writeConfig(t, tc.config(upstream.URL)), srv.URL(), tc.args...)
			w.waitReady(60 * time.Second)
			deadline := time.Now().Add(60 * time.Second)
			for rdb.LLen(ctx, "done").Val() < int64(len(ids)) {
				if time.Now().After(deadline) {
					t.Fatalf("followed vCons not processed within 60s\n%s", w.logTail())
				}
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(500 * time.Millisecond) // two more polls: nothing more may arrive
			got := rdb.LRange(ctx, "done", 0, -1).Val()
			slices.Sort(got)
			if !slices.Equal(got, ids) {
				t.Fatalf("done = %v, want each of %v once", got, ids)
			}
			if n := upRedis.LLen(ctx, "processed").Val(); n != 0 {
				t.Errorf("upstream egress still holds %d uuids", n)
			}
			m := w.metrics()
			for _, line := range []string{
				`vcon_follower_vcons_total{follower="` + tc.follower + `",outcome="followed"} 6`,
				`vcon_follower_vcons_total{follower="` + tc.follower + `",outcome="lost"} 0`,
				`vcon_follower_pending{follower="` + tc.follower + `"} 0`,
				`vcon_follower_leader{follower="` + tc.follower + `"} 1`,
			} {
				if !strings.Contains(m, line) {
					t.Errorf("metrics lack %s", line)
				}
			}

			if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case <-w.exited:
			case <-time.After(30 * time.Second):
				t.Fatalf("no exit within 30s of SIGTERM\n%s", w.logTail())
			}
			if n := rdb.Exists(ctx, queue.FollowerLeaseKey(tc.follower)).Val(); n != 0 {
				t.Error("the follower lease survived a clean stop")
			}
			logs, _ := os.ReadFile(w.logs)
			if bytes.Contains(logs, []byte(token)) {
				t.Error("the worker logged the upstream token")
			}
			if !bytes.Contains(logs, []byte(`"follower starting"`)) {
				t.Errorf("no follower start in the logs:\n%s", w.logTail())
			}
		})
	}
}

// TestFollowersOf: a worker of one chain (the operator's --chain) runs
// only the followers that feed that chain; a standalone worker runs all.
func TestFollowersOf(t *testing.T) {
	cfg := &config.Config{
		Chains: map[string]config.Chain{"a": {IngressLists: []string{"in-a", "in-a2"}}, "b": {IngressLists: []string{"in-b"}}},
		Followers: map[string]config.Follower{
			"to-a":    {IngressLists: []string{"in-a2"}},
			"to-both": {IngressLists: []string{"in-b", "in-a"}},
			"to-none": {IngressLists: []string{"elsewhere"}},
		},
	}
	for _, tc := range []struct {
		chain string
		want  []string
	}{
		{"", []string{"to-a", "to-both", "to-none"}},
		{"a", []string{"to-a", "to-both"}},
		{"b", []string{"to-both"}},
	} {
		if got := followersOf(cfg, tc.chain); !slices.Equal(got, tc.want) {
			t.Errorf("followersOf(%q) = %v, want %v", tc.chain, got, tc.want)
		}
	}
}
