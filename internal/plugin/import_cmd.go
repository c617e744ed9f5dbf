package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/vcon-operator/vcon-operator/internal/config"
	"github.com/vcon-operator/vcon-operator/internal/modules"
)

type importOptions struct {
	output         string
	apply          bool
	forceConflicts bool
	sharedSecret   string
}

func (r *root) importCommand() *cobra.Command {
	o := &importOptions{}
	cmd := &cobra.Command{
		Use:   "import conserver.yml",
		Short: "Turn a conserver config into Chain, Link and Storage manifests",
		Long: `Turn a conserver config file (links, storages, chains) into Chain, Link and
Storage manifests, printed as YAML (default) or JSON, or applied to the
namespace with --apply (server-side apply, field manager kubectl-vcon).

Names become Kubernetes names (lower case, _ as -); the annotation
vcon.dev/conserver-name and a comment keep the original. Option values that
look like credentials (keys naming a password, secret, token, key or
authorization, or URLs with a password) become ${VAR} references, with env
entries reading VAR from a Secret <name>-credentials; ${VAR} references the
file already had read VAR from one shared Secret (conserver-env). The Secrets
are printed as templates holding REPLACE_ME: no credential of the file is
ever printed or applied. --apply does not create them; it says which are
missing.

Modules the worker does not implement are reported on stderr and kept, with
a warning comment and annotation.`,
		Args: exactArgs(1, "name the conserver config file: kubectl vcon import conserver.yml"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return r.importConfig(cmd.Context(), cmd, o, args[0])
		},
	}
	outputFlag(cmd, &o.output, "yaml", "output format: yaml or json")
	cmd.Flags().BoolVar(&o.apply, "apply", false, "create or update the Chains, Links and Storages in the namespace instead of printing them")
	cmd.Flags().BoolVar(&o.forceConflicts, "force-conflicts", false, "with --apply, take over fields another field manager owns")
	cmd.Flags().StringVar(&o.sharedSecret, "shared-secret", DefaultSharedSecretName, "Secret for the ${VAR} references the conserver config already had")
	return cmd
}

func (r *root) importConfig(ctx context.Context, cmd *cobra.Command, o *importOptions, path string) error {
	if err := checkOutput(o.output, "yaml", "json"); err != nil {
		return err
	}
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(r.rt.In)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	// A nil lookupEnv keeps ${VAR} references as written: they are
	// resolved by the worker, never here.
	cfg, err := config.Parse(data, nil)
	if err != nil {
		return fmt.Errorf("%s is not a conserver config: %w", path, err)
	}
	ns := ""
	var k *kube
	if o.apply {
		if k, err = r.kube(); err != nil {
			return err
		}
		ns = k.namespace
	} else if f := cmd.Flags().Lookup("namespace"); f != nil && f.Changed {
		ns = f.Value.String()
	}
	im := Import(cfg, ImportOptions{
		Namespace: ns, Source: path, SharedSecret: o.sharedSecret,
		KnownLinks: modules.Links(), KnownStorages: modules.Storages(),
	})
	for _, w := range im.Warnings {
		fmt.Fprintln(r.rt.ErrOut, "warning: "+oneLine(w))
	}
	if o.apply {
		return r.applyImport(ctx, k, im, o)
	}
	if o.output == "json" {
		return writeJSONList(r.rt.Out, im)
	}
	return writeYAMLStream(r.rt.Out, im)
}

// writeYAMLStream prints the manifests as one YAML stream, each document
// preceded by its comments.
func writeYAMLStream(w io.Writer, im *Imported) error {
	var b bytes.Buffer
	for _, line := range im.Header {
		b.WriteString(comment(line))
	}
	for _, m := range im.Manifests {
		b.WriteString("---\n")
		for _, c := range m.Comments {
			b.WriteString(comment(c))
		}
		y, err := yaml.Marshal(m.Object)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", m.Kind, m.Name, err)
		}
		b.Write(y)
	}
	_, err := w.Write(b.Bytes())
	return err
}

func comment(line string) string {
	return "# " + strings.ReplaceAll(line, "\n", " ") + "\n"
}

// writeJSONList prints the manifests as a v1 List, which kubectl apply -f
// takes; the comments live on as the objects' annotations.
func writeJSONList(w io.Writer, im *Imported) error {
	items := make([]map[string]any, len(im.Manifests))
	for i, m := range im.Manifests {
		items[i] = m.Object
	}
	return printObject(w, "json", map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
}

// applyImport applies the Chains, Links and Storages. Secret templates are
// never applied (they hold placeholders); it reports which Secrets or keys
// are missing in the namespace.
func (r *root) applyImport(ctx context.Context, k *kube, im *Imported, o *importOptions) error {
	opts := []client.ApplyOption{client.FieldOwner(FieldManager)}
	if o.forceConflicts {
		opts = append(opts, client.ForceOwnership)
	}
	failed := 0
	for _, m := range im.Manifests {
		if m.Kind == "Secret" {
			continue
		}
		b, err := json.Marshal(m.Object)
		if err != nil {
			return err
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(b); err != nil {
			return fmt.Errorf("%s %s: %w", m.Kind, m.Name, err)
		}
		u.SetNamespace(k.namespace)
		if err := k.client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), opts...); err != nil {
			failed++
			fmt.Fprintf(r.rt.ErrOut, "%s/%s: not applied: %s\n", strings.ToLower(m.Kind), m.Name, oneLine(applyError(err)))
			continue
		}
		fmt.Fprintf(r.rt.Out, "%s.vcon.dev/%s serverside-applied\n", strings.ToLower(m.Kind), m.Name)
	}
	for _, m := range im.Manifests {
		if m.Kind != "Secret" {
			continue
		}
		r.reportSecret(ctx, k, m)
	}
	if failed > 0 {
		return fmt.Errorf("%d objects were not applied (reasons above)", failed)
	}
	return nil
}

func applyError(err error) string {
	if apierrors.IsConflict(err) {
		return err.Error() + " (another field manager owns these fields; --force-conflicts takes them over)"
	}
	return err.Error()
}

// reportSecret says whether a Secret the imported objects read exists with
// the keys they need, without printing any value.
func (r *root) reportSecret(ctx context.Context, k *kube, m Manifest) {
	want, _ := m.Object["stringData"].(map[string]any)
	var s corev1.Secret
	err := k.client.Get(ctx, types.NamespacedName{Namespace: k.namespace, Name: m.Name}, &s)
	switch {
	case apierrors.IsNotFound(err):
		fmt.Fprintf(r.rt.ErrOut, "warning: secret/%s does not exist: create it with keys %s (run import without --apply for its template); until then the workers cannot start\n", m.Name, strings.Join(sortedKeys(want), ", "))
		return
	case apierrors.IsForbidden(err):
		fmt.Fprintf(r.rt.ErrOut, "warning: cannot check secret/%s (not allowed to read Secrets): it must hold keys %s\n", m.Name, strings.Join(sortedKeys(want), ", "))
		return
	case err != nil:
		fmt.Fprintf(r.rt.ErrOut, "warning: cannot check secret/%s: %s\n", m.Name, oneLine(err.Error()))
		return
	}
	var missing []string
	for _, key := range sortedKeys(want) {
		if _, ok := s.Data[key]; !ok {
			missing = append(missing, key)
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(r.rt.ErrOut, "warning: secret/%s lacks keys %s\n", m.Name, strings.Join(missing, ", "))
	}
}
