package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/duration"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/queueops"
)

// ChainSummary is what `status` shows of one Chain, and its -o yaml|json
// shape.
type ChainSummary struct {
	Namespace    string           `json:"namespace"`
	Name         string           `json:"name"`
	Enabled      bool             `json:"enabled"`
	Ready        ConditionSummary `json:"ready"`
	IngressLists []string         `json:"ingressLists"`
	EgressLists  []string         `json:"egressLists,omitempty"`
	// Queue is the Chain's status.queue as the operator last wrote it.
	Queue      vconv1.QueueStatus `json:"queue"`
	Workers    WorkersSummary     `json:"workers"`
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// StatusBehind is true when the status describes an older generation
	// than the spec: the operator has not caught up (or is not running).
	StatusBehind bool `json:"statusBehind,omitempty"`
	// Live are the queue figures measured now (--live), besides the
	// operator's.
	Live *queueops.Figures `json:"live,omitempty"`
}

// ConditionSummary is the Ready condition, or Unknown when it is absent.
type ConditionSummary struct {
	Status  string `json:"status"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// WorkersSummary is the worker Deployment's size.
type WorkersSummary struct {
	Ready   int32 `json:"ready"`
	Desired int32 `json:"desired"`
	Min     int32 `json:"min"`
	Max     int32 `json:"max"`
}

// Summarize is the status view of a Chain (pure).
func Summarize(ch *vconv1.Chain) ChainSummary {
	s := ChainSummary{
		Namespace:    ch.Namespace,
		Name:         ch.Name,
		Enabled:      ch.IsEnabled(),
		Ready:        ConditionSummary{Status: string(metav1.ConditionUnknown), Reason: "NotObserved", Message: "the operator has not reported on this Chain yet"},
		IngressLists: ch.Spec.IngressLists,
		EgressLists:  ch.Spec.EgressLists,
		Queue:        ch.Status.Queue,
		Workers: WorkersSummary{
			Ready: ch.Status.ReadyReplicas, Desired: ch.Status.Replicas,
			Min: ch.Spec.Workers.MinReplicas, Max: ch.Spec.Workers.MaxReplicas,
		},
		Conditions:   ch.Status.Conditions,
		StatusBehind: ch.StatusBehind(),
	}
	if c := apimeta.FindStatusCondition(ch.Status.Conditions, string(vconv1.ConditionReady)); c != nil {
		s.Ready = ConditionSummary{Status: string(c.Status), Reason: c.Reason, Message: c.Message}
	}
	return s
}

// redisUnreachable says whether the operator reports the Chain cannot reach
// its Redis, and the operator's words for it.
func (s ChainSummary) redisUnreachable() (bool, string) {
	if s.Ready.Status != string(metav1.ConditionTrue) && s.Ready.Reason == vconv1.ReasonRedisUnreachable {
		return true, s.Ready.Message
	}
	if c := apimeta.FindStatusCondition(s.Conditions, string(vconv1.ConditionRedisReachable)); c != nil &&
		c.Status == metav1.ConditionFalse && c.Reason == vconv1.ReasonRedisUnreachable {
		return true, c.Message
	}
	return false, ""
}

// Thresholds are monitor.sh's THRESHOLD_QUEUE and THRESHOLD_DLQ.
type Thresholds struct {
	Queue int64
	DLQ   int64
}

// Check exit codes, as monitor.sh uses them.
const (
	CheckOK       = 0
	CheckWarning  = 1
	CheckCritical = 2
)

// CheckResult is one line and an exit code.
type CheckResult struct {
	Code int
	Line string
}

// Check applies the monitoring guide's monitor.sh to Chains, in its order:
// API health (CRITICAL), then, ours, a Chain that cannot reach Redis
// (CRITICAL), then queue depth, then DLQ depth (WARNING); the first failing
// check decides. apiErr is nil when the API is healthy or not checked.
// Several Chains are checked together; the line then names the Chain the
// message is about, after the guide's words.
func Check(chains []ChainSummary, th Thresholds, apiErr error) CheckResult {
	if apiErr != nil {
		return CheckResult{CheckCritical, "CRITICAL: API health check failed"}
	}
	which := func(s ChainSummary) string {
		if len(chains) < 2 {
			return ""
		}
		return " (chain " + s.Namespace + "/" + s.Name + ")"
	}
	for _, s := range chains {
		if down, msg := s.redisUnreachable(); down {
			line := "CRITICAL: Redis unreachable" + which(s)
			if len(chains) < 2 {
				line = "CRITICAL: Redis unreachable for chain " + s.Name
			}
			if msg != "" {
				line += ": " + oneLine(msg)
			}
			return CheckResult{CheckCritical, line}
		}
	}
	// The deepest queue over the threshold is the one worth naming.
	if s, ok := worst(chains, func(s ChainSummary) int64 { return s.Queue.Ingress }, th.Queue); ok {
		return CheckResult{CheckWarning, fmt.Sprintf("WARNING: Queue depth is %d (threshold: %d)%s", s.Queue.Ingress, th.Queue, which(s))}
	}
	if s, ok := worst(chains, func(s ChainSummary) int64 { return s.Queue.DLQ }, th.DLQ); ok {
		return CheckResult{CheckWarning, fmt.Sprintf("WARNING: DLQ has %d items%s", s.Queue.DLQ, which(s))}
	}
	return CheckResult{CheckOK, "OK: All checks passed"}
}

func worst(chains []ChainSummary, depth func(ChainSummary) int64, threshold int64) (ChainSummary, bool) {
	var best ChainSummary
	found := false
	for _, s := range chains {
		if d := depth(s); d > threshold && (!found || d > depth(best)) {
			best, found = s, true
		}
	}
	return best, found
}

// apiHealth is monitor.sh's `curl -s $API_URL/health | jq -r .status`:
// healthy means a JSON body whose status is "healthy".
func apiHealth(ctx context.Context, hc *http.Client, apiURL string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(apiURL, "/")+"/health", nil)
	if err != nil {
		return fmt.Errorf("api url: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return fmt.Errorf("GET /health: %s, body is not JSON", resp.Status)
	}
	if body.Status != "healthy" {
		return fmt.Errorf("GET /health: %s, status %q", resp.Status, body.Status)
	}
	return nil
}

type statusOptions struct {
	output     string
	check      bool
	all        bool
	live       bool
	transport  transportFlags
	thresholds Thresholds
}

func (r *root) statusCommand() *cobra.Command {
	o := &statusOptions{}
	cmd := &cobra.Command{
		Use:   "status [CHAIN]",
		Short: "Show the health, queues, workers and conditions of Chains",
		Long: `Show the health, queues, workers and conditions of one Chain, or of every
Chain in the namespace.

With --check it behaves like the monitoring guide's monitor.sh and prints one
line: exit 0 "OK: All checks passed"; exit 1 "WARNING: Queue depth is N
(threshold: T)" or "WARNING: DLQ has N items"; exit 2 "CRITICAL: API health
check failed" (when --api-url is given) or "CRITICAL: Redis unreachable ..."
(the operator reports the Chain cannot reach its Redis). A Chain that cannot
be read is CRITICAL too. The figures are the operator's latest measurement
in the Chain's status.

--live also measures the queues now, straight on Redis or through the API
(--via), for when the operator's figures are stale or not yet written.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			return r.status(cmd.Context(), o, name)
		},
	}
	outputFlag(cmd, &o.output, "", "output format: yaml or json (default: a human summary)")
	cmd.Flags().BoolVar(&o.check, "check", false, "print one monitor.sh line and exit 0 (OK), 1 (WARNING) or 2 (CRITICAL)")
	cmd.Flags().BoolVarP(&o.all, "all-namespaces", "A", false, "every Chain in every namespace")
	cmd.Flags().StringVar(&o.transport.api.url, "api-url", r.rt.Getenv("API_URL"), "vCon API base URL, e.g. http://localhost:8000/api; with --check its /health is checked (env API_URL)")
	cmd.Flags().BoolVar(&o.live, "live", false, "also measure the queues now (see --via)")
	addTransportFlags(cmd.Flags(), &o.transport, r.rt.Getenv, false)
	cmd.Flags().Int64Var(&o.thresholds.Queue, "threshold-queue", 100, "with --check, WARNING when an ingress queue holds more vCons than this")
	cmd.Flags().Int64Var(&o.thresholds.DLQ, "threshold-dlq", 0, "with --check, WARNING when a DLQ holds more vCons than this")
	return cmd
}

func (r *root) status(ctx context.Context, o *statusOptions, name string) error {
	if err := checkOutput(o.output, "", "yaml", "json"); err != nil {
		return err
	}
	if o.check && o.output != "" {
		return fmt.Errorf("--check prints one line; leave out -o")
	}
	if name != "" && o.all {
		return fmt.Errorf("name one Chain or use --all-namespaces, not both")
	}
	if o.check && o.live {
		return fmt.Errorf("--check reads the operator's figures, as monitor.sh does; leave out --live")
	}
	summaries, err := r.summaries(ctx, name, o.all)
	if err == nil && o.live {
		err = r.measureLive(ctx, o, summaries)
	}
	if o.check {
		return r.check(ctx, o, summaries, err)
	}
	if err != nil {
		return err
	}
	if o.output != "" {
		return printObject(r.rt.Out, o.output, summaries)
	}
	now := r.rt.Now()
	for i, s := range summaries {
		if i > 0 {
			fmt.Fprintln(r.rt.Out)
		}
		printSummary(r.rt.Out, s, now)
	}
	return nil
}

func (r *root) summaries(ctx context.Context, name string, all bool) ([]ChainSummary, error) {
	k, err := r.kube()
	if err != nil {
		return nil, err
	}
	var chains []vconv1.Chain
	if name != "" {
		ch, err := k.chain(ctx, name)
		if err != nil {
			return nil, err
		}
		chains = []vconv1.Chain{*ch}
	} else {
		if chains, err = k.chains(ctx, all); err != nil {
			return nil, err
		}
		if len(chains) == 0 && !all {
			return nil, fmt.Errorf("no Chains found in namespace %s", k.namespace)
		}
		if len(chains) == 0 {
			return nil, fmt.Errorf("no Chains found in any namespace")
		}
	}
	sort.Slice(chains, func(i, j int) bool {
		if chains[i].Namespace != chains[j].Namespace {
			return chains[i].Namespace < chains[j].Namespace
		}
		return chains[i].Name < chains[j].Name
	})
	out := make([]ChainSummary, len(chains))
	for i := range chains {
		out[i] = Summarize(&chains[i])
	}
	return out, nil
}

// measureLive fills each summary's Live figures.
func (r *root) measureLive(ctx context.Context, o *statusOptions, summaries []ChainSummary) error {
	k, err := r.kube()
	if err != nil {
		return err
	}
	for i := range summaries {
		s := &summaries[i]
		var ch vconv1.Chain
		if err := k.client.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: s.Name}, &ch); err != nil {
			return chainError(err, s.Name, s.Namespace)
		}
		q, err := r.openQueues(ctx, k, &ch, &o.transport)
		if err != nil {
			return fmt.Errorf("chain %s/%s: %w", s.Namespace, s.Name, err)
		}
		f, err := q.measure(ctx, queue.Target{Ingress: ch.Spec.IngressLists, Egress: ch.Spec.EgressLists})
		_ = q.close()
		if err != nil {
			return fmt.Errorf("chain %s/%s: %w", s.Namespace, s.Name, err)
		}
		s.Live = &f
	}
	return nil
}

// check prints the one line and ends with its code. As monitor.sh treats a
// health endpoint it cannot read as failed, a Chain that cannot be read is
// CRITICAL, not a plain error.
func (r *root) check(ctx context.Context, o *statusOptions, summaries []ChainSummary, readErr error) error {
	var apiErr error
	if o.transport.api.url != "" {
		apiErr = apiHealth(ctx, r.rt.HTTP, o.transport.api.url)
	}
	res := Check(summaries, o.thresholds, apiErr)
	if readErr != nil && apiErr == nil {
		res = CheckResult{CheckCritical, "CRITICAL: " + oneLine(readErr.Error())}
	}
	fmt.Fprintln(r.rt.Out, res.Line)
	if res.Code == CheckOK {
		return nil
	}
	return &exitError{code: res.Code}
}

// printSummary writes the human view of one Chain.
func printSummary(w io.Writer, s ChainSummary, now time.Time) {
	fmt.Fprintf(w, "Chain %s/%s\n", s.Namespace, s.Name)
	ready := s.Ready.Status
	if s.Ready.Reason != "" {
		ready += " (" + s.Ready.Reason + ")"
	}
	if s.Ready.Message != "" {
		ready += ": " + oneLine(s.Ready.Message)
	}
	fmt.Fprintf(w, "  Ready:    %s\n", ready)
	if !s.Enabled {
		fmt.Fprintln(w, "  Enabled:  false (workers scaled to zero, nothing is consumed)")
	}
	if s.StatusBehind {
		fmt.Fprintln(w, "  Note:     the status describes an older version of the spec; the operator has not caught up (is it running?)")
	}
	fmt.Fprintf(w, "  Lists:    ingress %s", strings.Join(s.IngressLists, ", "))
	if len(s.EgressLists) > 0 {
		fmt.Fprintf(w, "  egress %s", strings.Join(s.EgressLists, ", "))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  Queues:   ingress %d  in-flight %d  DLQ %d  egress %d\n", s.Queue.Ingress, s.Queue.InFlight, s.Queue.DLQ, s.Queue.Egress)
	if l := s.Live; l != nil {
		fmt.Fprintf(w, "  Live:     ingress %d  in-flight %d  retry %d  DLQ %d  egress %d (measured now)\n", l.Ingress, l.InFlight, l.Retry, l.DLQ, l.Egress)
	}
	switch {
	case s.Queue.ObservedAt == nil:
		fmt.Fprintln(w, "            not measured yet")
	case s.Queue.Stale:
		fmt.Fprintf(w, "            STALE: Redis could not be reached; last known figures, from %s ago\n", age(now, s.Queue.ObservedAt.Time))
	default:
		// The operator moves observedAt only when a figure changes.
		fmt.Fprintf(w, "            figures last changed %s ago\n", age(now, s.Queue.ObservedAt.Time))
	}
	if at := s.Queue.OldestQueuedSince; at != nil && s.Queue.Ingress > 0 {
		fmt.Fprintf(w, "            oldest waiting vCon queued %s ago\n", age(now, at.Time))
	}
	if s.Queue.Retry > 0 {
		due := "due now"
		if at := s.Queue.NextRetryAt; at != nil && at.After(now) {
			due = "next due in " + age(at.Time, now)
		} else if at != nil {
			due = "next due " + age(now, at.Time) + " ago (promoted at the next poll)"
		}
		fmt.Fprintf(w, "            %d waiting for a retry (holding no worker), %s\n", s.Queue.Retry, due)
	}
	if s.Queue.DLQ > 0 {
		fmt.Fprintf(w, "            %d dead-lettered: kubectl vcon dlq list %s -n %s\n", s.Queue.DLQ, s.Name, s.Namespace)
	}
	if s.Queue.StorageDLQ > 0 {
		fmt.Fprintf(w, "            %d failed storage writes waiting for a replay: kubectl vcon dlq list %s -n %s --storage NAME\n", s.Queue.StorageDLQ, s.Name, s.Namespace)
	}
	fmt.Fprintf(w, "  Workers:  %d/%d ready (min %d, max %d)\n", s.Workers.Ready, s.Workers.Desired, s.Workers.Min, s.Workers.Max)
	if c := apimeta.FindStatusCondition(s.Conditions, string(vconv1.ConditionScalingLimited)); c != nil && c.Status == metav1.ConditionTrue {
		// What stops the scaling (maxReplicas, or which Link's limit at
		// what rate) is the first thing to know about a growing backlog.
		fmt.Fprintf(w, "  Scaling:  limited (%s): %s\n", c.Reason, oneLine(c.Message))
	}
	if len(s.Conditions) == 0 {
		fmt.Fprintln(w, "  Conditions: none reported yet")
		return
	}
	fmt.Fprintln(w, "  Conditions:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "    TYPE\tSTATUS\tREASON\tAGE\tMESSAGE")
	for _, c := range s.Conditions {
		fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\t%s\n", c.Type, c.Status, c.Reason, age(now, c.LastTransitionTime.Time), oneLine(c.Message))
	}
	_ = tw.Flush()
}

// age is kubectl's short duration ("5m", "3h12m", "2d").
func age(now, t time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t))
}
