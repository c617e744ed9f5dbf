package redisconn

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestOpen(t *testing.T) {
	cases := []struct {
		url     string
		want    string // client type
		wantErr string
	}{
		{url: "redis://localhost:6379/2", want: "*redis.Client"},
		{url: "rediss://user:pw@localhost:6380", want: "*redis.Client"},
		{url: "unix:///tmp/redis.sock", want: "*redis.Client"},
		{url: "redis+cluster://a:7000?addr=b:7001", want: "*redis.ClusterClient"},
		{url: "redis+sentinel://s1:26379,s2:26379/1?master=mymaster", want: "*redis.Client"},
		{url: "redis+sentinel://s1:26379", wantErr: "master"},
		{url: "http://x", wantErr: "unknown scheme"},
		{url: "localhost:6379", wantErr: "want redis://"},
		{url: "redis://:hunter2@host:notaport/x", wantErr: "redis url"},
	}
	for _, tc := range cases {
		t.Run(tc.url, func(t *testing.T) {
			c, err := Open(tc.url)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := typeName(c); got != tc.want {
				t.Errorf("client %s, want %s", got, tc.want)
			}
		})
	}
}

func typeName(c redis.UniversalClient) string {
	switch c.(type) {
	case *redis.Client:
		return "*redis.Client"
	case *redis.ClusterClient:
		return "*redis.ClusterClient"
	}
	return "other"
}
