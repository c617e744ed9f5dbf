// Command runner is `make dev`: it runs the whole system on this machine's
// real single-node cluster (see internal/devsys), applies the samples,
// writes .dev/env and prints what to do next, and on Ctrl-C tears it all
// down, leaving nothing behind.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/devsys"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "make dev:", err)
		os.Exit(1)
	}
}

func run() error {
	root, err := testenv.RepoRoot()
	if err != nil {
		return err
	}
	var (
		stateDir   = flag.String("state-dir", filepath.Join(root, ".dev"), "API token, env file and logs of the dev system")
		samples    = flag.String("samples", filepath.Join(root, "config", "samples"), "manifests to apply once up (empty: none)")
		prometheus = flag.Bool("prometheus", true, "install the Prometheus Operator and a Prometheus")
		pollEvery  = flag.Duration("queue-poll-interval", 2*time.Second, "the operator's --queue-poll-interval")
	)
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	usePG := *samples != "" && devsys.SamplesUsePostgres(*samples)
	sys, err := devsys.Start(ctx, devsys.Options{
		Root: root, StateDir: *stateDir, Postgres: usePG, Prometheus: *prometheus,
		QueuePollInterval: *pollEvery,
	})
	if err != nil {
		return err
	}
	defer func() {
		sys.Stop()
		if left := sys.Leftovers(); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "make dev: processes still running after stop: %v\n", left)
		} else {
			fmt.Fprintln(os.Stderr, "make dev: everything stopped; the cluster is torn down")
		}
	}()

	// localhost:8000 and :9090, as in the README: relays to the Services
	// (this machine routes the service range to the node).
	apiLocal, err := relay(ctx, "127.0.0.1:8000", strings.TrimPrefix(sys.APIURL, "http://"))
	if err != nil {
		return err
	}
	promLocal := ""
	if sys.PrometheusURL != "" {
		if promLocal, err = relay(ctx, "127.0.0.1:9090", strings.TrimPrefix(sys.PrometheusURL, "http://")); err != nil {
			return err
		}
	}

	var sink *devsys.WebhookSink
	if *samples != "" {
		sink, err = sys.StartWebhookSink()
		if err != nil {
			return err
		}
		defer sink.Close()
		objs, err := sys.SampleObjects(*samples, sink)
		if err != nil {
			return err
		}
		if err := sys.Apply(ctx, objs); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "make dev: applied %d objects from %s (Secrets with dev values)\n", len(objs), *samples)
	}
	envFile := filepath.Join(*stateDir, "env")
	env := fmt.Sprintf(`# make dev: source this file (. .dev/env) in another terminal.
export KUBECONFIG=%s
export PATH=%s:$PATH
export API_URL=http://%s/api
export CONSERVER_API_TOKEN=%s
export REDIS_URL=%s
`, sys.KubeconfigPath, filepath.Join(root, "bin"), apiLocal, sys.APIToken, sys.RedisURL)
	if err := os.WriteFile(envFile, []byte(env), 0o600); err != nil {
		return err
	}
	printWhatNow(sys, apiLocal, promLocal, envFile, sink)
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "\nmake dev: stopping")
	return nil
}

func printWhatNow(sys *devsys.System, apiLocal, promLocal, envFile string, sink *devsys.WebhookSink) {
	fmt.Printf(`
vcon-operator is running on a real single-node Kubernetes (pods on a real
kubelet). In another terminal, from the repository:

  . %[1]s        # KUBECONFIG (this cluster only), PATH with bin/, API_URL, token, REDIS_URL
  kubectl get pods -A                          # the operator, the API, Prometheus
  kubectl get chains,links,storages            # READY, WORKERS, INGRESS, IN-FLIGHT, DLQ, EGRESS
  kubectl vcon push calls hack/dev/vcons/      # through the API; workers start from 0
  curl -H "x-conserver-api-token: $CONSERVER_API_TOKEN" -H 'Content-Type: application/json' \
    -d @hack/dev/vcons/call-1.json 'localhost:8000/api/vcon?ingress_lists=default'
  kubectl vcon status calls

`, relPath(envFile))
	fmt.Printf("  API         http://%s/api/health\n", apiLocal)
	if promLocal != "" {
		fmt.Printf("  Prometheus  http://%s/alerts\n", promLocal)
	}
	fmt.Printf("  Redis       %s\n", sys.RedisURL)
	if sys.Postgres != nil {
		fmt.Printf("  PostgreSQL  %s\n", sys.Postgres.DSN())
	}
	if sink != nil {
		fmt.Printf("  webhooks    %s (the samples' links.webhook posts here)\n", sink.URL)
	}
	fmt.Printf("  logs        %s and .cluster/logs\n\nCtrl-C stops everything.\n", filepath.Join(filepath.Dir(envFile), "logs"))
}

func relPath(p string) string {
	if wd, err := os.Getwd(); err == nil {
		if r, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(r, "..") {
			return r
		}
	}
	return p
}

// relay listens on addr (any free loopback port when addr is taken) and
// copies each connection to target until ctx ends. It returns the address
// it listens on.
func relay(ctx context.Context, addr, target string) (string, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		if l, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return "", err
		}
	}
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			go func() {
				defer c.Close()
				u, err := net.DialTimeout("tcp", target, 5*time.Second)
				if err != nil {
					return
				}
				defer u.Close()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(u, c); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, u); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	return l.Addr().String(), nil
}
