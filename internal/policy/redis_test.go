package policy

import (
	"testing"

	"github.com/vcon-operator/vcon-operator/internal/redisconn"
)

func TestRedisRefused(t *testing.T) {
	tests := []struct {
		name     string
		patterns []string
		url      string
		refused  string
	}{
		{"no patterns: any Redis", nil, "redis://anywhere:1/0", ""},
		{"host, any port", []string{"redis.example.com"}, "redis://redis.example.com:6380/0", ""},
		{"host, case and spelling", []string{"Redis.Example.com"}, "rediss://u:p@REDIS.example.com/3", ""},
		{"host:port", []string{"redis.example.com:6379"}, "redis://redis.example.com/0", ""},
		{"host:port, other port", []string{"redis.example.com:6379"}, "redis://redis.example.com:6380/0", "redis.example.com:6380"},
		{"other host", []string{"redis.example.com"}, "redis://evil.io:6379/0", "evil.io:6379"},
		{"lookalike host", []string{"redis.example.com"}, "redis://redis.example.com.evil.io/0", "redis.example.com.evil.io:6379"},
		{"user part is not the host", []string{"redis.example.com"}, "redis://redis.example.com@evil.io/0", "evil.io:6379"},
		{"wildcard", []string{"*.redis.svc"}, "redis://a.b.redis.svc:6379/0", ""},
		{"wildcard is not the bare domain", []string{"*.redis.svc"}, "redis://redis.svc/0", "redis.svc:6379"},
		{"wildcard needs a dot", []string{"*.example.com"}, "redis://evil-example.com/0", "evil-example.com:6379"},
		{"wildcard with port", []string{"*.example.com:6379"}, "redis://r.example.com:6380/0", "r.example.com:6380"},
		{"IPv6", []string{"[::1]:6379"}, "redis://[::1]/0", ""},
		{"cluster: every seed", []string{"a.example.com"}, "redis+cluster://a.example.com:7000?addr=evil.io:7000", "evil.io:7000"},
		{"sentinel: every sentinel", []string{"*.example.com"}, "redis+sentinel://s1.example.com,s2.example.com/0?master=m", ""},
		{"unix socket with a list", []string{"redis.example.com"}, "unix:///run/redis.sock", "/run/redis.sock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := redisconn.ParseServer(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			if got := RedisRefused(tt.patterns, s); got != tt.refused {
				t.Errorf("RedisRefused(%q, %s) = %q, want %q", tt.patterns, s, got, tt.refused)
			}
		})
	}
}
