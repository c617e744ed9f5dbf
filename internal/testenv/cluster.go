package testenv

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisCluster is a private Redis Cluster of redis-server masters on
// loopback ports, every slot assigned, stopped when the test ends.
type RedisCluster struct {
	t     testing.TB
	Nodes []*Redis
	// Addrs are the nodes' host:port, in order.
	Addrs []string
}

// StartRedisCluster starts n cluster-enabled redis-servers, splits the
// 16384 slots between them (CLUSTER ADDSLOTSRANGE), joins them (CLUSTER
// MEET) and waits until every node reports cluster_state:ok.
func StartRedisCluster(t testing.TB, n int) *RedisCluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("StartRedisCluster: need at least one node, got %d", n)
	}
	c := &RedisCluster{t: t}
	for range n {
		r := StartRedis(t, withCluster(freeClusterPort(t)))
		c.Nodes = append(c.Nodes, r)
		c.Addrs = append(c.Addrs, r.Addr)
	}
	ctx := context.Background()
	const slots = 16384
	clients := make([]*redis.Client, n)
	for i, r := range c.Nodes {
		clients[i] = r.Client()
		first, last := i*slots/n, (i+1)*slots/n-1
		if err := clients[i].Do(ctx, "CLUSTER", "ADDSLOTSRANGE", first, last).Err(); err != nil {
			t.Fatalf("node %s: CLUSTER ADDSLOTSRANGE %d %d: %v", r.Addr, first, last, err)
		}
	}
	for _, r := range c.Nodes[1:] {
		host, port, _ := net.SplitHostPort(r.Addr)
		if err := clients[0].ClusterMeet(ctx, host, port).Err(); err != nil {
			t.Fatalf("CLUSTER MEET %s: %v", r.Addr, err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for i, cl := range clients {
		for {
			info, err := cl.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(n)+"\r") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redis cluster node %s not ready within 60s: %v\n%s", c.Addrs[i], err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Every node must also route every slot, or a client's first command
	// may meet a node that does not know the others' slots yet.
	cc := c.Client()
	for {
		err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return m.Ping(ctx).Err() })
		if err == nil && len(cc.ClusterSlots(ctx).Val()) == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis cluster not routable within 60s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c
}

// URL is the cluster in the form internal/redisconn reads:
// redis+cluster://host1:port?addr=host2:port&addr=host3:port.
func (c *RedisCluster) URL() string {
	u := "redis+cluster://" + c.Addrs[0]
	for i, a := range c.Addrs[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + a
	}
	return u
}

// Client returns a cluster client, closed when the test ends.
func (c *RedisCluster) Client() *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs})
	c.t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// freeClusterPort finds a free port whose cluster bus port (+10000) is free
// and valid too.
func freeClusterPort(t testing.TB) int {
	t.Helper()
	for range 100 {
		p := FreePort(t)
		if p+10000 > 65535 {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+10000)))
		if err != nil {
			continue
		}
		_ = l.Close()
		return p
	}
	t.Fatal(fmt.Errorf("no free port pair (port, port+10000) for a cluster node after 100 tries"))
	return 0
}
