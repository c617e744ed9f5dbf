package policy

import (
	"net"
	"strings"

	"github.com/vcon-operator/vcon-operator/internal/redisconn"
)

// RedisRefused returns the first address of s that no pattern allows, or ""
// when all are allowed. No patterns allow any Redis. A pattern is a host
// (any port), host:port, or *.domain[:port] (any name below domain, not
// domain itself); hosts compare case-insensitively, as DNS does. A unix
// socket is refused by any non-empty list: it is a path in the worker's
// filesystem, not a host the list can name.
func RedisRefused(patterns []string, s redisconn.Server) string {
	if len(patterns) == 0 {
		return ""
	}
	for _, addr := range s.Addrs {
		if s.Kind == "unix" || !redisAddrAllowed(patterns, addr) {
			return addr
		}
	}
	return ""
}

func redisAddrAllowed(patterns []string, addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	host = strings.ToLower(host)
	for _, p := range patterns {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" {
			continue
		}
		ph, pp := p, ""
		if h, pt, err := net.SplitHostPort(p); err == nil {
			ph, pp = h, pt
		} else if strings.HasPrefix(p, "[") && strings.HasSuffix(p, "]") {
			ph = p[1 : len(p)-1]
		}
		if pp != "" && pp != port {
			continue
		}
		if suffix, wild := strings.CutPrefix(ph, "*."); wild {
			// The dot keeps evil-example.com out of *.example.com.
			if strings.HasSuffix(host, "."+suffix) {
				return true
			}
			continue
		}
		if host == strings.TrimSuffix(ph, ".") {
			return true
		}
	}
	return false
}
