// Package redisconn opens a Redis client from a URL: the one format the
// worker, the API, the operator and the Chain spec all accept, so that a
// URL that works in one place works everywhere.
package redisconn

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Open returns a client for a Redis URL; it does not connect. Accepted forms:
//
//	redis://[user:pass@]host:port[/db]      one server (also unix://path)
//	rediss://...                            the same over TLS
//	redis+cluster://host:port?addr=host2:port   Redis Cluster (seed nodes; rediss+cluster for TLS)
//	redis+sentinel://[user:pass@]s1:26379,s2:26379[/db]?master=mymaster[&sentinel_password=..]
//
// The password never appears in an error.
func Open(raw string) (redis.UniversalClient, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, fmt.Errorf("redis url: want redis://host:port (or rediss://, unix://, redis+cluster://, redis+sentinel://)")
	}
	switch strings.ToLower(scheme) {
	case "redis", "rediss", "unix":
		o, err := redis.ParseURL(raw)
		if err != nil {
			return nil, fmt.Errorf("redis url: %s", redactURLError(err, raw))
		}
		return redis.NewClient(o), nil
	case "redis+cluster", "rediss+cluster":
		o, err := redis.ParseClusterURL(strings.TrimSuffix(strings.ToLower(scheme), "+cluster") + "://" + rest)
		if err != nil {
			return nil, fmt.Errorf("redis url: %s", redactURLError(err, raw))
		}
		return redis.NewClusterClient(o), nil
	case "redis+sentinel", "rediss+sentinel":
		return newSentinelClient(strings.HasPrefix(strings.ToLower(scheme), "rediss"), rest)
	}
	return nil, fmt.Errorf("redis url: unknown scheme %q (want redis, rediss, unix, redis+cluster or redis+sentinel)", scheme)
}

func newSentinelClient(useTLS bool, rest string) (redis.UniversalClient, error) {
	u, err := url.Parse("redis://" + rest)
	if err != nil {
		return nil, fmt.Errorf("redis url: not a valid sentinel URL")
	}
	o := &redis.FailoverOptions{
		MasterName:       u.Query().Get("master"),
		SentinelAddrs:    strings.Split(u.Host, ","),
		SentinelPassword: u.Query().Get("sentinel_password"),
	}
	if o.MasterName == "" {
		return nil, fmt.Errorf("redis url: a sentinel URL needs ?master=<name>")
	}
	if u.User != nil {
		o.Username = u.User.Username()
		o.Password, _ = u.User.Password()
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		n, err := strconv.Atoi(db)
		if err != nil {
			return nil, fmt.Errorf("redis url: database %q is not a number", db)
		}
		o.DB = n
	}
	if useTLS {
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return redis.NewFailoverClient(o), nil
}

// redactURLError keeps the credentials of the URL out of the message,
// also when the URL does not parse.
func redactURLError(err error, raw string) string {
	msg := err.Error()
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return msg
	}
	authority, _, _ := strings.Cut(rest, "/")
	if at := strings.LastIndex(authority, "@"); at > 0 {
		msg = strings.ReplaceAll(msg, authority[:at], "xxxxx")
	}
	return msg
}

// Redacted returns url with its password replaced, for logs.
func Redacted(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparseable redis url)"
	}
	return u.Redacted()
}
