// Command runner is `make dev`: it runs the whole system on this machine
// (see hack/dev/devsys), applies the samples, prints what to do next, and
// stops everything on Ctrl-C, leaving no process behind.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vcon-operator/vcon-operator/hack/dev/devsys"
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
		stateDir   = flag.String("state-dir", filepath.Join(root, ".dev"), "kubeconfig, API token, logs and data of the dev system")
		samples    = flag.String("samples", filepath.Join(root, "config", "samples"), "manifests to apply once up (empty: none)")
		prometheus = flag.Bool("prometheus", true, "run Prometheus")
		pollEvery  = flag.Duration("queue-poll-interval", 2*time.Second, "the operator's --queue-poll-interval")
	)
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	usePG := *samples != "" && devsys.SamplesUsePostgres(*samples)
	sys, err := devsys.Start(ctx, devsys.Options{
		Root: root, StateDir: *stateDir, Postgres: usePG, Prometheus: *prometheus,
		PreferredPorts: true, QueuePollInterval: *pollEvery,
	})
	if err != nil {
		return err
	}
	defer func() {
		sys.Stop()
		if left := sys.Leftovers(); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "make dev: processes still running after stop: %v\n", left)
		} else {
			fmt.Fprintln(os.Stderr, "make dev: everything stopped")
		}
	}()

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
	printWhatNow(sys, sink)
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "\nmake dev: stopping (workers finish their vCons first)")
	return nil
}

func printWhatNow(sys *devsys.System, sink *devsys.WebhookSink) {
	fmt.Printf(`
vcon-operator is running locally. In another terminal:

  export KUBECONFIG=%[1]s      # this dev cluster only; your own contexts are untouched
  kubectl get chains,links,storages        # READY, WORKERS, INGRESS, IN-FLIGHT, DLQ, EGRESS
  kubectl get deploy -l app.kubernetes.io/name=vcon-worker

Push a vCon (API token, printed once; also in %[2]s):

  export CONSERVER_API_TOKEN=%[3]s
  curl -sS -X POST '%[4]s/api/vcon?ingress_lists=default' \
    -H "x-conserver-api-token: $CONSERVER_API_TOKEN" -H 'content-type: application/json' \
    -d '{"uuid":"'$(cat /proc/sys/kernel/random/uuid)'","created_at":"2024-01-15T10:30:00Z","parties":[{"tel":"+15551230001"},{"tel":"+15551230002"}]}'

  kubectl vcon push calls my-vcon.json     # or a directory of them
  kubectl vcon status calls

`, sys.KubeconfigPath, sys.APITokenPath, sys.APIToken, sys.APIURL)
	fmt.Printf("  API         %s/api/health\n", sys.APIURL)
	fmt.Printf("  operator    http://%s/metrics\n", sys.OperatorMetricsAddr)
	if sys.PrometheusURL != "" {
		fmt.Printf("  Prometheus  %s/alerts\n", sys.PrometheusURL)
	}
	fmt.Printf("  Redis       %s\n", sys.RedisURL)
	if sys.Postgres != nil {
		fmt.Printf("  PostgreSQL  %s\n", sys.Postgres.DSN())
	}
	if sink != nil {
		fmt.Printf("  webhooks    %s (the samples' links.webhook posts here)\n", sink.URL)
	}
	fmt.Printf("  logs        %s\n\nCtrl-C stops everything.\n", filepath.Join(filepath.Dir(sys.KubeconfigPath), "logs"))
}
