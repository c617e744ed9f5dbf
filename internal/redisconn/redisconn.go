// Package redisconn opens a Redis client from a URL, the one format every
// binary and the Chain spec accept:
//
//	redis://[user:password@]host:port[/db]           one server
//	rediss://...                                      one server over TLS
//	unix:///path/to/socket                            one server over a socket
//	redis+cluster://host1:port?addr=host2:port&...    Redis Cluster (rediss+cluster for TLS)
//	redis+sentinel://[user:password@]host1:port,host2:port/master-name[/db]
//	                                                  Sentinel (rediss+sentinel for TLS)
package redisconn

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Open returns a client for url. It does not connect.
func Open(rawURL string) (redis.UniversalClient, error) {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil, fmt.Errorf("redis url: missing scheme (want redis://host:port)")
	}
	switch scheme {
	case "redis", "rediss", "unix":
		opts, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("redis url: %w", redact(err, rawURL))
		}
		return redis.NewClient(opts), nil
	case "redis+cluster", "rediss+cluster":
		base := strings.TrimSuffix(scheme, "+cluster")
		opts, err := redis.ParseClusterURL(base + "://" + rest)
		if err != nil {
			return nil, fmt.Errorf("redis cluster url: %w", redact(err, rawURL))
		}
		return redis.NewClusterClient(opts), nil
	case "redis+sentinel", "rediss+sentinel":
		return openSentinel(scheme == "rediss+sentinel", rest)
	default:
		return nil, fmt.Errorf("redis url: unsupported scheme %q (use redis, rediss, unix, redis+cluster or redis+sentinel)", scheme)
	}
}

func openSentinel(useTLS bool, rest string) (redis.UniversalClient, error) {
	u, err := url.Parse("redis://" + rest)
	if err != nil {
		return nil, fmt.Errorf("redis sentinel url: cannot parse")
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if parts[0] == "" {
		return nil, fmt.Errorf("redis sentinel url: missing master name (redis+sentinel://host:port/master-name)")
	}
	opts := &redis.FailoverOptions{MasterName: parts[0], SentinelAddrs: strings.Split(u.Host, ",")}
	if len(parts) > 1 {
		db, err := strconv.Atoi(parts[1])
		if err != nil {
			return nil, fmt.Errorf("redis sentinel url: database %q is not a number", parts[1])
		}
		opts.DB = db
	}
	if u.User != nil {
		opts.Username = u.User.Username()
		opts.Password, _ = u.User.Password()
	}
	if useTLS {
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return redis.NewFailoverClient(opts), nil
}

// redact keeps a password in the URL out of error messages.
func redact(err error, rawURL string) error {
	u, perr := url.Parse(rawURL)
	if perr != nil || u.User == nil {
		return err
	}
	if p, ok := u.User.Password(); ok && p != "" {
		return fmt.Errorf("%s", strings.ReplaceAll(err.Error(), p, "xxxxx"))
	}
	return err
}

// Redacted returns url with its password replaced, for logs.
func Redacted(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparseable redis url)"
	}
	return u.Redacted()
}
