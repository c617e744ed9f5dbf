package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/pflag"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/queueops"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// queues is what the commands do on a Chain's queues, the same through
// either transport: straight to Redis, or through the vCon API (from a
// laptop, via the Kubernetes API server's service proxy), where the API
// runs the same functions (internal/queue, internal/queueops).
type queues interface {
	listDLQ(ctx context.Context, ingress string) ([]DLQEntry, error)
	// replay moves up to count (0: all) dead letters whose reason contains
	// reason ("": all) back to their ingress list.
	replay(ctx context.Context, ingress, reason string, count int, fromStart bool) (int, error)
	purge(ctx context.Context, ingress string, uuids []string) (int, error)
	measure(ctx context.Context, t queue.Target) (queueops.Figures, error)
	lookup(ctx context.Context, uuid string, t queue.Target) (queueops.Vcon, error)
	close() error
}

// Transports of --via.
const (
	viaAuto  = "auto"
	viaAPI   = "api"
	viaRedis = "redis"
)

// transportFlags choose and configure the transport.
type transportFlags struct {
	via      string
	redisURL string
	api      apiTarget
}

// addTransportFlags registers --via and what each transport needs; with
// apiURL false the command registers --api-url itself (status, push) and
// sets t.api.url.
func addTransportFlags(f *pflag.FlagSet, t *transportFlags, getenv func(string) string, apiURL bool) {
	f.StringVar(&t.via, "via", viaAuto, "how to reach the Chain's queues: redis (straight to Redis), api (the vCon API through the Kubernetes API server's service proxy, or --api-url), or auto: redis when --redis-url or REDIS_URL is given, else api when --api-url is given or the chart's API Service is found, else the Chain's own Redis")
	f.StringVar(&t.redisURL, "redis-url", "", "Redis to use (default: env REDIS_URL, else the Chain's spec.redis.url or its urlSecretRef Secret)")
	addAPIFlags(f, &t.api, getenv, apiURL)
}

// addAPIFlags registers how to reach the vCon API: --api-url, or the API
// Service through the Kubernetes API server, and its token.
func addAPIFlags(f *pflag.FlagSet, t *apiTarget, getenv func(string) string, apiURL bool) {
	if apiURL {
		f.StringVar(&t.url, "api-url", getenv("API_URL"), "vCon API base URL, e.g. http://localhost:8000/api, instead of the API Service through the Kubernetes API server (env API_URL)")
	}
	f.StringVar(&t.service, "api-service", "", "the API's Service as NAMESPACE/NAME (default: the one with the chart's labels in --api-namespace)")
	f.StringVar(&t.namespace, "api-namespace", DefaultAPINamespace, "namespace the chart's API Service is looked for in")
	f.StringVar(&t.token, "token", "", "vCon API token (default: env CONSERVER_API_TOKEN, else the Secret named by the API Service, when you may read it)")
	f.StringVar(&t.tokenHeader, "token-header", "", "header the API token is sent in (default: the API Service's, else x-conserver-api-token)")
}

// openQueues picks the transport for a Chain's queues.
//
// auto prefers what the user named (a Redis URL, then an API URL), then
// the API Service: from a laptop the Chain's Redis is an in-cluster
// address that cannot be reached, and probing it would cost a timeout on
// every command and hide which way was taken. Without an API Service it
// falls back to the Chain's Redis, as before the API existed.
func (r *root) openQueues(ctx context.Context, k *kube, ch *vconv1.Chain, t *transportFlags) (queues, error) {
	a, err := r.chooseAPI(ctx, k, t)
	if err != nil {
		return nil, err
	}
	if a != nil {
		return &apiQueues{a}, nil
	}
	return r.openRedisQueues(ctx, k, ch, t)
}

// chooseAPI applies --via: the API client to use, or nil for Redis.
func (r *root) chooseAPI(ctx context.Context, k *kube, t *transportFlags) (*apiClient, error) {
	switch t.via {
	case viaRedis:
		return nil, nil
	case viaAPI:
		if t.redisURL != "" {
			return nil, fmt.Errorf("--redis-url is for --via redis; leave it out with --via api")
		}
		return r.openAPI(ctx, k, t.api)
	case viaAuto:
		if t.redisURL != "" || r.rt.Getenv("REDIS_URL") != "" {
			return nil, nil
		}
		a, err := r.openAPI(ctx, k, t.api)
		var none *errNoAPIService
		if errors.As(err, &none) {
			return nil, nil
		}
		return a, err
	default:
		return nil, fmt.Errorf("--via %q: use api, redis or auto", t.via)
	}
}

func (r *root) openRedisQueues(ctx context.Context, k *kube, ch *vconv1.Chain, t *transportFlags) (queues, error) {
	rdb, _, err := r.openRedis(ctx, k, ch, t.redisURL)
	if err != nil {
		return nil, err
	}
	format, err := vconstore.ParseNewKeyFormat(r.rt.Getenv(vconstore.EnvBodyFormat))
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	return &redisQueues{rdb: rdb, store: vconstore.New(rdb, vconstore.Options{NewKeyFormat: format})}, nil
}

// redisQueues works on Redis itself.
type redisQueues struct {
	rdb   redis.UniversalClient
	store *vconstore.Store
}

func (q *redisQueues) close() error { return q.rdb.Close() }

func (q *redisQueues) listDLQ(ctx context.Context, ingress string) ([]DLQEntry, error) {
	dead, err := queue.ListDLQ(ctx, q.rdb, ingress)
	if err != nil {
		return nil, err
	}
	out := make([]DLQEntry, len(dead))
	for i, d := range dead {
		out[i] = DLQEntry{IngressList: ingress, UUID: d.UUID, Reason: d.Reason.Reason, Chain: d.Reason.Chain, Step: d.Reason.Step, At: d.Reason.RecordedAt()}
	}
	return out, nil
}

func (q *redisQueues) replay(ctx context.Context, ingress, reason string, count int, fromStart bool) (int, error) {
	if reason == "" {
		if count == 0 {
			count = math.MaxInt
		}
		return queue.Replay(ctx, q.rdb, ingress, count, fromStart)
	}
	return queue.ReplayMatching(ctx, q.rdb, ingress, queue.ReasonMatch{Substring: reason}, count, fromStart)
}

func (q *redisQueues) purge(ctx context.Context, ingress string, uuids []string) (int, error) {
	return queue.Purge(ctx, q.rdb, ingress, uuids)
}

func (q *redisQueues) measure(ctx context.Context, t queue.Target) (queueops.Figures, error) {
	return queueops.Measure(ctx, q.rdb, t)
}

func (q *redisQueues) lookup(ctx context.Context, uuid string, t queue.Target) (queueops.Vcon, error) {
	return queueops.Lookup(ctx, q.rdb, q.store, uuid, t)
}

// apiQueues works through the vCon API: conserver's routes where they do
// the job (the DLQ list, reprocess), ours (queueops) for the rest.
type apiQueues struct{ a *apiClient }

func (q *apiQueues) close() error { return nil }

// maxReprocess is the API's bound on one /dlq/reprocess count.
const maxReprocess = 100_000

func (q *apiQueues) listDLQ(ctx context.Context, ingress string) ([]DLQEntry, error) {
	var got []struct {
		UUID   string     `json:"uuid"`
		Reason string     `json:"reason"`
		Chain  string     `json:"chain"`
		Step   string     `json:"step"`
		At     *time.Time `json:"at"`
	}
	if err := q.a.call(ctx, http.MethodGet, "/dlq", url.Values{"ingress_list": {ingress}, "with_reasons": {"true"}}, nil, &got); err != nil {
		return nil, err
	}
	out := make([]DLQEntry, len(got))
	for i, g := range got {
		out[i] = DLQEntry{IngressList: ingress, UUID: g.UUID, Reason: g.Reason, Chain: g.Chain, Step: g.Step, At: g.At}
	}
	return out, nil
}

func (q *apiQueues) replay(ctx context.Context, ingress, reason string, count int, fromStart bool) (int, error) {
	v := url.Values{"ingress_list": {ingress}}
	if fromStart {
		v.Set("from_start", "true")
	}
	if reason != "" {
		v.Set("reason", reason)
		if count > 0 {
			v.Set("count", strconv.Itoa(count))
		}
		var m queueops.Moved
		err := q.a.call(ctx, http.MethodPost, queueops.PathReplay, v, nil, &m)
		return m.Moved, err
	}
	// conserver's reprocess, in batches the API accepts, until the DLQ
	// runs dry or count moved.
	if count == 0 {
		count = math.MaxInt
	}
	moved := 0
	for moved < count {
		want := min(count-moved, maxReprocess)
		v.Set("count", strconv.Itoa(want))
		var n int
		if err := q.a.call(ctx, http.MethodPost, "/dlq/reprocess", v, nil, &n); err != nil {
			return moved, err
		}
		moved += n
		if n < want {
			break
		}
	}
	return moved, nil
}

func (q *apiQueues) purge(ctx context.Context, ingress string, uuids []string) (int, error) {
	purged := 0
	for start := 0; start < len(uuids); start += queueops.MaxPurge {
		body, _ := json.Marshal(uuids[start:min(start+queueops.MaxPurge, len(uuids))])
		var p queueops.Purged
		if err := q.a.call(ctx, http.MethodPost, queueops.PathPurge, url.Values{"ingress_list": {ingress}}, body, &p); err != nil {
			return purged, err
		}
		purged += p.Purged
	}
	return purged, nil
}

func targetQuery(t queue.Target) url.Values {
	return url.Values{"ingress_list": t.Ingress, "egress_list": t.Egress}
}

func (q *apiQueues) measure(ctx context.Context, t queue.Target) (queueops.Figures, error) {
	var f queueops.Figures
	err := q.a.call(ctx, http.MethodGet, queueops.PathQueues, targetQuery(t), nil, &f)
	return f, err
}

func (q *apiQueues) lookup(ctx context.Context, uuid string, t queue.Target) (queueops.Vcon, error) {
	var v queueops.Vcon
	err := q.a.call(ctx, http.MethodGet, queueops.PathVcon+url.PathEscape(uuid), targetQuery(t), nil, &v)
	return v, err
}
