package plugin

import (
	"context"
	"fmt"
	"math"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/queue"
)

// DLQEntry is one dead-lettered vCon, the -o yaml|json shape of `dlq list`.
type DLQEntry struct {
	IngressList string `json:"ingressList"`
	UUID        string `json:"uuid"`
	// Reason and the fields after it are what the worker recorded; empty
	// when nothing was recorded (a uuid dead-lettered by conserver itself).
	Reason string     `json:"reason,omitempty"`
	Chain  string     `json:"chain,omitempty"`
	Step   string     `json:"step,omitempty"`
	At     *time.Time `json:"at,omitempty"`
}

type dlqOptions struct {
	transport transportFlags
	list      string
	output    string
	count     int
	fromStart bool
	reason    string
	yes       bool
}

func (r *root) dlqCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List, replay or purge a Chain's dead-lettered vCons",
	}
	cmd.AddCommand(r.dlqListCommand(), r.dlqReplayCommand(), r.dlqPurgeCommand())
	return cmd
}

func dlqFlags(cmd *cobra.Command, o *dlqOptions) {
	addTransportFlags(cmd.Flags(), &o.transport, func(string) string { return "" }, true)
	cmd.Flags().StringVar(&o.list, "ingress-list", "", "only this ingress list of the Chain (default: all of them)")
}

func (r *root) dlqListCommand() *cobra.Command {
	o := &dlqOptions{}
	cmd := &cobra.Command{
		Use:   "list CHAIN",
		Short: "Show the uuids in DLQ:{ingress} for each of the Chain's ingress lists, with their recorded reasons",
		Args:  exactArgs(1, "name the Chain: kubectl vcon dlq list CHAIN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(o.output, "", "yaml", "json"); err != nil {
				return err
			}
			ctx := cmd.Context()
			ch, q, lists, err := r.chainQueues(ctx, args[0], o)
			if err != nil {
				return err
			}
			defer q.close()
			entries, err := listDLQ(ctx, q, lists)
			if err != nil {
				return err
			}
			if o.output != "" {
				return printObject(r.rt.Out, o.output, entries)
			}
			if len(entries) == 0 {
				fmt.Fprintf(r.rt.Out, "No dead-lettered vCons for chain %s (%s).\n", ch.Name, dlqKeys(lists))
				return nil
			}
			now := r.rt.Now()
			tw := tabwriter.NewWriter(r.rt.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "INGRESS\tUUID\tAGE\tSTEP\tREASON")
			for _, e := range entries {
				when, step, reason := "-", e.Step, oneLine(e.Reason)
				if e.At != nil {
					when = age(now, *e.At)
				}
				if step == "" {
					step = "-"
				}
				if reason == "" {
					reason = "(no reason recorded)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.IngressList, e.UUID, when, step, reason)
			}
			return tw.Flush()
		},
	}
	dlqFlags(cmd, o)
	outputFlag(cmd, &o.output, "", "output format: yaml or json (default: a table)")
	return cmd
}

func (r *root) dlqReplayCommand() *cobra.Command {
	o := &dlqOptions{}
	cmd := &cobra.Command{
		Use:   "replay CHAIN",
		Short: "Move dead-lettered vCons back to the tail of their ingress lists (conserver's /dlq/reprocess)",
		Long: `Move dead-lettered vCons back to the tail of their ingress lists, oldest
first, and drop their recorded reasons. Fix what made them fail first: a vCon
that fails again is dead-lettered again.

A replayed vCon resumes at the link that failed: the links it completed
(transcription, analysis already paid for) are in its body and do not run
again. --from-start runs every link again.

--reason R replays only the vCons whose recorded reason contains R (case
matters; a vCon with no recorded reason never matches): after fixing one
cause, replay what it broke and leave the rest.`,
		Args: exactArgs(1, "name the Chain: kubectl vcon dlq replay CHAIN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.count < 0 {
				return fmt.Errorf("--count must be positive (or 0 for all)")
			}
			ctx := cmd.Context()
			_, q, lists, err := r.chainQueues(ctx, args[0], o)
			if err != nil {
				return err
			}
			defer q.close()
			left := o.count
			if left == 0 {
				left = math.MaxInt
			}
			total := 0
			for _, list := range lists {
				if left == 0 {
					break
				}
				ask := left // 0 asks for all
				if o.count == 0 {
					ask = 0
				}
				n, err := q.replay(ctx, list, o.reason, ask, o.fromStart)
				total += n
				left -= n
				if n > 0 || len(lists) > 1 {
					fmt.Fprintf(r.rt.Out, "%s -> %s: %d moved\n", queue.DLQKey(list), list, n)
				}
				if err != nil {
					return fmt.Errorf("%w (%d moved before the error)", err, total)
				}
			}
			fmt.Fprintf(r.rt.Out, "Replayed %d dead-lettered vCons.\n", total)
			return nil
		},
	}
	cmd.Flags().BoolVar(&o.fromStart, "from-start", false, "run every link again, instead of resuming after the links each vCon completed")
	cmd.Flags().StringVar(&o.reason, "reason", "", "replay only the vCons whose recorded reason contains this text")
	dlqFlags(cmd, o)
	cmd.Flags().IntVar(&o.count, "count", 0, "move at most this many vCons in all (default: all of them)")
	return cmd
}

// chainQueues reads the Chain, picks its ingress lists and opens its
// queues (straight or through the API).
func (r *root) chainQueues(ctx context.Context, name string, o *dlqOptions) (*vconv1.Chain, queues, []string, error) {
	k, err := r.kube()
	if err != nil {
		return nil, nil, nil, err
	}
	ch, err := k.chain(ctx, name)
	if err != nil {
		return nil, nil, nil, err
	}
	lists := ch.Spec.IngressLists
	if o.list != "" {
		if !slices.Contains(lists, o.list) {
			return nil, nil, nil, fmt.Errorf("%q is not an ingress list of chain %s (its lists: %v)", o.list, ch.Name, lists)
		}
		lists = []string{o.list}
	}
	q, err := r.openQueues(ctx, k, ch, &o.transport)
	if err != nil {
		return nil, nil, nil, err
	}
	return ch, q, lists, nil
}

// listDLQ reads DLQ:{ingress} of every list, in queue order, with the
// recorded reasons.
func listDLQ(ctx context.Context, q queues, lists []string) ([]DLQEntry, error) {
	out := []DLQEntry{}
	for _, list := range lists {
		entries, err := q.listDLQ(ctx, list)
		if err != nil {
			return nil, err
		}
		out = append(out, entries...)
	}
	return out, nil
}

func dlqKeys(lists []string) string {
	s := ""
	for i, l := range lists {
		if i > 0 {
			s += ", "
		}
		s += queue.DLQKey(l)
	}
	return s
}

// exactArgs is cobra.ExactArgs with a message that says what to type.
func exactArgs(n int, usage string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%s", usage)
		}
		return nil
	}
}
