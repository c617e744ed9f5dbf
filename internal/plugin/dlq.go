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
	// IngressList is the list whose DLQ holds the vCon; Storage instead
	// names the storage whose DLQ (DLQ:storage:{name}) holds a write that
	// failed while the vCon went on (dlq list --storage).
	IngressList string `json:"ingressList,omitempty"`
	Storage     string `json:"storage,omitempty"`
	UUID        string `json:"uuid"`
	// Reason and the fields after it are what the worker recorded; empty
	// when nothing was recorded (a uuid dead-lettered by conserver itself).
	Reason string     `json:"reason,omitempty"`
	Chain  string     `json:"chain,omitempty"`
	Step   string     `json:"step,omitempty"`
	At     *time.Time `json:"at,omitempty"`
}

// listStorageDLQ reads DLQ:storage:{name} through either transport: it is
// the DLQ of the pseudo-list storage:{name}, whose reasons are recorded
// under that name, so it reads as any DLQ does.
func listStorageDLQ(ctx context.Context, q queues, storage string) ([]DLQEntry, error) {
	entries, err := q.listDLQ(ctx, queue.StorageDLQList(storage))
	for i := range entries {
		entries[i].IngressList, entries[i].Storage = "", storage
	}
	return entries, err
}

type dlqOptions struct {
	transport transportFlags
	list      string
	storage   string
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

func dlqFlags(cmd *cobra.Command, r *root, o *dlqOptions) {
	addTransportFlags(cmd.Flags(), &o.transport, r.rt.Getenv, true)
	cmd.Flags().StringVar(&o.list, "ingress-list", "", "only this ingress list of the Chain (default: all of them)")
	cmd.Flags().StringVar(&o.storage, "storage", "", "the DLQ of this storage of the Chain, DLQ:storage:NAME (failed writes of a Chain with storageFailure DeadLetterStorage), instead of DLQ:{ingress}")
	cmd.MarkFlagsMutuallyExclusive("storage", "ingress-list")
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
			var entries []DLQEntry
			keys, column := dlqKeys(lists), "INGRESS"
			if o.storage != "" {
				entries, err = listStorageDLQ(ctx, q, o.storage)
				keys, column = queue.StorageDLQKey(o.storage), "STORAGE"
			} else {
				entries, err = listDLQ(ctx, q, lists)
			}
			if err != nil {
				return err
			}
			if o.output != "" {
				return printObject(r.rt.Out, o.output, entries)
			}
			if len(entries) == 0 {
				fmt.Fprintf(r.rt.Out, "No dead-lettered vCons for chain %s (%s).\n", ch.Name, keys)
				return nil
			}
			now := r.rt.Now()
			tw := tabwriter.NewWriter(r.rt.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, column+"\tUUID\tAGE\tSTEP\tREASON")
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
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.IngressList+e.Storage, e.UUID, when, step, reason)
			}
			return tw.Flush()
		},
	}
	dlqFlags(cmd, r, o)
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

--storage NAME replays DLQ:storage:NAME instead: the writes to that storage
that failed while their vCons went on to egress (storageFailure
DeadLetterStorage). Only that write runs again, for each uuid, from its body
in Redis; the chain does not. The conserver API does the writes (POST
{api-url}/dlq/storage/reprocess, conserver's), since it holds the storage's
configuration and credentials: --api-url or env API_URL, --token or env
CONSERVER_API_TOKEN. A uuid leaves the list only once its write succeeded;
the replay stops at the first write that fails.

--reason R replays only the vCons whose recorded reason contains R (case
matters; a vCon with no recorded reason never matches): after fixing one
cause, replay what it broke and leave the rest.`,
		Args: exactArgs(1, "name the Chain: kubectl vcon dlq replay CHAIN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.count < 0 {
				return fmt.Errorf("--count must be positive (or 0 for all)")
			}
			ctx := cmd.Context()
			if o.storage != "" {
				return r.replayStorage(ctx, args[0], o)
			}
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
	dlqFlags(cmd, r, o)
	cmd.Flags().IntVar(&o.count, "count", 0, "move (with --storage: write) at most this many vCons in all (default: all of them)")
	cmd.MarkFlagsMutuallyExclusive("storage", "from-start")
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
	if o.storage != "" && !slices.Contains(ch.Spec.Storages, o.storage) {
		return nil, nil, nil, fmt.Errorf("%q is not a storage of chain %s (its storages: %v)", o.storage, ch.Name, ch.Spec.Storages)
	}
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

// storageReplayBatch is how many writes one API call asks for: each call
// stays short however long the list (conserver's count).
const storageReplayBatch = 1000

// replayStorage writes again, through the API, the failed writes queued on
// DLQ:storage:{name} of one of the Chain's storages, batch by batch, until
// --count are written, the list is empty, or a write fails (the API stops
// there and leaves it queued).
func (r *root) replayStorage(ctx context.Context, chainName string, o *dlqOptions) error {
	if o.transport.via == viaRedis {
		return fmt.Errorf("--storage replays through the vCon API, which holds the storage's configuration and credentials: leave out --via redis")
	}
	k, err := r.kube()
	if err != nil {
		return err
	}
	ch, err := k.chain(ctx, chainName)
	if err != nil {
		return err
	}
	if !slices.Contains(ch.Spec.Storages, o.storage) {
		return fmt.Errorf("%q is not a storage of chain %s (its storages: %v)", o.storage, ch.Name, ch.Spec.Storages)
	}
	// The API does the writes, whatever transport the listing used: it
	// holds the storage's configuration and credentials.
	api, err := r.openAPI(ctx, k, o.transport.api)
	if err != nil {
		return err
	}
	left := o.count
	if left == 0 {
		left = math.MaxInt
	}
	written := 0
	for left > 0 {
		want := min(left, storageReplayBatch)
		n, err := api.replayStorageDLQ(ctx, o.storage, want)
		written += n
		left -= n
		if err != nil {
			return fmt.Errorf("%w (%d written before the error)", err, written)
		}
		if n < want {
			break // the list is empty, or a write failed
		}
	}
	fmt.Fprintf(r.rt.Out, "Wrote %d vCons to storage %s again.\n", written, o.storage)
	remaining, err := api.storageDLQLength(ctx, o.storage)
	if err != nil {
		return err
	}
	if remaining > 0 && left > 0 {
		return &exitError{code: 1, msg: fmt.Sprintf("%d remain in %s: a write failed, or a body is gone from Redis; kubectl vcon dlq list %s --storage %s shows why", remaining, queue.StorageDLQKey(o.storage), ch.Name, o.storage)}
	}
	return nil
}
