package plugin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/config"
	"github.com/vcon-operator/vcon-operator/internal/modules"
)

// Annotations the import sets, so that the mapping survives -o json and
// kubectl apply, where comments do not.
const (
	AnnotationConserverName = "vcon.dev/conserver-name"
	AnnotationImportWarning = "vcon.dev/import-warning"
)

// ImportOptions says how a conserver config becomes manifests.
type ImportOptions struct {
	// Namespace of every manifest; empty leaves it to kubectl apply -n.
	Namespace string
	// Source names the config file in the header comment.
	Source string
	// KnownLinks and KnownStorages are the modules built into the worker
	// (modules.Links(), modules.Storages()).
	KnownLinks    []string
	KnownStorages []string
	// SharedSecret holds the ${VAR} references the config already had:
	// conserver read them from its one process environment, so every step
	// using one shares one value. Default DefaultSharedSecretName.
	SharedSecret string
}

// Manifest is one object of the import, with the comment lines printed
// above it in YAML.
type Manifest struct {
	Kind     string
	Name     string
	Comments []string
	// Object is the object as JSON-shaped values (numbers as json.Number).
	Object map[string]any
}

// Imported is the result of an import: Secret templates first, then
// Links, Storages and Chains, in the order kubectl apply should create them.
type Imported struct {
	Header    []string
	Manifests []Manifest
	// Warnings are printed on stderr: unknown modules, things not imported,
	// problems the conserver config already had.
	Warnings []string
}

// conserverLeniency says, per module that takes strict, what conserver's
// module does with the failure strict decides about.
var conserverLeniency = map[string]string{
	"links.jq_link": "a jq program that raises on a vCon filters it out",
	"links.webhook": "a non-2xx answer is logged and the chain goes on",
}

// linkModulePattern and storageModulePattern are the CRDs' module patterns.
var (
	linkModulePattern    = regexp.MustCompile(`^links\.[a-z0-9_]+$`)
	storageModulePattern = regexp.MustCompile(`^storage\.[a-z0-9_]+$`)
)

// Import turns a conserver config (parsed with a nil lookupEnv, so ${VAR}
// references are still in place) into Chain, Link and Storage manifests.
// Credential-looking option values are replaced by ${VAR} references whose
// values come from Secrets; the Secrets are templates holding
// SecretPlaceholder, so no credential of the file appears anywhere in the
// result. It is pure: no cluster, no environment.
func Import(cfg *config.Config, opts ImportOptions) *Imported {
	if opts.SharedSecret == "" {
		opts.SharedSecret = DefaultSharedSecretName
	}
	im := &importer{
		opts: opts, cfg: cfg, out: &Imported{},
		linkNames: map[string]string{}, storageNames: map[string]string{}, chainNames: map[string]string{},
		shared: map[string][]string{}, vars: map[string]bool{},
		secretNames: map[string]bool{opts.SharedSecret: true},
	}
	// Variables the file already references keep their names; new ones
	// must not take them.
	for _, mods := range []map[string]config.Module{cfg.Links, cfg.Storages} {
		for _, m := range mods {
			collectRefs(m.Options, im.vars)
		}
	}
	followerRefs(cfg.Followers, im.vars)
	im.followersByChain = im.placeFollowers()
	for _, n := range sortedKeys(cfg.Links) {
		im.step("link", n, cfg.Links[n])
	}
	for _, n := range sortedKeys(cfg.Storages) {
		im.step("storage", n, cfg.Storages[n])
	}
	for _, n := range sortedKeys(cfg.Chains) {
		im.chain(n, cfg.Chains[n])
	}
	im.notImported()
	if err := cfg.Validate(config.Validator{}); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			im.warn("the conserver config already has this problem: %s", line)
		}
	}
	return im.finish()
}

type importer struct {
	opts ImportOptions
	cfg  *config.Config
	out  *Imported

	linkNames, storageNames, chainNames map[string]string   // conserver name -> object name
	followersByChain                    map[string][]string // conserver chain -> its followers

	steps       []Manifest
	chains      []Manifest
	secrets     []Manifest
	shared      map[string][]string // shared var -> where it is used
	vars        map[string]bool     // every env var name handed out
	secretNames map[string]bool
}

func (im *importer) warn(format string, args ...any) {
	im.out.Warnings = append(im.out.Warnings, fmt.Sprintf(format, args...))
}

func (im *importer) step(kind, name string, m config.Module) {
	taken, modulePattern, known := im.linkNames, linkModulePattern, im.opts.KnownLinks
	if kind == "storage" {
		taken, modulePattern, known = im.storageNames, storageModulePattern, im.opts.KnownStorages
	}
	objName := objectName(name, taken)
	se := &stepEnv{kind: kind, name: name, objName: objName, origins: map[string]string{}}
	var comments, warnings []string
	comments = append(comments, fmt.Sprintf("conserver %s %q (module %s)", kind, name, orNone(m.Module)))
	opts := m.Options
	if _, set := opts[modules.StrictOption]; kind == "link" && modules.TakesStrict(m.Module) && !set {
		// A Link that does not say is strict (workload.Render); the
		// imported one keeps what the chain did under conserver, said
		// where the user sees it and can change it.
		opts = maps.Clone(opts)
		if opts == nil {
			opts = map[string]any{}
		}
		opts[modules.StrictOption] = false
		comments = append(comments, fmt.Sprintf("strict: false keeps conserver's behaviour (%s); strict: true dead-letters the vCon instead, where it can be seen and replayed", conserverLeniency[m.Module]))
	}
	options := im.options(se, opts)

	switch {
	case m.Module == "":
		warnings = append(warnings, "it names no module; set spec.module")
	case !slices.Contains(known, m.Module):
		w := fmt.Sprintf("module %s is not built into the worker; kept as written, but the %s will not become Ready until it is replaced (a Link can call a step service instead, see docs/steps.md)", m.Module, kindTitle(kind))
		if instead, ok := conserverOnly[m.Module]; ok {
			w = fmt.Sprintf("conserver's %s is not built into the worker: %s; kept as written, but the %s will not become Ready until it is replaced", m.Module, instead, kindTitle(kind))
		}
		if !modulePattern.MatchString(m.Module) {
			w += fmt.Sprintf("; the API server will also refuse it, as %s modules must look like %s", kindTitle(kind), strings.TrimSuffix(strings.TrimPrefix(modulePattern.String(), "^"), "$"))
		}
		warnings = append(warnings, w)
	}
	for _, w := range warnings {
		comments = append(comments, "WARNING: "+w)
		im.warn("%s %q: %s", kind, name, w)
	}
	if len(se.env) > 0 {
		comments = append(comments, "options that held credentials now say ${VAR}; the worker reads VAR from the Secret named in env")
	}

	meta := metav1.ObjectMeta{Name: objName, Namespace: im.opts.Namespace, Annotations: map[string]string{AnnotationConserverName: name}}
	if len(warnings) > 0 {
		meta.Annotations[AnnotationImportWarning] = strings.Join(warnings, "; ")
	}
	sort.Slice(se.env, func(i, j int) bool { return se.env[i].Name < se.env[j].Name })
	var obj any
	if kind == "link" {
		obj = &vconv1.Link{
			TypeMeta:   metav1.TypeMeta{APIVersion: vconv1.GroupVersion.String(), Kind: "Link"},
			ObjectMeta: meta,
			Spec:       vconv1.LinkSpec{Module: m.Module, Options: options, Env: se.env},
		}
	} else {
		obj = &vconv1.Storage{
			TypeMeta:   metav1.TypeMeta{APIVersion: vconv1.GroupVersion.String(), Kind: "Storage"},
			ObjectMeta: meta,
			Spec:       vconv1.StorageSpec{Module: m.Module, Options: options, Env: se.env},
		}
	}
	im.steps = append(im.steps, Manifest{Kind: kindTitle(kind), Name: objName, Comments: comments, Object: toMap(obj)})
	if len(se.secretKeys) > 0 {
		im.secrets = append(im.secrets, im.secretTemplate(se))
	}
}

func kindTitle(kind string) string {
	if kind == "link" {
		return "Link"
	}
	return "Storage"
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func (im *importer) chain(name string, ch config.Chain) {
	objName := objectName(name, im.chainNames)
	comments := []string{fmt.Sprintf("conserver chain %q", name)}
	var warnings []string
	ref := func(what string, names []string, defined map[string]config.Module, taken map[string]string) []string {
		out := make([]string, 0, len(names))
		for _, n := range names {
			if _, ok := defined[n]; !ok {
				warnings = append(warnings, fmt.Sprintf("%s %q is not defined in the conserver config; the Chain refers to %s %s, which you must create", what, n, what, DNSName(n)))
				out = append(out, DNSName(n))
				continue
			}
			out = append(out, objectName(n, taken))
		}
		return out
	}
	spec := vconv1.ChainSpec{
		IngressLists: ch.IngressLists,
		EgressLists:  ch.EgressLists,
		Links:        ref("link", ch.Links, im.cfg.Links, im.linkNames),
		Storages:     ref("storage", ch.Storages, im.cfg.Storages, im.storageNames),
		Enabled:      &ch.Enabled,
	}
	followers, followerComments := im.chainFollowers(name, objName)
	spec.Followers = followers
	comments = append(comments, followerComments...)
	if ch.Timeout > 0 {
		spec.Timeout = &metav1.Duration{Duration: ch.Timeout}
	}
	if ch.MaxDeliveries > 0 {
		spec.Workers.MaxDeliveries = ptr.To(int32(ch.MaxDeliveries))
	}
	if r := ch.Retry; r != nil {
		spec.Retry = vconv1.RetryPolicy{Attempts: ptr.To(int32(r.Attempts)), JitterPercent: ptr.To(int32(math.Round(r.Jitter * 100)))}
		if r.InitialBackoff > 0 {
			spec.Retry.InitialBackoff = &metav1.Duration{Duration: r.InitialBackoff}
		}
		if r.MaxBackoff > 0 {
			spec.Retry.MaxBackoff = &metav1.Duration{Duration: r.MaxBackoff}
		}
	} else {
		// conserver dead-letters at the first failure; a migrated chain
		// keeps doing so until someone opts into retries.
		spec.Retry.Attempts = ptr.To(int32(1))
		comments = append(comments, "no retry: in conserver: attempts 1 keeps its dead-letter-at-once behaviour; raise it to retry vendor outages")
	}
	if ch.DeadLettersStorage() {
		// conserver (since its PR #197) dead-letters a failed write alone
		// and still pushes egress; a migrated chain keeps doing so.
		spec.StorageFailure = vconv1.StorageFailureDeadLetterStorage
		if ch.StorageFailure == "" {
			comments = append(comments, "storageFailure DeadLetterStorage keeps conserver's handling of a failed storage write (DLQ:storage:{name}, egress still pushed); DeadLetterVcon retries the vCon and holds it back from egress instead")
		}
	} else {
		spec.StorageFailure = vconv1.StorageFailureDeadLetterVcon
	}
	if !ch.HasLinksKey {
		warnings = append(warnings, "it has no links: key, so conserver dead-lettered every vCon; imported as a chain that only stores")
	}
	if len(ch.IngressLists) == 0 {
		warnings = append(warnings, "it has no ingress_lists; the API server will refuse the Chain until you add one")
	}
	if !ch.Enabled {
		comments = append(comments, "enabled: false in conserver (which ignored it); here a disabled Chain runs no workers")
	}
	meta := metav1.ObjectMeta{Name: objName, Namespace: im.opts.Namespace, Annotations: map[string]string{AnnotationConserverName: name}}
	for _, w := range warnings {
		comments = append(comments, "WARNING: "+w)
		im.warn("chain %q: %s", name, w)
	}
	if len(warnings) > 0 {
		meta.Annotations[AnnotationImportWarning] = strings.Join(warnings, "; ")
	}
	obj := toMap(&vconv1.Chain{
		TypeMeta:   metav1.TypeMeta{APIVersion: vconv1.GroupVersion.String(), Kind: "Chain"},
		ObjectMeta: meta,
		Spec:       spec,
	})
	// The zero WorkerSpec and RedisConnection are not "unset" in JSON; leave
	// them out so the CRD defaults (and the operator's Redis) apply.
	if s, ok := obj["spec"].(map[string]any); ok {
		delete(s, "workers")
		delete(s, "redis")
	}
	im.chains = append(im.chains, Manifest{Kind: "Chain", Name: objName, Comments: comments, Object: obj})
}

// notImported reports the parts of the file that are not Chains.
func (im *importer) notImported() {
	if n := len(im.cfg.IngressAuth); n > 0 {
		im.warn("ingress_auth (keys for %d ingress lists) is not imported: it configures the API's external ingress endpoint, not a Chain; the keys are not printed", n)
	}
	// The worker's own words for what it refuses to run (imports of
	// Python modules, tracers), so that a migration meets each problem
	// once, here, and not again when a standalone worker loads the file.
	for _, err := range im.cfg.Unsupported(append(slices.Clone(im.opts.KnownLinks), im.opts.KnownStorages...)) {
		im.warn("not imported: %v", err)
	}
	for _, name := range sortedKeys(im.cfg.Imports) {
		if m := im.cfg.Imports[name].Module; slices.Contains(im.opts.KnownLinks, m) || slices.Contains(im.opts.KnownStorages, m) {
			im.warn("imports.%s is not imported: %s is built into the worker and needs no import", name, m)
		}
	}
	for _, k := range sortedKeys(im.cfg.Extra) {
		im.warn("top-level key %q is not imported: Chains, Links and Storages have no equivalent", k)
	}
}

func (im *importer) finish() *Imported {
	if len(im.shared) > 0 {
		data := map[string]string{}
		comments := []string{
			fmt.Sprintf("Secret for the ${VAR} references the conserver config already had (conserver read them from its environment): replace every %s, then apply it.", SecretPlaceholder),
		}
		for _, v := range sortedKeys(im.shared) {
			data[v] = SecretPlaceholder
			comments = append(comments, fmt.Sprintf("  %s: used by %s", v, strings.Join(im.shared[v], ", ")))
		}
		im.out.Manifests = append(im.out.Manifests, Manifest{Kind: "Secret", Name: im.opts.SharedSecret, Comments: comments, Object: toMap(secretObject(im.opts.SharedSecret, im.opts.Namespace, data))})
	}
	im.out.Manifests = append(im.out.Manifests, im.secrets...)
	im.out.Manifests = append(im.out.Manifests, im.steps...)
	im.out.Manifests = append(im.out.Manifests, im.chains...)

	src := im.opts.Source
	if src == "" {
		src = "a conserver config"
	}
	h := []string{
		"Generated by kubectl vcon import from " + src + ".",
		"Credentials are not copied: fill in the Secret templates (" + SecretPlaceholder + ") before the workers start.",
	}
	var renamed []string
	for _, set := range []struct {
		kind  string
		names map[string]string
	}{{"link", im.linkNames}, {"storage", im.storageNames}, {"chain", im.chainNames}} {
		for _, n := range sortedKeys(set.names) {
			if set.names[n] == n {
				continue
			}
			renamed = append(renamed, fmt.Sprintf("  %s %q -> %s %s", set.kind, n, strings.ToUpper(set.kind[:1])+set.kind[1:], set.names[n]))
		}
	}
	if len(renamed) > 0 {
		h = append(h, "Renamed (conserver -> Kubernetes; each object's vcon.dev/conserver-name annotation keeps the original):")
		h = append(h, renamed...)
	}
	im.out.Header = h
	return im.out
}

// toMap turns an object into JSON-shaped values through its JSON encoding
// (which honours the custom encoders of options), without the fields a
// manifest must not carry.
func toMap(obj any) map[string]any {
	b, err := json.Marshal(obj)
	if err != nil {
		panic(fmt.Sprintf("encode manifest: %v", err))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		panic(fmt.Sprintf("decode manifest: %v", err))
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// conserverOnly are the modules of conserver the worker is not built
// with, and what to use instead.
var conserverOnly = map[string]string{
	"storage.milvus":        "keep the vectors in PostgreSQL with storage.postgres (pgvector), or write them to Milvus from a step service (a Link of kind http or container, docs/steps.md)",
	"storage.scitt":         "register vCons with your SCITT transparency service from a step service (docs/steps.md)",
	"storage.dataverse":     "POST vCons to Dataverse's Web API with storage.webhook (headers from a Secret), or write them from a step service",
	"storage.spaceandtime":  "use storage.postgres, or storage.webhook to Space and Time's REST API",
	"storage.chatgpt_files": "upload files to OpenAI from a step service; for file storage use storage.s3 or storage.file",
}
