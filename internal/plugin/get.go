package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// VconLocation is where one vCon is, the -o yaml|json shape of `get`.
type VconLocation struct {
	UUID   string        `json:"uuid"`
	Chains []ChainPlaces `json:"chains"`
	// Body is the document in Redis (the first Chain's Redis that holds
	// it); absent when Redis holds none.
	Body           json.RawMessage `json:"body,omitempty"`
	BodyTTLSeconds *int64          `json:"bodyTTLSeconds,omitempty"`
}

// ChainPlaces are the keys of one Chain's queues that hold the vCon.
type ChainPlaces struct {
	Namespace   string                     `json:"namespace"`
	Name        string                     `json:"name"`
	Places      []queue.Place              `json:"places"`
	DeadLetters map[string]queue.DLQReason `json:"deadLetters,omitempty"`
}

type getOptions struct {
	transport transportFlags
	chain     string
	output    string
}

func (r *root) getCommand() *cobra.Command {
	o := &getOptions{}
	cmd := &cobra.Command{
		Use:   "get UUID",
		Short: "Show where one vCon is: the lists that hold it, its dead-letter record, its body",
		Long: `Show where one vCon is in the queues of the namespace's Chains (or of
--chain): waiting on an ingress list, in flight on a worker, waiting for a
retry, dead-lettered (with the recorded reason), or on an egress list; and
its body in Redis, summarised (-o json or -o yaml print it whole).

It only reads: nothing is moved, and a body only in a storage is not read
back into Redis.`,
		Args: exactArgs(1, "name the vCon: kubectl vcon get UUID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return r.get(cmd.Context(), o, args[0])
		},
	}
	outputFlag(cmd, &o.output, "", "output format: yaml or json (default: a summary)")
	cmd.Flags().StringVar(&o.chain, "chain", "", "look only in this Chain's lists (default: every Chain of the namespace)")
	addTransportFlags(cmd.Flags(), &o.transport, func(string) string { return "" }, true)
	return cmd
}

func (r *root) get(ctx context.Context, o *getOptions, uuid string) error {
	if err := checkOutput(o.output, "", "yaml", "json"); err != nil {
		return err
	}
	if !vcon.ValidUUID(uuid) {
		return fmt.Errorf("%q is not a vCon uuid", uuid)
	}
	uuid = strings.ToLower(uuid)
	k, err := r.kube()
	if err != nil {
		return err
	}
	var chains []vconv1.Chain
	if o.chain != "" {
		ch, err := k.chain(ctx, o.chain)
		if err != nil {
			return err
		}
		chains = []vconv1.Chain{*ch}
	} else if chains, err = k.chains(ctx, false); err != nil {
		return err
	} else if len(chains) == 0 {
		return fmt.Errorf("no Chains found in namespace %s", k.namespace)
	}
	loc := VconLocation{UUID: uuid, Chains: []ChainPlaces{}}
	for i := range chains {
		ch := &chains[i]
		q, err := r.openQueues(ctx, k, ch, &o.transport)
		if err != nil {
			return fmt.Errorf("chain %s: %w", ch.Name, err)
		}
		v, err := q.lookup(ctx, uuid, queue.Target{Ingress: ch.Spec.IngressLists, Egress: ch.Spec.EgressLists})
		_ = q.close()
		if err != nil {
			return fmt.Errorf("chain %s: %w", ch.Name, err)
		}
		loc.Chains = append(loc.Chains, ChainPlaces{Namespace: ch.Namespace, Name: ch.Name, Places: v.Places, DeadLetters: v.DeadLetters})
		if loc.Body == nil && v.Body != nil {
			loc.Body, loc.BodyTTLSeconds = v.Body, v.BodyTTLSeconds
		}
	}
	if o.output != "" {
		return printObject(r.rt.Out, o.output, loc)
	}
	found := printLocation(r.rt.Out, loc, r.rt.Now())
	if !found {
		return &exitError{code: 1, msg: fmt.Sprintf("vCon %s is in no list of these Chains and has no body in Redis", uuid)}
	}
	return nil
}

// printLocation writes the human view and says whether the vCon was
// found anywhere.
func printLocation(w io.Writer, loc VconLocation, now time.Time) bool {
	found := loc.Body != nil
	fmt.Fprintf(w, "vCon %s\n", loc.UUID)
	for _, c := range loc.Chains {
		if len(c.Places) == 0 {
			fmt.Fprintf(w, "  chain %s: in none of its lists\n", c.Name)
			continue
		}
		found = true
		fmt.Fprintf(w, "  chain %s:\n", c.Name)
		for _, p := range c.Places {
			fmt.Fprintf(w, "    %s\n", describePlace(p, now))
			if r, ok := c.DeadLetters[p.List]; ok && p.Kind == queue.KindDLQ {
				line := "dead-lettered"
				if !r.At.IsZero() {
					line += " " + age(now, r.At) + " ago"
				}
				if r.Step != "" {
					line += " at step " + r.Step
				}
				fmt.Fprintf(w, "      %s: %s\n", line, oneLine(r.Reason))
				if len(r.Completed) > 0 {
					fmt.Fprintf(w, "      completed links (a replay resumes after them): %s\n", strings.Join(r.Completed, ", "))
				}
			} else if p.Kind == queue.KindDLQ {
				fmt.Fprintln(w, "      no reason recorded")
			}
		}
	}
	if loc.Body == nil {
		fmt.Fprintln(w, "  body: not in Redis (expired, or only in a storage)")
		return found
	}
	ttl := "no expiry"
	if loc.BodyTTLSeconds != nil {
		ttl = "expires in " + age(now.Add(time.Duration(*loc.BodyTTLSeconds)*time.Second), now)
	}
	fmt.Fprintf(w, "  body: in Redis, %d bytes, %s\n", len(loc.Body), ttl)
	var doc map[string]any
	if json.Unmarshal(loc.Body, &doc) == nil {
		var parts []string
		if s, ok := doc["created_at"].(string); ok {
			parts = append(parts, "created_at "+s)
		}
		if s, ok := doc["subject"].(string); ok && s != "" {
			parts = append(parts, fmt.Sprintf("subject %q", s))
		}
		for _, key := range []string{vcon.Parties, vcon.Dialog, vcon.Analysis, vcon.Attachments} {
			if l, ok := doc[key].([]any); ok {
				parts = append(parts, fmt.Sprintf("%d %s", len(l), key))
			}
		}
		fmt.Fprintf(w, "        %s (-o json prints it whole)\n", strings.Join(parts, ", "))
	}
	return true
}

func describePlace(p queue.Place, now time.Time) string {
	pos := ""
	if p.Position != nil {
		pos = fmt.Sprintf(" (position %d from the head)", *p.Position)
	}
	switch p.Kind {
	case queue.KindIngress:
		return "waiting on ingress list " + p.List + pos
	case queue.KindInFlight:
		return "in flight on " + p.List + ", taken by worker " + p.Worker
	case queue.KindRetry:
		due := ""
		if p.Due != nil {
			if p.Due.After(now) {
				due = ", due in " + age(*p.Due, now)
			} else {
				due = ", due " + age(now, *p.Due) + " ago"
			}
		}
		return "waiting for a retry on " + p.List + due
	case queue.KindDLQ:
		return "dead-lettered in " + p.Key + pos
	case queue.KindEgress:
		return "on egress list " + p.List + pos
	}
	return p.Kind + " " + p.Key
}
