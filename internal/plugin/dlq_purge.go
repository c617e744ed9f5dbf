package plugin

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vcon-operator/vcon-operator/internal/queue"
)

func (r *root) dlqPurgeCommand() *cobra.Command {
	o := &dlqOptions{}
	cmd := &cobra.Command{
		Use:   "purge CHAIN",
		Short: "Remove dead-lettered vCons from the Chain's DLQs for good, after showing how many and asking",
		Long: `Remove dead-lettered vCons from DLQ:{ingress} for good, with their recorded
reasons. It shows how many would go and asks you to type the Chain's name;
--yes skips the question (for scripts). Only the vCons counted are removed:
one dead-lettered while you were asked stays.

The bodies are not deleted: dead-lettering gave each its DLQ expiry, and a
storage may hold the only other copy. kubectl vcon erase deletes a vCon.

--reason R purges only the vCons whose recorded reason contains R.`,
		Args: exactArgs(1, "name the Chain: kubectl vcon dlq purge CHAIN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			ch, q, lists, err := r.chainQueues(ctx, args[0], o)
			if err != nil {
				return err
			}
			defer q.close()
			m := queue.ReasonMatch{Substring: o.reason}
			chosen := map[string][]string{}
			total := 0
			var counts []string
			for _, list := range lists {
				entries, err := q.listDLQ(ctx, list)
				if err != nil {
					return err
				}
				for _, e := range entries {
					// An entry without a reason has empty text, which no
					// non-empty substring matches: ReasonMatch's rule.
					if m.Matches(queue.DeadLetter{UUID: e.UUID, Recorded: true, Reason: queue.DLQReason{Reason: e.Reason}}) {
						chosen[list] = append(chosen[list], e.UUID)
					}
				}
				total += len(chosen[list])
				counts = append(counts, fmt.Sprintf("%s: %d", queue.DLQKey(list), len(chosen[list])))
			}
			what := "dead-lettered vCons"
			if o.reason != "" {
				what += fmt.Sprintf(" whose reason contains %q", o.reason)
			}
			if total == 0 {
				fmt.Fprintf(r.rt.Out, "No %s in chain %s (%s); nothing purged.\n", what, ch.Name, strings.Join(counts, ", "))
				return nil
			}
			fmt.Fprintf(r.rt.Out, "%d %s in chain %s (%s).\n", total, what, ch.Name, strings.Join(counts, ", "))
			if !o.yes {
				fmt.Fprintf(r.rt.Out, "Type the chain's name (%s) to remove them for good: ", ch.Name)
				line, _ := bufio.NewReader(r.rt.In).ReadString('\n')
				if strings.TrimSpace(line) != ch.Name {
					fmt.Fprintln(r.rt.Out)
					return fmt.Errorf("not confirmed: nothing purged (type %s, or pass --yes)", ch.Name)
				}
			}
			purged := 0
			for _, list := range lists {
				if len(chosen[list]) == 0 {
					continue
				}
				n, err := q.purge(ctx, list, chosen[list])
				purged += n
				if err != nil {
					return fmt.Errorf("%w (%d purged before the error)", err, purged)
				}
			}
			fmt.Fprintf(r.rt.Out, "Purged %d dead-lettered vCons.\n", purged)
			return nil
		},
	}
	dlqFlags(cmd, r, o)
	cmd.Flags().StringVar(&o.reason, "reason", "", "purge only the vCons whose recorded reason contains this text")
	cmd.Flags().BoolVar(&o.yes, "yes", false, "do not ask; purge what is counted")
	return cmd
}
