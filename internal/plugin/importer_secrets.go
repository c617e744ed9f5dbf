package plugin

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/secrets"
	"github.com/vcon-operator/vcon-operator/internal/workload"
)

// Names of the Secrets the import writes templates for.
const (
	DefaultSharedSecretName  = "conserver-env"
	credentialsSecretSuffix  = "-credentials"
	storageCredentialsSuffix = "-storage-credentials"
)

// stepEnv collects the env entries and Secret keys of one Link or Storage.
type stepEnv struct {
	kind, name, objName string
	secretName          string
	env                 []vconv1.SecretEnv
	secretKeys          []string // keys of the step's own Secret, with where they came from
	origins             map[string]string
}

// collectRefs adds the names of every ${VAR} under v to names.
func collectRefs(v any, names map[string]bool) {
	switch t := v.(type) {
	case map[string]any:
		for _, e := range t {
			collectRefs(e, names)
		}
	case []any:
		for _, e := range t {
			collectRefs(e, names)
		}
	case string:
		for _, r := range envRefs(t) {
			names[r.name] = true
		}
	}
}

// options rewrites a module's options, taking credentials out.
func (im *importer) options(se *stepEnv, opts map[string]any) *apiextensionsv1.JSON {
	if opts == nil {
		return nil
	}
	v := im.value(se, opts, "options", "", false)
	b, err := json.Marshal(v)
	if err != nil {
		// Parse only yields JSON-encodable values.
		panic(fmt.Sprintf("encode options: %v", err))
	}
	return &apiextensionsv1.JSON{Raw: b}
}

// value walks one option value. key is the nearest map key above it (the
// name a new variable is made from); secret says a credential key is above.
func (im *importer) value(se *stepEnv, v any, path, key string, secret bool) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for _, k := range sortedKeys(t) {
			childSecret := secret || secrets.IsCredentialKey(k)
			if str, ok := t[k].(string); ok && !childSecret {
				childSecret = operatorFlags(k, str)
			}
			out[k] = im.value(se, t[k], path+"."+k, k, childSecret)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			k := key
			if secret {
				k = key + "_" + strconv.Itoa(i+1)
			}
			out[i] = im.value(se, e, fmt.Sprintf("%s[%d]", path, i), k, secret)
		}
		return out
	case string:
		if refs := envRefs(t); len(refs) > 0 {
			for _, r := range refs {
				im.sharedRef(se, r.name, path)
			}
			if secret {
				return stripDefaults(t)
			}
			return t
		}
		if secret || secrets.HasURLPassword(t) {
			return im.newVar(se, key, path)
		}
		return t
	case int64, float64:
		if secret {
			return im.newVar(se, key, path)
		}
		return t
	default: // bool, nil
		return t
	}
}

// operatorFlags says whether the operator's CredentialsInSecrets check
// would call this string option a literal credential; the import moves
// every such value to a Secret, so an imported step passes that check.
func operatorFlags(key, value string) bool {
	raw, err := json.Marshal(map[string]string{key: value})
	if err != nil {
		return false
	}
	found, err := workload.LiteralCredentials(&apiextensionsv1.JSON{Raw: raw})
	return err == nil && len(found) > 0
}

// newVar hands out a variable for a credential found at path and returns
// the reference that replaces it.
func (im *importer) newVar(se *stepEnv, key, path string) string {
	if se.secretName == "" {
		se.secretName = im.secretName(se)
	}
	prefix := se.name
	if strings.HasPrefix(strings.ToUpper(envVarName(key)), envVarName(se.name)+"_") {
		prefix = ""
	}
	base := envVarName(prefix, key)
	name := base
	for i := 2; im.vars[name]; i++ {
		name = base + "_" + strconv.Itoa(i)
	}
	im.vars[name] = true
	se.secretKeys = append(se.secretKeys, name)
	se.origins[name] = path
	se.env = append(se.env, vconv1.SecretEnv{Name: name, SecretKeyRef: corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: se.secretName}, Key: name,
	}})
	return "${" + name + "}"
}

// sharedRef wires a ${VAR} the config already had to the shared Secret.
func (im *importer) sharedRef(se *stepEnv, name, path string) {
	where := fmt.Sprintf("%s %s %s", se.kind, se.objName, path)
	if !slices.Contains(im.shared[name], where) {
		im.shared[name] = append(im.shared[name], where)
	}
	im.vars[name] = true
	for _, e := range se.env {
		if e.Name == name {
			return
		}
	}
	se.env = append(se.env, vconv1.SecretEnv{Name: name, SecretKeyRef: corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: im.opts.SharedSecret}, Key: name,
	}})
}

// secretName is <object>-credentials; a Link and a Storage of one name get
// different Secrets.
func (im *importer) secretName(se *stepEnv) string {
	n := se.objName + credentialsSecretSuffix
	if im.secretNames[n] {
		n = se.objName + storageCredentialsSuffix
	}
	for i := 2; im.secretNames[n]; i++ {
		n = se.objName + "-" + strconv.Itoa(i) + credentialsSecretSuffix
	}
	im.secretNames[n] = true
	return n
}

func (im *importer) secretTemplate(se *stepEnv) Manifest {
	data := map[string]string{}
	comments := []string{
		fmt.Sprintf("Secret template for %s %s (conserver %s %q): replace every %s with the real value, then apply it.", kindTitle(se.kind), se.objName, se.kind, se.name, SecretPlaceholder),
		"The values of the conserver file are not copied here. Keys and the options they replace:",
	}
	for _, k := range se.secretKeys {
		data[k] = SecretPlaceholder
		comments = append(comments, fmt.Sprintf("  %s: %s", k, se.origins[k]))
	}
	return Manifest{Kind: "Secret", Name: se.secretName, Comments: comments, Object: toMap(secretObject(se.secretName, im.opts.Namespace, data))}
}

func secretObject(name, ns string, data map[string]string) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Type:       corev1.SecretTypeOpaque,
		StringData: data,
	}
}
