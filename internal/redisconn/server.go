package redisconn

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Server is the Redis a URL names, with everything that does not choose the
// server or the database left out: user and password, TLS or not (one port
// speaks one of them), the spelling of the host and defaulted parts. Two
// URLs that reach the same lists have equal Servers: redis://h:6379/0,
// redis://H, rediss://user:pw@h/0 and redis://h:6379 are one Server.
type Server struct {
	// Kind is "redis" (one server, TLS or not), "unix", "cluster" or
	// "sentinel".
	Kind string
	// Addrs are host:port (host lowercased, port defaulted), sorted; the
	// socket path for unix; the seed nodes of a cluster; the sentinels.
	Addrs []string
	// DB is the database number (always 0 in a cluster).
	DB int
	// Master is a sentinel deployment's master name.
	Master string
}

// String is the Server's identity: equal exactly when the Servers are. It
// holds no credentials, so it may appear in status messages.
func (s Server) String() string {
	addrs := strings.Join(s.Addrs, ",")
	switch s.Kind {
	case "cluster":
		return "cluster(" + addrs + ")"
	case "sentinel":
		return fmt.Sprintf("sentinel(%s@%s)/%d", s.Master, addrs, s.DB)
	case "unix":
		return fmt.Sprintf("unix:%s/%d", addrs, s.DB)
	}
	return fmt.Sprintf("%s/%d", addrs, s.DB)
}

// ParseServer reads a URL in any form Open accepts. Like Open, its errors
// never quote the URL: it may hold a password.
func ParseServer(raw string) (Server, error) {
	scheme, rest, ok := strings.Cut(strings.TrimSpace(raw), "://")
	if !ok {
		return Server{}, fmt.Errorf("redis url: want redis://host:port (or rediss://, unix://, redis+cluster://, redis+sentinel://)")
	}
	scheme = strings.ToLower(scheme)
	switch scheme {
	case "redis", "rediss", "redis+cluster", "rediss+cluster", "redis+sentinel", "rediss+sentinel":
	case "unix":
		u, err := url.Parse("unix://" + rest)
		if err != nil {
			return Server{}, fmt.Errorf("redis url: not a valid unix URL")
		}
		db, err := dbNumber(u.Query().Get("db"))
		if err != nil {
			return Server{}, err
		}
		return Server{Kind: "unix", Addrs: []string{u.Host + u.Path}, DB: db}, nil
	default:
		return Server{}, fmt.Errorf("redis url: unknown scheme %q (want redis, rediss, unix, redis+cluster or redis+sentinel)", scheme)
	}
	// url.Parse takes one host; the comma-separated sentinels are split
	// off by hand so that each is normalised.
	authority, tail, _ := strings.Cut(rest, "/")
	path := ""
	if q := strings.IndexAny(authority, "?#"); q >= 0 {
		authority, tail = authority[:q], authority[q:]
	} else if tail != "" || strings.Contains(rest, "/") {
		path = "/" + tail
		tail = ""
	}
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		authority = authority[at+1:]
	}
	u, err := url.Parse("redis://x" + path + tail)
	if err != nil {
		return Server{}, fmt.Errorf("redis url: not a valid URL")
	}
	s := Server{Kind: "redis"}
	defaultPort := "6379"
	switch {
	case strings.HasSuffix(scheme, "+cluster"):
		s.Kind = "cluster"
	case strings.HasSuffix(scheme, "+sentinel"):
		s.Kind, s.Master, defaultPort = "sentinel", u.Query().Get("master"), "26379"
	}
	hosts := []string{authority}
	switch s.Kind {
	case "sentinel":
		hosts = strings.Split(authority, ",")
	case "cluster":
		hosts = append(hosts, u.Query()["addr"]...)
	}
	for _, h := range hosts {
		a, err := normalAddr(h, defaultPort)
		if err != nil {
			return Server{}, err
		}
		if !slices.Contains(s.Addrs, a) {
			s.Addrs = append(s.Addrs, a)
		}
	}
	slices.Sort(s.Addrs)
	if s.Kind != "cluster" {
		if s.DB, err = dbNumber(strings.Trim(u.Path, "/")); err != nil {
			return Server{}, err
		}
	}
	return s, nil
}

func normalAddr(hostport, defaultPort string) (string, error) {
	host, port := hostport, defaultPort
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		host, port = h, p
	} else if strings.HasPrefix(hostport, "[") && strings.HasSuffix(hostport, "]") {
		host = hostport[1 : len(hostport)-1] // an IPv6 literal without a port
	}
	if host == "" {
		return "", fmt.Errorf("redis url: no host")
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", fmt.Errorf("redis url: port %q is not a number", port)
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	return net.JoinHostPort(host, port), nil
}

func dbNumber(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("redis url: database %q is not a number", s)
	}
	return n, nil
}

// Qualify makes a Redis URL whose host is a bare Service name (redis,
// my-redis) usable from every namespace: the name resolves only in the
// namespace of whoever wrote it, so it becomes <name>.<namespace>.svc. The
// operator's default URL is written for the operator's namespace but given
// to worker pods in the Chains' namespaces, where "redis" names nothing
// (or, worse, another Redis). Hosts with a dot, IP addresses, localhost,
// and URLs with several hosts (cluster seeds, sentinels) or sockets are
// returned unchanged: only a single-label name is namespace-relative.
func Qualify(raw, namespace string) string {
	if namespace == "" {
		return raw
	}
	scheme, _, ok := strings.Cut(strings.TrimSpace(raw), "://")
	if !ok || (strings.ToLower(scheme) != "redis" && strings.ToLower(scheme) != "rediss") {
		return raw
	}
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return raw
	}
	host := u.Hostname()
	if host == "" || strings.Contains(host, ".") || strings.Contains(host, ",") || strings.EqualFold(host, "localhost") || net.ParseIP(host) != nil {
		return raw
	}
	qualified := host + "." + namespace + ".svc"
	if port := u.Port(); port != "" {
		qualified = net.JoinHostPort(qualified, port)
	}
	u.Host = qualified
	return u.String()
}
