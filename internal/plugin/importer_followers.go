package plugin

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/config"
)

// followerTokenKey is the key of an imported follower's token in its
// Secret template.
const followerTokenKey = "token"

// placeFollowers assigns each conserver follower to the chain that reads
// its follower_ingress_list (an enabled one first, as only one enabled
// chain may read a list), and reports those no Chain can carry.
func (im *importer) placeFollowers() map[string][]string {
	byChain := map[string][]string{}
	for _, name := range sortedKeys(im.cfg.Followers) {
		f := im.cfg.Followers[name]
		if len(f.IngressLists) != 1 {
			im.warn("followers.%s is not imported: a Chain's follower feeds one ingress list and this one feeds %d; split it into one follower per list, each with its own upstream egress list", name, len(f.IngressLists))
			continue
		}
		chain := ""
		for _, c := range sortedKeys(im.cfg.Chains) {
			ch := im.cfg.Chains[c]
			if !slices.Contains(ch.IngressLists, f.IngressLists[0]) {
				continue
			}
			if chain == "" || (ch.Enabled && !im.cfg.Chains[chain].Enabled) {
				chain = c
			}
		}
		if chain == "" {
			im.warn("followers.%s is not imported: no chain reads its follower_ingress_list %s; add the follower to the Chain that should (spec.followers)", name, f.IngressLists[0])
			continue
		}
		byChain[chain] = append(byChain[chain], name)
	}
	return byChain
}

// chainFollowers builds the followers of the Chain objName (conserver
// chain chain). A token that is one ${VAR} reads VAR from the shared
// Secret, as the file's other references do; any other token goes to a
// Secret template and is never printed.
func (im *importer) chainFollowers(chain, objName string) (out []vconv1.ChainFollower, comments []string) {
	taken := map[string]string{}
	for _, name := range im.followersByChain[chain] {
		f := im.cfg.Followers[name]
		cf := vconv1.ChainFollower{
			Name: objectName(name, taken), URL: f.URL, EgressList: f.EgressList, IngressList: f.IngressLists[0],
			PullingInterval: &metav1.Duration{Duration: f.PullingInterval},
			FetchVconLimit:  ptr.To(int32(f.FetchVconLimit)),
		}
		line := fmt.Sprintf("follower %s (conserver follower %q) pulls upstream egress list %s into %s", cf.Name, name, f.EgressList, cf.IngressList)
		switch refs := envRefs(f.AuthToken); {
		case f.AuthToken == "":
		case len(refs) == 1 && strings.TrimSpace(stripDefaults(f.AuthToken)) == "${"+refs[0].name+"}":
			where := fmt.Sprintf("chain %s follower %s auth_token", objName, cf.Name)
			if !slices.Contains(im.shared[refs[0].name], where) {
				im.shared[refs[0].name] = append(im.shared[refs[0].name], where)
			}
			cf.AuthTokenSecretRef = &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: im.opts.SharedSecret}, Key: refs[0].name}
			line += fmt.Sprintf("; its token is %s of Secret %s", refs[0].name, im.opts.SharedSecret)
		default:
			secret := im.followerSecretName(objName, cf.Name)
			cf.AuthTokenSecretRef = &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: followerTokenKey}
			im.secrets = append(im.secrets, Manifest{Kind: "Secret", Name: secret, Comments: []string{
				fmt.Sprintf("Secret template for the API token of follower %s of Chain %s (conserver follower %q): replace %s with the token, then apply it. The file's value is not copied here.", cf.Name, objName, name, SecretPlaceholder),
			}, Object: toMap(secretObject(secret, im.opts.Namespace, map[string]string{followerTokenKey: SecretPlaceholder}))})
			line += fmt.Sprintf("; its token is %s of Secret %s", followerTokenKey, secret)
		}
		comments = append(comments, line)
		out = append(out, cf)
	}
	return out, comments
}

func (im *importer) followerSecretName(chain, follower string) string {
	base := truncate(chain+"-"+follower, 253-len("-follower-token")) + "-follower-token"
	n := base
	for i := 2; im.secretNames[n]; i++ {
		n = fmt.Sprintf("%s-%d", base, i)
	}
	im.secretNames[n] = true
	return n
}

// followerRefs adds the ${VAR} names follower tokens reference to names.
func followerRefs(followers map[string]config.Follower, names map[string]bool) {
	for _, f := range followers {
		collectRefs(f.AuthToken, names)
	}
}
