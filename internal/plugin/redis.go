package plugin

import (
	"context"
	"fmt"
	neturl "net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/redisconn"
)

// redisURL finds the Redis of a Chain: --redis-url, else env REDIS_URL,
// else the Chain's spec.redis.url, else the Secret its urlSecretRef names
// (when the user may read it). source says where the URL came from, for
// messages; the URL itself is never printed with its password.
func (r *root) redisURL(ctx context.Context, k *kube, ch *vconv1.Chain, flagURL string) (url, source string, err error) {
	switch {
	case flagURL != "":
		return flagURL, "--redis-url", nil
	case r.rt.Getenv("REDIS_URL") != "":
		return r.rt.Getenv("REDIS_URL"), "env REDIS_URL", nil
	case ch.Spec.Redis.URL != "":
		return ch.Spec.Redis.URL, "the Chain's spec.redis.url", nil
	case ch.Spec.Redis.URLSecretRef != nil:
		ref := ch.Spec.Redis.URLSecretRef
		var s corev1.Secret
		err := k.client.Get(ctx, types.NamespacedName{Namespace: ch.Namespace, Name: ref.Name}, &s)
		switch {
		case apierrors.IsForbidden(err):
			return "", "", fmt.Errorf("the Chain's Redis URL is in Secret %s/%s, which you may not read: pass --redis-url or set REDIS_URL", ch.Namespace, ref.Name)
		case apierrors.IsNotFound(err):
			return "", "", fmt.Errorf("the Chain's Redis URL Secret %s/%s does not exist: pass --redis-url or set REDIS_URL", ch.Namespace, ref.Name)
		case err != nil:
			return "", "", fmt.Errorf("read the Chain's Redis URL Secret %s/%s: %w", ch.Namespace, ref.Name, err)
		}
		v, ok := s.Data[ref.Key]
		if !ok || len(v) == 0 {
			return "", "", fmt.Errorf("Secret %s/%s has no key %q holding the Chain's Redis URL: pass --redis-url or set REDIS_URL", ch.Namespace, ref.Name, ref.Key)
		}
		return string(v), "Secret " + ref.Name, nil
	default:
		return "", "", fmt.Errorf("chain %s names no Redis (it uses the operator's default): pass --redis-url or set REDIS_URL", ch.Name)
	}
}

// openRedis resolves, opens and pings the Chain's Redis; url is for
// redisconn.Redacted messages.
func (r *root) openRedis(ctx context.Context, k *kube, ch *vconv1.Chain, flagURL string) (rdb redis.UniversalClient, url string, err error) {
	url, source, err := r.redisURL(ctx, k, ch, flagURL)
	if err != nil {
		return nil, "", err
	}
	rdb, err = redisconn.Open(url)
	if err != nil {
		return nil, "", fmt.Errorf("redis url from %s: %w", source, err)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, "", fmt.Errorf("cannot reach Redis at %s (from %s): %v; if it runs inside the cluster, use the API instead (--via api) or port-forward it and pass --redis-url redis://localhost:PORT", redisconn.Redacted(url), source, redactErr(err, url))
	}
	return rdb, url, nil
}

// redactErr keeps a URL's password out of an error from the client.
func redactErr(err error, rawURL string) string {
	msg := err.Error()
	if u, perr := neturl.Parse(rawURL); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
	}
	return msg
}
