package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/vcon-operator/vcon-operator/internal/apiwire"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// maxFileBytes bounds one vCon file; the API's default body limit is far
// below it.
const maxFileBytes = 256 << 20

type pushOptions struct {
	transport transportFlags
	direct    bool
	list      string
	ttl       time.Duration
}

// pushInput is one file (or stdin) to push.
type pushInput struct {
	name string
	data []byte
}

func (r *root) pushCommand() *cobra.Command {
	o := &pushOptions{}
	cmd := &cobra.Command{
		Use:   "push CHAIN FILE|DIR|-",
		Short: "Validate vCon JSON files and queue them on the Chain's first ingress list",
		Long: `Validate vCon JSON files and queue them on the Chain's first ingress list.

FILE is one vCon JSON document, DIR every *.json file in it, - one document on
stdin. Every file is validated first, as the API would; an invalid one is
reported with its field errors and not pushed, the valid ones are still
pushed, and the exit code is 1 when any file was not pushed.

By default the vCons go through the vCon API (POST /api/vcon): at --api-url
(or env API_URL), else the chart's API Service through the Kubernetes API
server's service proxy. The token is --token, else env CONSERVER_API_TOKEN,
else the Secret the API Service names, when you may read it.

With --direct they are written straight to the Chain's Redis: the body (with
the TTL the API would give it) and the uuid on the list, in one MULTI/EXEC.
Where Redis cannot be reached (--via api, or auto without a Redis URL while
the API Service exists), --direct is the API's POST, which writes the same
keys in the same one transaction.`,
		Args: exactArgs(2, "name the Chain and the vCon files: kubectl vcon push CHAIN FILE|DIR|-"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return r.push(cmd.Context(), o, args[0], args[1])
		},
	}
	f := cmd.Flags()
	addTransportFlags(f, &o.transport, r.rt.Getenv, true)
	f.BoolVar(&o.direct, "direct", false, "write straight to the Chain's Redis instead of through the API")
	f.StringVar(&o.list, "ingress-list", "", "queue on this ingress list of the Chain instead of its first")
	f.DurationVar(&o.ttl, "ttl", apiwire.DefaultVconTTL, "with --direct, the body's time to live, as the API's VCON_REDIS_EXPIRY (0: none)")
	return cmd
}

func (r *root) push(ctx context.Context, o *pushOptions, chainName, path string) error {
	if !o.direct && o.transport.via == viaRedis {
		return fmt.Errorf("--via redis writes straight to Redis: add --direct")
	}
	if o.direct && o.ttl < 0 {
		return fmt.Errorf("--ttl must not be negative")
	}
	inputs, err := readInputs(path, r.rt.In)
	if err != nil {
		return err
	}
	k, err := r.kube()
	if err != nil {
		return err
	}
	ch, err := k.chain(ctx, chainName)
	if err != nil {
		return err
	}
	list := ch.Spec.IngressLists[0]
	if o.list != "" {
		if !slices.Contains(ch.Spec.IngressLists, o.list) {
			return fmt.Errorf("%q is not an ingress list of chain %s (its lists: %v)", o.list, ch.Name, ch.Spec.IngressLists)
		}
		list = o.list
	}

	var send func(ctx context.Context, in pushInput, v *vcon.VCon) (string, error)
	via := "through the API"
	var api *apiClient
	if o.direct {
		// --api-url names the API for pushes without --direct: it does
		// not turn --direct into a POST.
		t := o.transport
		t.api.url = ""
		if api, err = r.chooseAPI(ctx, k, &t); err != nil {
			return err
		}
	} else if api, err = r.openAPI(ctx, k, o.transport.api); err != nil {
		var none *errNoAPIService
		if errors.As(err, &none) {
			return fmt.Errorf("say where to push: %s; or --api-url http://HOST:8000/api (env API_URL), or --direct to write to Redis", none.msg)
		}
		return err
	}
	if api == nil {
		rdb, _, err := r.openRedis(ctx, k, ch, o.transport.redisURL)
		if err != nil {
			return err
		}
		defer rdb.Close()
		format, err := vconstore.ParseNewKeyFormat(r.rt.Getenv(vconstore.EnvBodyFormat))
		if err != nil {
			return err
		}
		sortedSet := r.rt.Getenv("VCON_SORTED_SET_NAME")
		if sortedSet == "" {
			sortedSet = apiwire.DefaultSortedSet
		}
		d := &directPusher{rdb: rdb, store: vconstore.New(rdb, vconstore.Options{NewKeyFormat: format}), list: list, ttl: o.ttl, sortedSet: sortedSet}
		send = func(ctx context.Context, _ pushInput, v *vcon.VCon) (string, error) { return d.push(ctx, v) }
		via = "straight to Redis"
	} else {
		send = (&apiPusher{api: api, list: list}).push
		if o.direct {
			via = "through the API (its POST is --direct's write, done by the API)"
		}
	}

	failed, pushed := 0, 0
	for _, in := range inputs {
		// The API's own check, so that --direct refuses (and converts)
		// what POST /api/vcon would: a file pushed either way is stored
		// the same.
		v, err := vcon.Parse(in.data)
		var errs []vcon.FieldError
		if err == nil {
			errs, _ = vcon.CheckSubmission(v)
		}
		switch {
		case err != nil:
			fmt.Fprintf(r.rt.ErrOut, "%s: not pushed: %s\n", in.name, strings.TrimPrefix(err.Error(), "vcon: "))
			failed++
			continue
		case len(errs) > 0:
			msgs := make([]string, len(errs))
			for i, e := range errs {
				msgs[i] = e.Error()
			}
			fmt.Fprintf(r.rt.ErrOut, "%s: not pushed: invalid vCon: %s\n", in.name, strings.Join(msgs, "; "))
			failed++
			continue
		}
		uuid, err := send(ctx, in, v)
		var fatal *fatalPushError
		if errors.As(err, &fatal) {
			return fmt.Errorf("%s (%d pushed, %d not pushed before it)", fatal.msg, pushed, failed)
		}
		if err != nil {
			fmt.Fprintf(r.rt.ErrOut, "%s: not pushed: %s\n", in.name, oneLine(err.Error()))
			failed++
			continue
		}
		pushed++
		fmt.Fprintf(r.rt.Out, "%s: pushed %s\n", in.name, uuid)
	}
	fmt.Fprintf(r.rt.Out, "Pushed %d of %d vCons onto %s (chain %s) %s.\n", pushed, len(inputs), list, ch.Name, via)
	if failed > 0 {
		return &exitError{code: 1, msg: fmt.Sprintf("%d of %d files were not pushed (reasons above)", failed, len(inputs))}
	}
	return nil
}

// readInputs reads FILE, every *.json of DIR, or stdin for "-".
func readInputs(path string, stdin io.Reader) ([]pushInput, error) {
	if path == "-" {
		data, err := io.ReadAll(io.LimitReader(stdin, maxFileBytes+1))
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		if len(data) > maxFileBytes {
			return nil, fmt.Errorf("stdin holds more than %d MiB; a vCon that large is refused by the API", maxFileBytes>>20)
		}
		return []pushInput{{name: "stdin", data: data}}, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, errors.Unwrap(err))
	}
	files := []string{path}
	if st.IsDir() {
		if files, err = filepath.Glob(filepath.Join(path, "*.json")); err != nil {
			return nil, err
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("no *.json files in directory %s", path)
		}
		sort.Strings(files)
	}
	out := make([]pushInput, 0, len(files))
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f, err)
		}
		if fi.IsDir() {
			continue
		}
		if fi.Size() > maxFileBytes {
			return nil, fmt.Errorf("%s is larger than %d MiB; a vCon that large is refused by the API", f, maxFileBytes>>20)
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f, err)
		}
		out = append(out, pushInput{name: f, data: data})
	}
	return out, nil
}

// fatalPushError stops the whole push: every further file would fail too.
type fatalPushError struct{ msg string }

func (e *fatalPushError) Error() string { return e.msg }

// apiPusher POSTs to conserver's /vcon endpoint.
type apiPusher struct {
	api  *apiClient
	list string
}

func (a *apiPusher) push(ctx context.Context, in pushInput, v *vcon.VCon) (string, error) {
	code, body, err := a.api.send(ctx, http.MethodPost, "/vcon", url.Values{"ingress_lists": {a.list}}, in.data)
	if err != nil {
		return "", &fatalPushError{err.Error()}
	}
	status := fmt.Sprintf("%d %s", code, http.StatusText(code))
	switch {
	case code == http.StatusCreated || code == http.StatusOK:
		return strings.ToLower(v.UUID()), nil
	case a.api.service != "" && isKubeStatus(body):
		// The Kubernetes API server answered, not ours: every file would
		// meet the same refusal.
		return "", &fatalPushError{a.api.refusal(http.MethodPost, "/vcon", code, body).Error()}
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		hint := "pass --token or set CONSERVER_API_TOKEN"
		if a.api.token != "" {
			hint = "the token was refused; check it"
		}
		return "", &fatalPushError{fmt.Sprintf("the API answered %s: %s", status, hint)}
	case code == http.StatusNotFound:
		return "", &fatalPushError{fmt.Sprintf("the API answered %s for POST %s/vcon: is --api-url the API's base, ending in /api?", status, a.api.base)}
	default:
		return "", fmt.Errorf("the API answered %s: %s", status, apiDetail(body))
	}
}

// apiDetail is the "detail" of a FastAPI-style error, shortened.
func apiDetail(body []byte) string {
	var e struct {
		Detail json.RawMessage `json:"detail"`
	}
	s := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &e) == nil && len(e.Detail) > 0 {
		var str string
		if json.Unmarshal(e.Detail, &str) == nil {
			s = str
		} else {
			s = string(e.Detail)
		}
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	if s == "" {
		s = "(no detail)"
	}
	return s
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// directPusher writes a vCon as the API's POST /vcon does: the body with
// the vconstore codec, its listing entry, and the uuid on the list, in one
// MULTI/EXEC so that a worker never pops a uuid whose body is not there.
type directPusher struct {
	rdb       redis.UniversalClient
	store     *vconstore.Store
	list      string
	ttl       time.Duration
	sortedSet string
}

func (d *directPusher) push(ctx context.Context, v *vcon.VCon) (string, error) {
	uuid := strings.ToLower(v.UUID())
	v.Doc()["uuid"] = uuid
	if _, ok := v.Doc()["vcon"]; !ok {
		v.Doc()["vcon"] = vcon.CurrentVersion
	}
	for _, key := range []string{vcon.Parties, vcon.Dialog, vcon.Analysis, vcon.Attachments} {
		if v.Doc()[key] == nil {
			v.Doc()[key] = []any{}
		}
	}
	body, err := v.Marshal()
	if err != nil {
		return "", err
	}
	pipe := d.rdb.TxPipeline()
	if err := d.store.QueueCreate(ctx, pipe, uuid, body, d.ttl); err != nil {
		return "", &fatalPushError{fmt.Sprintf("write to Redis: %v", err)}
	}
	if t, ok := vcon.CreatedAt(v); ok {
		pipe.ZAdd(ctx, d.sortedSet, redis.Z{Score: float64(t.Unix()), Member: vconstore.Key(uuid)})
	}
	if queue.IsCluster(d.rdb) {
		// A transaction cannot span cluster slots: body first, then the uuid.
		if _, err := pipe.Exec(ctx); err != nil {
			return "", fmt.Errorf("write %s: %w", vconstore.Key(uuid), err)
		}
		pipe = d.rdb.TxPipeline()
	}
	queue.QueuePush(ctx, pipe, d.list, queue.DefaultContextTTL, uuid)
	if _, err := pipe.Exec(ctx); err != nil {
		return "", fmt.Errorf("write %s and push it onto %s: %w", vconstore.Key(uuid), d.list, err)
	}
	return uuid, nil
}
