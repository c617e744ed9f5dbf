package redisconn

import (
	"strings"
	"testing"
)

// TestParseServer: URLs that reach the same lists are one Server however
// they are written, and different servers or databases are not.
func TestParseServer(t *testing.T) {
	same := [][]string{
		{"redis://h:6379/0", "redis://H", "redis://user:pw@h/0", "redis://h:6379", "redis://h/", "rediss://:pw@h:6379/0", "REDIS://h.:6379/0", "redis://h:6379/0?dial_timeout=3s"},
		{"redis://h:6380/2", "redis://:x@H:6380/2"},
		{"redis://[::1]:6379/0", "redis://[::1]/0"},
		{"redis+cluster://a:7000?addr=b:7001", "redis+cluster://B:7001?addr=a:7000&addr=a:7000", "rediss+cluster://u:p@a:7000?addr=b:7001"},
		{"redis+sentinel://s1,s2:26379/1?master=m", "redis+sentinel://:pw@S2,s1:26379/1?master=m&sentinel_password=x"},
		{"unix:///run/redis.sock", "unix:///run/redis.sock?db=0"},
	}
	ids := map[string]int{}
	for group, urls := range same {
		var first string
		for _, u := range urls {
			s, err := ParseServer(u)
			if err != nil {
				t.Errorf("ParseServer(%q): %v", u, err)
				continue
			}
			id := s.String()
			if first == "" {
				first = id
			} else if id != first {
				t.Errorf("%q is %s, want %s like %q", u, id, first, urls[0])
			}
			if strings.Contains(id, "pw") || strings.Contains(id, "user") {
				t.Errorf("identity %s holds credentials", id)
			}
		}
		if g, dup := ids[first]; dup {
			t.Errorf("groups %d and %d are both %s", g, group, first)
		}
		ids[first] = group
	}
	for _, tt := range []struct{ a, b string }{
		{"redis://h:6379/0", "redis://h:6379/1"},
		{"redis://h:6379/0", "redis://h:6380/0"},
		{"redis://h:6379/0", "redis://h2:6379/0"},
		{"redis+sentinel://s1/0?master=a", "redis+sentinel://s1/0?master=b"},
	} {
		a, _ := ParseServer(tt.a)
		b, _ := ParseServer(tt.b)
		if a.String() == b.String() {
			t.Errorf("%q and %q are both %s", tt.a, tt.b, a)
		}
	}
	for _, bad := range []string{"h:6379", "http://h", "redis://:pw@h:port/0", "redis://:pw@h/x", "redis://:secretpw@/0"} {
		_, err := ParseServer(bad)
		if err == nil {
			t.Errorf("ParseServer(%q) accepted it", bad)
		} else if strings.Contains(err.Error(), "pw") {
			t.Errorf("error %q quotes the password", err)
		}
	}
}

func TestQualify(t *testing.T) {
	for _, tc := range []struct{ in, ns, want string }{
		{"redis://redis:6379/0", "vcon-system", "redis://redis.vcon-system.svc:6379/0"},
		{"redis://redis", "vcon-system", "redis://redis.vcon-system.svc"},
		{"rediss://user:p%40ss@my-redis:6380/2", "ops", "rediss://user:p%40ss@my-redis.ops.svc:6380/2"},
		{"redis://redis.other.svc:6379/0", "vcon-system", "redis://redis.other.svc:6379/0"},
		{"redis://redis.example.com:6379", "vcon-system", "redis://redis.example.com:6379"},
		{"redis://10.0.0.5:6379/0", "vcon-system", "redis://10.0.0.5:6379/0"},
		{"redis://[fd00::5]:6379/0", "vcon-system", "redis://[fd00::5]:6379/0"},
		{"redis://localhost:6379", "vcon-system", "redis://localhost:6379"},
		{"redis+sentinel://s1:26379,s2:26379/mymaster", "vcon-system", "redis+sentinel://s1:26379,s2:26379/mymaster"},
		{"unix:///run/redis.sock", "vcon-system", "unix:///run/redis.sock"},
		{"redis://redis:6379/0", "", "redis://redis:6379/0"},
		{"not a url", "vcon-system", "not a url"},
	} {
		if got := Qualify(tc.in, tc.ns); got != tc.want {
			t.Errorf("Qualify(%q, %q) = %q, want %q", tc.in, tc.ns, got, tc.want)
		}
	}
}
