package workload

import (
	"fmt"
	"sort"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/vcon-operator/vcon-operator/internal/config"
	"github.com/vcon-operator/vcon-operator/internal/secrets"
)

// LiteralCredentials returns the dotted paths of options that hold a
// credential written out literally instead of as a ${VAR} reference to a
// Secret-backed env var. Options are rendered into a ConfigMap, which is
// no place for a credential, so such a step is refused.
func LiteralCredentials(raw *apiextensionsv1.JSON) ([]string, error) {
	opts, err := options(raw)
	if err != nil {
		return nil, err
	}
	var found []string
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch t := v.(type) {
		case map[string]any:
			for k, e := range t {
				p := k
				if path != "" {
					p = path + "." + k
				}
				if s, ok := e.(string); ok && (secrets.IsCredentialKey(k) || secrets.HasURLPassword(s)) && s != "" && !hasReference(s) {
					found = append(found, p)
					continue
				}
				walk(p, e)
			}
		case []any:
			for i, e := range t {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		}
	}
	walk("", opts)
	sort.Strings(found)
	return found, nil
}

// hasReference: s holds a ${NAME} the worker resolves. $${...} is a literal
// and so, for a credential option, a credential written out.
func hasReference(s string) bool {
	segs, _ := config.Segments(s)
	for _, seg := range segs {
		if seg.Ref {
			return true
		}
	}
	return false
}
