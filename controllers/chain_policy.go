package controllers

import (
	"fmt"
	"strings"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/policy"
	"github.com/vcon-operator/vcon-operator/internal/redisconn"
)

func imageNotAllowedMessage(image string, prefixes []string) string {
	if len(prefixes) == 0 {
		return fmt.Sprintf("workers.image %q is refused: this operator allows no worker image override (--allowed-worker-image-prefixes is empty); remove workers.image to run the operator's image, or ask the operator's administrator to allow the image's registry", image)
	}
	return fmt.Sprintf("workers.image %q is refused: this operator allows worker images only under %s (--allowed-worker-image-prefixes); use an image there, or remove workers.image to run the operator's image", image, strings.Join(prefixes, ", "))
}

// redisPolicy applies --allowed-redis-hosts to a Redis the Chain names
// itself (spec.redis.url or urlSecretRef). The operator's default is its
// administrator's choice and always allowed, however a Chain spells it.
func (r *ChainReconciler) redisPolicy(chain *vconv1.Chain, url string) *notReady {
	if len(r.AllowedRedisHosts) == 0 || !chain.NamesRedis() {
		return nil
	}
	srv, err := redisconn.ParseServer(url)
	if err != nil {
		return &notReady{vconv1.ReasonRedisNotAllowed, fmt.Sprintf("the Chain's Redis URL cannot be checked against --allowed-redis-hosts: %v", err)}
	}
	if def := redisIdentity(r.DefaultRedisURL); def != "" && srv.String() == def {
		return nil
	}
	if refused := policy.RedisRefused(r.AllowedRedisHosts, srv); refused != "" {
		return &notReady{vconv1.ReasonRedisNotAllowed, fmt.Sprintf(
			"Redis %s is refused: this operator lets Chains reach only %s (--allowed-redis-hosts); name a Redis there, or remove spec.redis to use the operator's default",
			refused, strings.Join(r.AllowedRedisHosts, ", "))}
	}
	return nil
}
