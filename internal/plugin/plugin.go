// Package plugin is `kubectl vcon`, the operator's kubectl plugin: a human
// view of Chains (status, with monitor.sh's check semantics), the dead-letter
// queues (list with reasons, replay, purge), pushing vCon files, finding one
// vCon, a diagnostics bundle, and importing a conserver configuration as
// Chain, Link and Storage manifests. What touches a Chain's queues goes
// straight to Redis or through the vCon API behind the Kubernetes API
// server's service proxy (transport.go), with the same result.
//
// cmd/kubectl-vcon only calls Main. Everything a test needs to vary (the
// environment, the clock, the streams) comes in through Runtime, so tests
// run the real command tree against a real API server and redis-server.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
)

// FieldManager is the server-side apply field manager of `import --apply`.
const FieldManager = "kubectl-vcon"

// Runtime is what the commands take from the process.
type Runtime struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	// Getenv reads the environment (REDIS_URL, API_URL,
	// CONSERVER_API_TOKEN, VCON_REDIS_EXPIRY, VCON_SORTED_SET_NAME).
	Getenv func(string) string
	// Now is the clock ages are computed from.
	Now func() time.Time
	// HTTP is the client for the conserver API.
	HTTP *http.Client
}

// ProcessRuntime is the Runtime of the real process.
func ProcessRuntime() Runtime {
	return Runtime{
		In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr,
		Getenv: os.Getenv, Now: time.Now,
		HTTP: &http.Client{Timeout: 30 * time.Second},
	}
}

// Main runs `kubectl vcon` with args (without the program name) and returns
// the process exit code: 0 on success, the check's code for `status
// --check`, 1 for any other failure, after one line on ErrOut.
func Main(ctx context.Context, args []string, rt Runtime) int {
	// The commands report Redis errors themselves, in one line; go-redis
	// would log every failed dial on top.
	redis.SetLogger(quietRedisLog{})
	cmd := NewCommand(rt)
	cmd.SetArgs(args)
	return exitCode(cmd.ExecuteContext(ctx), rt.ErrOut)
}

type quietRedisLog struct{}

func (quietRedisLog) Printf(context.Context, string, ...any) {}

// exitError ends the command with a code; msg, when set, is printed as the
// one error line.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func exitCode(err error, errOut io.Writer) int {
	if err == nil {
		return 0
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
		if ee.msg == "" {
			return code
		}
	}
	fmt.Fprintln(errOut, "error: "+oneLine(err.Error()))
	return code
}

// oneLine folds a (possibly joined, multi-line) error into one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

// root holds what every subcommand shares.
type root struct {
	rt    Runtime
	flags *genericclioptions.ConfigFlags
}

// NewCommand builds the command tree.
func NewCommand(rt Runtime) *cobra.Command {
	if rt.Getenv == nil {
		rt.Getenv = func(string) string { return "" }
	}
	if rt.Now == nil {
		rt.Now = time.Now
	}
	if rt.HTTP == nil {
		rt.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
	if rt.In == nil {
		rt.In = strings.NewReader("")
	}
	flags := genericclioptions.NewConfigFlags(true)
	// --token is the vCon API token (as CONSERVER_API_TOKEN is in the
	// monitoring guide); authenticate to Kubernetes through the kubeconfig
	// instead.
	flags.BearerToken = nil
	r := &root{rt: rt, flags: flags}

	cmd := &cobra.Command{
		Use:   "kubectl-vcon",
		Short: "Look after vCon Chains: status, dead-letter queues, pushing and finding vCons, diagnostics, importing a conserver config",
		Long: `kubectl vcon works on the Chains, Links and Storages of the vcon-operator.

  status [CHAIN]            health, queues, workers and conditions (--check: monitor.sh exit codes)
  dlq list CHAIN            dead-lettered uuids with their recorded reasons
  dlq replay CHAIN          move dead-lettered vCons back to their ingress lists (--reason R: only those)
  dlq purge CHAIN           remove dead-lettered vCons for good, after asking
  push CHAIN FILE|DIR|-     validate vCon JSON files and queue them on the Chain
  erase UUID | --tel/--mailto   erase a vCon or a party's vCons through the API, with a report
  get UUID                  where one vCon is: its lists, its dead-letter record, its body
  report                    a diagnostics bundle (objects, conditions, events, logs, queues), secrets redacted
  import conserver.yml      turn a conserver config into Chain, Link and Storage manifests`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// kubectl runs us as kubectl-vcon; help should say what users type.
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl vcon"},
	}
	cmd.SetIn(rt.In)
	cmd.SetOut(rt.Out)
	cmd.SetErr(rt.ErrOut)
	flags.AddFlags(cmd.PersistentFlags())
	cmd.AddCommand(r.statusCommand(), r.dlqCommand(), r.pushCommand(), r.getCommand(), r.reportCommand(), r.importCommand())
	cmd.AddCommand(r.eraseCommand())
	return cmd
}

// outputFlag registers -o; allowed lists the formats besides the default.
func outputFlag(cmd *cobra.Command, target *string, def, help string) {
	cmd.Flags().StringVarP(target, "output", "o", def, help)
}

func checkOutput(format string, allowed ...string) error {
	for _, a := range allowed {
		if format == a {
			return nil
		}
	}
	return fmt.Errorf("unknown output format %q: use %s", format, strings.Join(quoteAll(allowed), " or "))
}

func quoteAll(s []string) []string {
	out := make([]string, 0, len(s))
	for _, v := range s {
		if v == "" {
			continue
		}
		out = append(out, "-o "+v)
	}
	if len(out) < len(s) {
		out = append(out, "no -o")
	}
	return out
}
