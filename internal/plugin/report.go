package plugin

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/version"
	"github.com/vcon-operator/vcon-operator/internal/workload"
)

type reportOptions struct {
	transport         transportFlags
	out               string
	tail              int64
	events            int
	operatorNamespace string
	noQueues          bool
}

func (r *root) reportCommand() *cobra.Command {
	o := &reportOptions{}
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Write a diagnostics bundle of the namespace's Chains, with secrets redacted",
		Long: `Write a diagnostics bundle to attach to an issue: the namespace's Chains,
Links and Storages (YAML, status included), their conditions, the
namespace's recent events, the last --tail lines of each worker pod's log
and of the operator's and the API's pods (from --operator-namespace), and
the queue figures measured now (see --via; --no-queues leaves them out).

Secrets are never read into it (a Secret reference stays a name), and every
string is redacted: URL passwords and credential query parameters,
password=/token:/api_key= values, Bearer and Basic credentials, option
values under credential keys, the API token and the Chains' Redis
passwords wherever they appear. What could not be collected is listed in
summary.txt rather than failing the report.

--out ends in .tar.gz or .tgz for an archive; anything else is a directory
(which must not exist yet).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return r.report(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.out, "out", "", "where to write the bundle (default: vcon-report-<time>.tar.gz in the current directory)")
	f.Int64Var(&o.tail, "tail", 200, "log lines per container")
	f.IntVar(&o.events, "events", 300, "most recent events per namespace")
	f.StringVar(&o.operatorNamespace, "operator-namespace", DefaultAPINamespace, "namespace of the operator and the API, for their logs and events")
	f.BoolVar(&o.noQueues, "no-queues", false, "do not measure the queues")
	addTransportFlags(f, &o.transport, func(string) string { return "" }, true)
	return cmd
}

// bundle collects the files of a report, each redacted on the way in.
type bundle struct {
	red      *redactor
	files    map[string][]byte
	problems []string
}

func (b *bundle) add(name string, data []byte) {
	b.files[name] = []byte(b.red.redactText(string(data)))
}

func (b *bundle) addObject(name string, v any) {
	// Through JSON to plain maps, so that every field is redacted.
	raw, err := json.Marshal(v)
	if err != nil {
		b.problem("encode %s: %v", name, err)
		return
	}
	var plain any
	if err := json.Unmarshal(raw, &plain); err != nil {
		b.problem("encode %s: %v", name, err)
		return
	}
	out, err := yaml.Marshal(b.red.redactValue(plain, false))
	if err != nil {
		b.problem("encode %s: %v", name, err)
		return
	}
	b.add(name, out)
}

func (b *bundle) problem(format string, args ...any) {
	b.problems = append(b.problems, oneLine(fmt.Sprintf(format, args...)))
}

func (r *root) report(ctx context.Context, o *reportOptions) error {
	now := r.rt.Now().UTC()
	out := o.out
	if out == "" {
		out = "vcon-report-" + now.Format("20060102-150405") + ".tar.gz"
	}
	archive := strings.HasSuffix(out, ".tar.gz") || strings.HasSuffix(out, ".tgz")
	if _, err := os.Stat(out); err == nil {
		return fmt.Errorf("%s already exists: choose another --out", out)
	}
	k, err := r.kube()
	if err != nil {
		return err
	}
	b := &bundle{red: &redactor{}, files: map[string][]byte{}}
	if t := o.transport.api.token; t != "" {
		b.red.learn(t)
	}
	if t := r.rt.Getenv("CONSERVER_API_TOKEN"); t != "" {
		b.red.learn(t)
	}
	if u := r.rt.Getenv("REDIS_URL"); u != "" {
		b.red.learn(u)
	}
	if o.transport.redisURL != "" {
		b.red.learn(o.transport.redisURL)
	}
	chains, err := k.chains(ctx, false)
	if err != nil {
		return err
	}
	for _, ch := range chains {
		if ch.Spec.Redis.URL != "" {
			b.red.learn(ch.Spec.Redis.URL)
		}
	}
	r.collectObjects(ctx, k, b, chains)
	if !o.noQueues {
		r.collectQueues(ctx, k, b, chains, &o.transport)
	}
	cs, err := kubernetes.NewForConfig(k.config)
	if err != nil {
		return fmt.Errorf("client for the Kubernetes API server: %w", err)
	}
	namespaces := []string{k.namespace}
	if o.operatorNamespace != "" && o.operatorNamespace != k.namespace {
		namespaces = append(namespaces, o.operatorNamespace)
	}
	for _, ns := range namespaces {
		collectEvents(ctx, k, b, ns, o.events)
	}
	collectLogs(ctx, k, cs, b, k.namespace, client.MatchingLabels{workload.LabelName: workload.WorkerName, workload.LabelManagedBy: workload.ManagedBy}, o.tail)
	if o.operatorNamespace != "" {
		collectLogs(ctx, k, cs, b, o.operatorNamespace, client.MatchingLabels{"app.kubernetes.io/part-of": "vcon-operator"}, o.tail)
	}
	b.add("summary.txt", []byte(summaryText(now, k.namespace, chains, b)))
	if archive {
		err = writeArchive(out, b.files)
	} else {
		err = writeDir(out, b.files)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(r.rt.Out, "Wrote %s: %d files, %d Chains, %d things not collected (see summary.txt).\n", out, len(b.files), len(chains), len(b.problems))
	return nil
}

func summaryText(now time.Time, ns string, chains []vconv1.Chain, b *bundle) string {
	var s strings.Builder
	v := version.Get()
	fmt.Fprintf(&s, "kubectl vcon report\ncreated: %s\nplugin: %s (%s)\nnamespace: %s\nchains: %d\n", now.Format(time.RFC3339), v.Version, v.GitCommit, ns, len(chains))
	names := make([]string, 0, len(b.files))
	for n := range b.files {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(&s, "\nfiles:\n")
	for _, n := range names {
		fmt.Fprintf(&s, "  %s\n", n)
	}
	fmt.Fprintf(&s, "\nnot collected:\n")
	if len(b.problems) == 0 {
		fmt.Fprintln(&s, "  nothing")
	}
	for _, p := range b.problems {
		fmt.Fprintf(&s, "  - %s\n", p)
	}
	fmt.Fprintln(&s, "\nSecrets are not included; credentials in what is are masked as ***.")
	return s.String()
}

// collectObjects writes the Chains, Links and Storages, without
// managedFields, and a table of their conditions.
func (r *root) collectObjects(ctx context.Context, k *kube, b *bundle, chains []vconv1.Chain) {
	var links vconv1.LinkList
	if err := k.client.List(ctx, &links, client.InNamespace(k.namespace)); err != nil {
		b.problem("list Links: %v", err)
	}
	var storages vconv1.StorageList
	if err := k.client.List(ctx, &storages, client.InNamespace(k.namespace)); err != nil {
		b.problem("list Storages: %v", err)
	}
	var conds strings.Builder
	tw := tabwriter.NewWriter(&conds, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAME\tTYPE\tSTATUS\tREASON\tGENERATION\tSINCE\tMESSAGE")
	row := func(kind string, m *metav1.ObjectMeta, cs []metav1.Condition) {
		m.ManagedFields = nil
		if len(cs) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t%d\t-\tno conditions reported\n", kind, m.Name, m.Generation)
		}
		for _, c := range cs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", kind, m.Name, c.Type, c.Status, c.Reason, c.ObservedGeneration, m.Generation, c.LastTransitionTime.UTC().Format(time.RFC3339), oneLine(c.Message))
		}
	}
	for i := range chains {
		row("Chain", &chains[i].ObjectMeta, chains[i].Status.Conditions)
	}
	for i := range links.Items {
		row("Link", &links.Items[i].ObjectMeta, links.Items[i].Status.Conditions)
	}
	for i := range storages.Items {
		row("Storage", &storages.Items[i].ObjectMeta, storages.Items[i].Status.Conditions)
	}
	_ = tw.Flush()
	b.add("conditions.txt", []byte(conds.String()))
	b.addObject("objects/chains.yaml", chains)
	b.addObject("objects/links.yaml", links.Items)
	b.addObject("objects/storages.yaml", storages.Items)
}

// collectQueues measures each Chain's queues through the chosen transport.
func (r *root) collectQueues(ctx context.Context, k *kube, b *bundle, chains []vconv1.Chain, t *transportFlags) {
	type chainQueues struct {
		Chain   string `json:"chain"`
		Figures any    `json:"figures,omitempty"`
		Error   string `json:"error,omitempty"`
	}
	var out []chainQueues
	for i := range chains {
		ch := &chains[i]
		cq := chainQueues{Chain: ch.Name}
		q, err := r.openQueues(ctx, k, ch, t)
		if a, ok := q.(*apiQueues); ok && a.a.token != "" {
			b.red.learn(a.a.token)
		}
		if err == nil {
			var f any
			f, err = q.measure(ctx, queue.Target{Ingress: ch.Spec.IngressLists, Egress: ch.Spec.EgressLists})
			cq.Figures = f
			_ = q.close()
		}
		if err != nil {
			cq.Figures = nil
			cq.Error = err.Error()
			b.problem("queues of chain %s: %v", ch.Name, err)
		}
		out = append(out, cq)
	}
	b.addObject("queues.yaml", out)
}

// collectEvents writes the namespace's most recent events, oldest first.
func collectEvents(ctx context.Context, k *kube, b *bundle, ns string, limit int) {
	var list corev1.EventList
	if err := k.client.List(ctx, &list, client.InNamespace(ns)); err != nil {
		b.problem("list events in %s: %v", ns, err)
		return
	}
	when := func(e corev1.Event) time.Time {
		switch {
		case !e.LastTimestamp.IsZero():
			return e.LastTimestamp.Time
		case !e.EventTime.IsZero():
			return e.EventTime.Time
		}
		return e.CreationTimestamp.Time
	}
	sort.SliceStable(list.Items, func(i, j int) bool { return when(list.Items[i]).Before(when(list.Items[j])) })
	items := list.Items
	if len(items) > limit {
		items = items[len(items)-limit:]
	}
	var s strings.Builder
	tw := tabwriter.NewWriter(&s, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tTYPE\tREASON\tOBJECT\tCOUNT\tMESSAGE")
	for _, e := range items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s/%s\t%d\t%s\n", when(e).UTC().Format(time.RFC3339), e.Type, e.Reason, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Count, oneLine(e.Message))
	}
	_ = tw.Flush()
	b.add("events/"+ns+".txt", []byte(s.String()))
}

// collectLogs writes the last tail lines of each container of the pods sel
// selects, through the API server's pod log endpoint.
func collectLogs(ctx context.Context, k *kube, cs kubernetes.Interface, b *bundle, ns string, sel client.MatchingLabels, tail int64) {
	var pods corev1.PodList
	if err := k.client.List(ctx, &pods, client.InNamespace(ns), sel); err != nil {
		b.problem("list pods in %s: %v", ns, err)
		return
	}
	for _, p := range pods.Items {
		for _, c := range p.Spec.Containers {
			name := "logs/" + ns + "/" + p.Name + "/" + c.Name + ".log"
			lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			data, err := cs.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: c.Name, TailLines: &tail, Timestamps: true}).DoRaw(lctx)
			cancel()
			if err != nil {
				b.problem("log of %s/%s container %s: %v", ns, p.Name, c.Name, err)
				continue
			}
			b.add(name, data)
		}
	}
}

func writeDir(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return fmt.Errorf("create %s: %w", filepath.Dir(p), err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	return nil
}

func writeArchive(path string, files map[string][]byte) error {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	root := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), ".tgz"), ".tar.gz")
	for _, n := range names {
		hdr := &tar.Header{Name: root + "/" + n, Mode: 0o600, Size: int64(len(files[n])), ModTime: time.Now()}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(files[n]); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
