package testenv

import (
	"context"
	"testing"
)

func TestRedisRestartKeepsAOFData(t *testing.T) {
	r := StartRedis(t, WithAOF())
	ctx := context.Background()
	c := r.Client()
	if err := c.RPush(ctx, "default", "a", "b").Err(); err != nil {
		t.Fatal(err)
	}
	r.Restart()
	n, err := c.LLen(ctx, "default").Result()
	if err != nil || n != 2 {
		t.Fatalf("after restart LLEN default = %d, %v; want 2", n, err)
	}
}
