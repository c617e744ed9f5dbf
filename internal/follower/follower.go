// Package follower pulls vCons from another conserver's API into local
// ingress lists, as conserver's followers: section does
// (conserver/follower.py): every pulling_interval it pops up to
// fetch_vcon_limit uuids from the upstream egress list
// (GET {url}/vcon/egress?egress_list=…&limit=…), fetches each vCon
// (GET {url}/vcon/{uuid}), writes it at vcon:{uuid} and queues its uuid on
// follower_ingress_list.
//
// conserver loses vCons on this path; a Follower does not:
//
//   - The upstream pop is destructive, so the popped uuids are first
//     recorded in a local pending list (queue.FollowerPendingKey). A vCon
//     leaves it only in the same atomic outcome (queue.ExecChecked) that
//     writes its body and queues it, or dead-letters it. A restart, a
//     crash or an upstream outage between the pop and the queueing
//     resumes from that list: every popped vCon is queued here exactly
//     once (at least once on a Redis Cluster, where no script spans the
//     keys). Each poll first finishes what is pending, and pops nothing
//     new while anything pending cannot be finished.
//   - When the pending list cannot be written after a pop (local Redis
//     went away), the uuids are pushed back onto the upstream egress list
//     (POST {url}/vcon/ingress?ingress_list={egress_list}); when that
//     fails too they are logged by uuid and counted as lost. Only a pop
//     whose answer never arrives loses uuids silently: the upstream API
//     offers no way to pop without removing.
//   - A vCon upstream cannot give (404, refused uuid, an answer that is
//     not that vCon, too large) is dead-lettered on DLQ:{first ingress
//     list} with the reason, instead of conserver's log line. One whose
//     queueing Redis refuses (an ingress list of the wrong type) is
//     dead-lettered with its body.
//   - Upstream being down, slow or refusing the token stops the poll and
//     keeps the pending vCons for the next one. In conserver an exception
//     ends the follower's timer thread for good. A vCon upstream answers
//     5xx for while it serves the others stays pending too, and is
//     dead-lettered after MaxFetchFailures polls, so it cannot hold up the
//     rest.
//   - Replicas that run the same config share one Redis lease per
//     follower (queue.FollowerLeaseKey): one polls, the others stand by.
package follower

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/vcon-operator/vcon-operator/internal/apiwire"
	"github.com/vcon-operator/vcon-operator/internal/config"
	"github.com/vcon-operator/vcon-operator/internal/httpx"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// Defaults.
const (
	// DefaultRequestTimeout bounds one HTTP request upstream.
	DefaultRequestTimeout = 30 * time.Second
	// leaseSlack is added to twice the pulling interval for the lease's
	// TTL, so that the holder renews it at every poll with time to spare
	// and a standby takes over within about two intervals of a crash.
	leaseSlack = 10 * time.Second
)

// DefaultFetchPolicy retries the fetch of one vCon body (idempotent) a
// little within a poll; the next poll is the longer retry. The egress pop
// is never retried within a poll: a retried pop whose first answer was
// lost would pop more uuids, not the same ones.
var DefaultFetchPolicy = httpx.Policy{Retries: 2, Base: time.Second, Max: 5 * time.Second, Jitter: true, MaxRetryAfter: 30 * time.Second}

// Options are what every follower of a worker shares.
type Options struct {
	// HeaderName is the API token header (CONSERVER_HEADER_NAME, as
	// conserver's follower sends it); default apiwire.DefaultHeaderName.
	HeaderName string
	// BodyTTL is the TTL of followed bodies (the API's for queued ones);
	// 0 keeps them without one, as conserver does.
	BodyTTL time.Duration
	// DLQExpiry is the TTL of a body dead-lettered with its vCon; 0 keeps
	// BodyTTL.
	DLQExpiry time.Duration
	// ContextTTL is the TTL of the trace-context records pushed with the
	// uuids.
	ContextTTL time.Duration
	// MaxBodyBytes refuses larger bodies (dead-lettered as too_large);
	// default vconstore.DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Owner identifies this worker in the lease.
	Owner string
	// HTTP is the client for upstream calls; RequestTimeout bounds each
	// (DefaultRequestTimeout when 0). FetchPolicy retries body fetches
	// (DefaultFetchPolicy when its Base is 0).
	HTTP           *http.Client
	RequestTimeout time.Duration
	FetchPolicy    httpx.Policy
	Metrics        *Metrics
	Logger         *slog.Logger
}

// Follower is one entry of followers:.
type Follower struct {
	name     string
	cfg      config.Follower
	base     string
	rdb      redis.UniversalClient
	bodies   *vconstore.Store
	opts     Options
	pending  string
	attempts string
	lease    string
	tracer   trace.Tracer
	log      *slog.Logger
}

// New builds the follower name of a validated config (config.Validate).
func New(name string, cfg config.Follower, rdb redis.UniversalClient, bodies *vconstore.Store, opts Options) *Follower {
	if opts.HeaderName == "" {
		opts.HeaderName = apiwire.DefaultHeaderName
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = vconstore.DefaultMaxBodyBytes
	}
	if opts.DLQExpiry <= 0 {
		opts.DLQExpiry = opts.BodyTTL
	}
	if opts.HTTP == nil {
		opts.HTTP = http.DefaultClient
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.FetchPolicy.Base == 0 {
		opts.FetchPolicy = DefaultFetchPolicy
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	opts.Metrics.init(name)
	return &Follower{
		name: name, cfg: cfg, base: strings.TrimRight(cfg.URL, "/"),
		rdb: rdb, bodies: bodies, opts: opts,
		pending:  queue.FollowerPendingKey(name),
		attempts: queue.FollowerAttemptsKey(name),
		lease:    queue.FollowerLeaseKey(name),
		tracer:   otel.Tracer("github.com/vcon-operator/vcon-operator/internal/follower"),
		// The URL names the upstream host, which is no secret; the token
		// never reaches a log line (httpx scrubs it from quoted answers).
		log: opts.Logger.With("follower", name, "upstream", redactedURL(cfg.URL), "egress_list", cfg.EgressList),
	}
}

// Name is the follower's name under followers:.
func (f *Follower) Name() string { return f.name }

// Run polls now and then every pulling interval, counted from the end of
// each poll as conserver's timer does, until ctx ends; then it gives up
// its lease so that a standby takes over at its next poll.
func (f *Follower) Run(ctx context.Context) {
	f.log.Info("follower starting", "pulling_interval", f.cfg.PullingInterval.String(), "fetch_vcon_limit", f.cfg.FetchVconLimit, "ingress_lists", f.cfg.IngressLists)
	defer f.release()
	for {
		if err := f.Poll(ctx); err != nil && ctx.Err() == nil {
			f.log.Error("follower poll stopped; what it popped stays pending for the next poll", "error", err.Error())
		}
		t := time.NewTimer(f.cfg.PullingInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Poll is one poll: if this worker holds the lease, it finishes what an
// earlier poll left pending, then pops and queues new vCons.
func (f *Follower) Poll(ctx context.Context) error {
	defer f.measurePending()
	held, err := f.hold(ctx)
	if err != nil {
		f.opts.Metrics.error(f.name, ErrLocalRedis)
		return fmt.Errorf("local Redis: take the follower lease: %w", err)
	}
	if !held {
		return nil
	}
	pending, err := f.rdb.LRange(ctx, f.pending, 0, -1).Result()
	if err != nil {
		f.opts.Metrics.error(f.name, ErrLocalRedis)
		return fmt.Errorf("local Redis: read %s: %w", f.pending, err)
	}
	var failed map[string]error
	if len(pending) > 0 {
		f.log.Info("finishing vCons an earlier poll popped upstream", "count", len(pending))
		if failed, err = f.forward(ctx, pending); err != nil {
			return err
		}
	}
	uuids, err := f.popEgress(ctx)
	if err != nil {
		// Upstream is not answering as a whole: what failed before is not
		// held against the vCons.
		return err
	}
	if len(uuids) > 0 {
		if err := f.rdb.RPush(ctx, f.pending, toArgs(uuids)...).Err(); err != nil {
			f.opts.Metrics.error(f.name, ErrLocalRedis)
			f.giveBack(ctx, uuids, err)
			return fmt.Errorf("local Redis: record %d popped uuids in %s: %w", len(uuids), f.pending, err)
		}
		more, err := f.forward(ctx, uuids)
		if err != nil {
			return err
		}
		if failed == nil {
			failed = more
		} else {
			maps.Copy(failed, more)
		}
	}
	return f.countFailures(ctx, failed)
}

// MaxFetchFailures is how many polls upstream may fail to give
// one vCon (a 5xx for it while the same poll's egress pop answered) before
// it is dead-lettered: one vCon upstream cannot serve must not hold up the
// others for ever, and an upstream that is down fails the pop too, which
// counts nothing.
const MaxFetchFailures = 5

// countFailures records one more failed poll for each vCon upstream
// failed to give, dead-letters those at MaxFetchFailures, and says what
// stays pending.
func (f *Follower) countFailures(ctx context.Context, failed map[string]error) error {
	if len(failed) == 0 {
		return nil
	}
	pipe := f.rdb.Pipeline()
	counts := map[string]*redis.IntCmd{}
	for u := range failed {
		counts[u] = pipe.HIncrBy(ctx, f.attempts, u, 1)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		f.opts.Metrics.error(f.name, ErrLocalRedis)
		return fmt.Errorf("local Redis: count failed fetches in %s: %w", f.attempts, err)
	}
	var kept []error
	for _, u := range slices.Sorted(maps.Keys(failed)) {
		n := counts[u].Val()
		if n < MaxFetchFailures {
			kept = append(kept, fmt.Errorf("vCon %s kept pending (failed poll %d of %d): %w", u, n, MaxFetchFailures, failed[u]))
			continue
		}
		why := &refusal{reason: "upstream_error", text: fmt.Sprintf("upstream failed to give it in %d polls while answering the others: %v", n, failed[u])}
		if err := f.deadLetter(ctx, u, nil, why); err != nil {
			return err
		}
	}
	return errors.Join(kept...)
}

// forward queues each uuid here, in order. A vCon upstream fails to give
// (a 5xx for it) is returned in failed, and the others go on; any other
// failure (upstream unreachable or refusing the token, local Redis away,
// the lease lost) stops it: those vCons stay pending.
func (f *Follower) forward(ctx context.Context, uuids []string) (failed map[string]error, err error) {
	for _, u := range uuids {
		if held, err := f.hold(ctx); err != nil || !held {
			if err == nil {
				err = errors.New("another worker took the follower lease")
			}
			f.opts.Metrics.error(f.name, ErrLocalRedis)
			return nil, fmt.Errorf("stop before vCon %s: %w", u, err)
		}
		err := f.forwardOne(ctx, u)
		var fe *fetchError
		switch {
		case errors.As(err, &fe):
			if failed == nil {
				failed = map[string]error{}
			}
			failed[u] = err
		case err != nil:
			return nil, err
		}
	}
	return failed, nil
}

// fetchError is upstream answering 5xx for one vCon: perhaps that vCon's
// problem, perhaps upstream's (countFailures tells them apart).
type fetchError struct{ err error }

func (e *fetchError) Error() string { return e.err.Error() }
func (e *fetchError) Unwrap() error { return e.err }

// refusal is a vCon upstream cannot give: it is dead-lettered, the poll
// goes on.
type refusal struct {
	reason string // a bounded label: not_found, malformed, too_large
	text   string
}

func (r *refusal) Error() string { return r.reason + ": " + r.text }

func (f *Follower) forwardOne(ctx context.Context, uuid string) error {
	ctx, span := f.tracer.Start(ctx, "follower."+f.name, trace.WithAttributes(
		attribute.String("vcon.uuid", uuid), attribute.String("follower.name", f.name)))
	defer span.End()
	body, err := f.fetch(ctx, uuid)
	var ref *refusal
	switch {
	case errors.As(err, &ref):
		return f.deadLetter(ctx, uuid, nil, ref)
	case err != nil:
		return err
	}
	writes := f.rdb.Pipeline()
	if err := f.bodies.QueueCreate(ctx, writes, uuid, body, f.opts.BodyTTL); err != nil {
		f.opts.Metrics.error(f.name, ErrLocalRedis)
		return fmt.Errorf("local Redis: write vCon %s: %w", uuid, err)
	}
	pushes := f.rdb.Pipeline()
	for _, list := range f.cfg.IngressLists {
		queue.QueuePush(ctx, pushes, list, f.opts.ContextTTL, uuid)
	}
	pushes.LRem(ctx, f.pending, 1, uuid)
	pushes.HDel(ctx, f.attempts, uuid)
	err = queue.ExecChecked(ctx, f.rdb, writes, pushes)
	var oe *queue.OutcomeError
	switch {
	case errors.As(err, &oe):
		return f.deadLetter(ctx, uuid, body, &refusal{reason: "outcome_failed", text: "Redis refused to queue it: " + oe.Error()})
	case err != nil:
		f.opts.Metrics.error(f.name, ErrLocalRedis)
		return fmt.Errorf("local Redis: queue vCon %s: %w", uuid, err)
	}
	f.opts.Metrics.vcons.WithLabelValues(f.name, OutcomeFollowed).Inc()
	return nil
}

// deadLetter puts uuid on DLQ:{first ingress list} with the reason (and
// its body when there is one) and takes it out of pending, in one
// outcome. When even that is refused, the vCon stays pending and the poll
// stops: it is tried again, never dropped.
func (f *Follower) deadLetter(ctx context.Context, uuid string, body []byte, why *refusal) error {
	pipe := f.rdb.Pipeline()
	if body != nil {
		if err := f.bodies.QueueCreate(ctx, pipe, uuid, body, f.opts.DLQExpiry); err != nil {
			f.opts.Metrics.error(f.name, ErrLocalRedis)
			return fmt.Errorf("local Redis: dead-letter vCon %s: %w", uuid, err)
		}
	}
	queue.QueueDeadLetter(pipe, queue.Item{List: f.cfg.IngressLists[0], UUID: uuid}, queue.DLQReason{
		Reason: why.Error(), Step: "follower " + f.name, At: time.Now().UTC(),
	})
	pipe.LRem(ctx, f.pending, 1, uuid)
	pipe.HDel(ctx, f.attempts, uuid)
	err := queue.ExecChecked(ctx, f.rdb, pipe)
	var oe *queue.OutcomeError
	if errors.As(err, &oe) && body != nil {
		// vcon:{uuid} itself is refused (a key of another type): the
		// dead letter goes without the body rather than not at all.
		why = &refusal{reason: why.reason, text: why.text + "; the body was not kept either: " + oe.Error()}
		return f.deadLetter(ctx, uuid, nil, why)
	}
	if err != nil {
		f.opts.Metrics.error(f.name, ErrLocalRedis)
		return fmt.Errorf("local Redis: dead-letter vCon %s (%s): %w", uuid, why.reason, err)
	}
	f.opts.Metrics.vcons.WithLabelValues(f.name, OutcomeDeadLettered).Inc()
	f.log.Warn("followed vCon dead-lettered", "vcon", uuid, "dlq", queue.DLQKey(f.cfg.IngressLists[0]), "reason", why.Error())
	return nil
}

// popEgress pops up to fetch_vcon_limit uuids upstream.
func (f *Follower) popEgress(ctx context.Context) ([]string, error) {
	q := url.Values{"egress_list": {f.cfg.EgressList}, "limit": {strconv.Itoa(f.cfg.FetchVconLimit)}}
	answer, err := f.call(ctx, "GET /vcon/egress", httpx.Policy{}, http.MethodGet, f.base+"/vcon/egress?"+q.Encode(), nil)
	if err != nil {
		f.opts.Metrics.error(f.name, upstreamReason(err))
		return nil, fmt.Errorf("pop upstream egress list %s: %w%s", f.cfg.EgressList, err, upstreamHint(err))
	}
	var uuids []string
	if err := json.Unmarshal(answer, &uuids); err != nil {
		f.opts.Metrics.error(f.name, ErrInvalidAnswer)
		// The answer may have popped uuids this worker cannot read: say
		// so, as nothing else will.
		return nil, fmt.Errorf("pop upstream egress list %s: the answer is not a JSON list of uuids (%s); if upstream popped any, they are lost: check that url names a conserver API", f.cfg.EgressList, httpx.JSONError(err))
	}
	return uuids, nil
}

// fetch reads one vCon upstream. A *refusal is the vCon's own problem;
// any other error is upstream's (down, slow, refusing the token).
func (f *Follower) fetch(ctx context.Context, uuid string) ([]byte, error) {
	if !vcon.ValidUUID(uuid) {
		return nil, &refusal{reason: "malformed", text: "upstream egress list held something that is not a vCon uuid"}
	}
	body, err := f.call(ctx, "GET /vcon/{uuid}", f.opts.FetchPolicy, http.MethodGet, f.base+"/vcon/"+url.PathEscape(uuid), nil)
	var se *httpx.StatusError
	switch {
	case errors.As(err, &se) && se.Status == http.StatusNotFound:
		return nil, &refusal{reason: "not_found", text: "upstream has no such vCon (GET /vcon/{uuid} answered 404)"}
	case errors.As(err, &se) && se.Status == http.StatusUnprocessableEntity:
		return nil, &refusal{reason: "malformed", text: "upstream refused the uuid (GET /vcon/{uuid} answered 422)"}
	case errors.Is(err, httpx.ErrAnswerTooLarge):
		return nil, &refusal{reason: "too_large", text: fmt.Sprintf("the body is over %d bytes, more than any worker reads", httpx.MaxAnswerBytes)}
	case err != nil:
		f.opts.Metrics.error(f.name, upstreamReason(err))
		err = fmt.Errorf("fetch vCon %s upstream: %w%s", uuid, err, upstreamHint(err))
		if errors.As(err, &se) && se.Status >= 500 {
			return nil, &fetchError{err}
		}
		return nil, err
	}
	if int64(len(body)) > f.opts.MaxBodyBytes {
		return nil, &refusal{reason: "too_large", text: fmt.Sprintf("the body is %d bytes, over the worker's limit of %d (--max-body-bytes)", len(body), f.opts.MaxBodyBytes)}
	}
	var doc struct {
		UUID *string `json:"uuid"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, &refusal{reason: "malformed", text: "upstream answered GET /vcon/{uuid} with something that is not a vCon: " + httpx.JSONError(err)}
	}
	if doc.UUID == nil || !strings.EqualFold(*doc.UUID, uuid) {
		return nil, &refusal{reason: "malformed", text: "upstream answered GET /vcon/{uuid} with a document whose uuid is not that vCon's"}
	}
	return body, nil
}

// giveBack pushes uuids popped upstream back onto the upstream egress list
// when they cannot be recorded here. The push goes onto the end the egress
// call pops from, so they come back first.
func (f *Follower) giveBack(ctx context.Context, uuids []string, cause error) {
	data, _ := json.Marshal(uuids)
	q := url.Values{"ingress_list": {f.cfg.EgressList}}
	_, err := f.call(ctx, "POST /vcon/ingress", f.opts.FetchPolicy, http.MethodPost, f.base+"/vcon/ingress?"+q.Encode(), data)
	if err == nil {
		f.opts.Metrics.vcons.WithLabelValues(f.name, OutcomeReturned).Add(float64(len(uuids)))
		f.log.Warn("popped vCons pushed back onto the upstream egress list: local Redis could not record them", "count", len(uuids), "cause", cause.Error())
		return
	}
	f.opts.Metrics.vcons.WithLabelValues(f.name, OutcomeLost).Add(float64(len(uuids)))
	f.log.Error("popped vCons are lost: local Redis could not record them and upstream did not take them back; queue them again upstream with POST /vcon/ingress",
		"uuids", uuids, "cause", cause.Error(), "error", err.Error())
}

// call is one request upstream with the API token header.
func (f *Follower) call(ctx context.Context, op string, p httpx.Policy, method, target string, body []byte) ([]byte, error) {
	c := httpx.Call{
		Vendor: "upstream conserver", Operation: op, Policy: p, Timeout: f.opts.RequestTimeout,
		Secrets: []string{f.cfg.AuthToken},
		NewRequest: func(ctx context.Context) (*http.Request, error) {
			var r *http.Request
			var err error
			if body != nil {
				r, err = http.NewRequestWithContext(ctx, method, target, strings.NewReader(string(body)))
			} else {
				r, err = http.NewRequestWithContext(ctx, method, target, nil)
			}
			if err != nil {
				return nil, err
			}
			r.Header.Set("Content-Type", "application/json")
			if f.cfg.AuthToken != "" {
				r.Header.Set(f.opts.HeaderName, f.cfg.AuthToken)
			}
			return r, nil
		},
	}
	return c.Do(ctx, f.opts.HTTP)
}

// upstreamHint says what to do about an upstream refusal.
func upstreamHint(err error) string {
	var se *httpx.StatusError
	if errors.As(err, &se) && (se.Status == http.StatusUnauthorized || se.Status == http.StatusForbidden) {
		return " (upstream refused the API token: check auth_token, and CONSERVER_HEADER_NAME if upstream uses another header)"
	}
	return ""
}

// Lease: a worker holds it while the value is its id; taking a free one
// and renewing one's own are one script, so two workers never both hold it.
var holdScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`)

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

func (f *Follower) leaseTTL() time.Duration { return 2*f.cfg.PullingInterval + leaseSlack }

// hold takes or renews the lease; it reports whether this worker polls.
func (f *Follower) hold(ctx context.Context) (bool, error) {
	n, err := holdScript.Run(ctx, f.rdb, []string{f.lease}, f.opts.Owner, f.leaseTTL().Milliseconds()).Int()
	if err != nil {
		return false, err
	}
	f.opts.Metrics.leader.WithLabelValues(f.name).Set(float64(n))
	return n == 1, nil
}

func (f *Follower) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := releaseScript.Run(ctx, f.rdb, []string{f.lease}, f.opts.Owner).Err(); err != nil {
		f.log.Warn("follower lease not released; a standby takes over when it expires", "ttl", f.leaseTTL().String(), "error", err.Error())
	}
	f.opts.Metrics.leader.WithLabelValues(f.name).Set(0)
}

func (f *Follower) measurePending() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if n, err := f.rdb.LLen(ctx, f.pending).Result(); err == nil {
		f.opts.Metrics.pending.WithLabelValues(f.name).Set(float64(n))
	}
}

func toArgs(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// redactedURL drops a URL's query, where a token might have been put.
func redactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable)"
	}
	u.RawQuery, u.Fragment, u.User = "", "", nil
	return u.String()
}
