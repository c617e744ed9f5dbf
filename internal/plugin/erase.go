package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/vcon-operator/vcon-operator/internal/apiwire"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

type eraseOptions struct {
	api         apiTarget
	tel, mailto string
	output      string
}

func (r *root) eraseCommand() *cobra.Command {
	o := &eraseOptions{}
	cmd := &cobra.Command{
		Use:   "erase UUID | --tel NUMBER | --mailto ADDRESS",
		Short: "Erase a vCon, or every vCon of a party, and report what was erased",
		Long: `Erase a vCon, or every vCon of a party, through the conserver API, and say
per place (Redis, each storage) what was erased and what was not.

  kubectl vcon erase 018f3c1e-1111-7000-8000-000000000001
  kubectl vcon erase --tel +15551234567
  kubectl vcon erase --mailto alice@example.com

A uuid is erased with DELETE /api/vcon/UUID; a party with
POST /api/vcons/erase, which finds its vCons through the party index and
the storages that can search by party. The API is --api-url (env API_URL),
else the chart's API Service through the Kubernetes API server's service
proxy; its token --token, env CONSERVER_API_TOKEN, or the Secret the API
Service names.

The exit code is 0 when everything that can be erased was, 1 when a place
failed (run the command again: erasing twice is safe). Places that cannot
delete (a webhook storage) are listed as unsupported: what they received
must be erased where it went.`,
		Args: func(cmd *cobra.Command, args []string) error {
			byParty := o.tel != "" || o.mailto != ""
			switch {
			case o.tel != "" && o.mailto != "":
				return fmt.Errorf("give one of --tel and --mailto")
			case byParty && len(args) > 0:
				return fmt.Errorf("give a uuid or a party (--tel, --mailto), not both")
			case !byParty && len(args) != 1:
				return fmt.Errorf("name the vCon or the party: kubectl vcon erase UUID, or --tel NUMBER, or --mailto ADDRESS")
			case len(args) == 1 && !vcon.ValidUUID(args[0]):
				return fmt.Errorf("%q is not a vCon uuid", args[0])
			}
			return checkOutput(o.output, "", "json", "yaml")
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			uuid := ""
			if len(args) == 1 {
				uuid = strings.ToLower(args[0])
			}
			return r.erase(cmd.Context(), o, uuid)
		},
	}
	f := cmd.Flags()
	addAPIFlags(f, &o.api, r.rt.Getenv, true)
	f.StringVar(&o.tel, "tel", "", "erase every vCon with a party of this tel")
	f.StringVar(&o.mailto, "mailto", "", "erase every vCon with a party of this mailto")
	outputFlag(cmd, &o.output, "", "output format: json or yaml (default: a table)")
	return cmd
}

func (r *root) erase(ctx context.Context, o *eraseOptions, uuid string) error {
	var k *kube
	if o.api.url == "" {
		var err error
		if k, err = r.kube(); err != nil {
			return err
		}
	}
	a, err := r.openAPI(ctx, k, o.api)
	if err != nil {
		return err
	}
	method, path, body := http.MethodDelete, "/vcon/"+uuid, []byte(nil)
	if uuid == "" {
		// A POST body, so that the party's identifier is in no URL.
		method, path = http.MethodPost, "/vcons/erase"
		body, _ = json.Marshal(apiwire.PartyErasure{Tel: o.tel, Mailto: o.mailto})
	}
	code, answer, err := a.send(ctx, method, path, nil, body)
	if err != nil {
		return err
	}
	status := fmt.Sprintf("%d %s", code, http.StatusText(code))
	switch code {
	case http.StatusOK, http.StatusInternalServerError:
		// 500 carries the report of what could not be erased.
	case http.StatusNoContent:
		// An API without reports (conserver's): it says nothing more.
		fmt.Fprintf(r.rt.Out, "vCon %s erased (the API gave no report)\n", uuid)
		return nil
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		if a.service == "" || !isKubeStatus(answer) {
			return fmt.Errorf("%s answered %s for %s: is --api-url the API's base, ending in /api, and does it erase by party?", a.where(), status, method)
		}
		return a.refusal(method, path, code, answer)
	default:
		return a.refusal(method, path, code, answer)
	}

	var reports []apiwire.ErasureReport
	var searched []apiwire.ErasurePlace
	var complete bool
	var doc any
	if uuid != "" {
		var rep apiwire.ErasureReport
		err, doc = json.Unmarshal(answer, &rep), &rep
		reports, complete = []apiwire.ErasureReport{rep}, rep.Complete
	} else {
		var rep apiwire.PartyErasureReport
		err, doc = json.Unmarshal(answer, &rep), &rep
		reports, searched, complete = rep.VCons, rep.Searched, rep.Complete
	}
	if err != nil {
		return fmt.Errorf("%s answered %s with a body that is not an erasure report: %s", a.where(), status, apiDetail(answer))
	}
	if o.output != "" {
		if err := printObject(r.rt.Out, o.output, doc); err != nil {
			return err
		}
	} else if err := printErasure(r.rt.Out, searched, reports); err != nil {
		return err
	}
	if !complete {
		return &exitError{code: 1, msg: "not everything could be erased (see above); running the command again is safe"}
	}
	return nil
}

// printErasure writes one line per place: what was searched, then per vCon
// Redis and each storage.
func printErasure(w io.Writer, searched []apiwire.ErasurePlace, reports []apiwire.ErasureReport) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VCON\tPLACE\tSTATUS\tDETAIL")
	for _, s := range searched {
		detail := s.Reason
		if s.Status == apiwire.Searched {
			detail = fmt.Sprintf("%d found", s.Found)
		}
		fmt.Fprintf(tw, "-\t%s\t%s\t%s\n", s.Name, s.Status, oneLine(detail))
	}
	for _, rep := range reports {
		redis := rep.Redis.Reason
		if rep.Redis.Status != apiwire.Failed {
			redis = fmt.Sprintf("%d index entries, %d queue entries removed", rep.IndexesRemoved, rep.QueueEntriesRemoved)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", rep.UUID, rep.Redis.Name, rep.Redis.Status, oneLine(redis))
		for _, s := range rep.Storages {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", rep.UUID, s.Name, s.Status, oneLine(s.Reason))
		}
	}
	if len(searched) > 0 && len(reports) == 0 {
		fmt.Fprintln(tw, "-\t-\t-\tno vCon of this party was found")
	}
	return tw.Flush()
}
