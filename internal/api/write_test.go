package api

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/apiwire"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// faultProxy forwards TCP connections to a redis-server and injects one
// fault into the next transaction it sees (a request holding EXEC), or
// hangs every connection as a Redis that accepts but never answers.
type faultProxy struct {
	t      *testing.T
	l      net.Listener
	target string
	fault  atomic.Int32
	hang   atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

const (
	noFault         = iota
	loseExecReply   // forward the transaction, throw away Redis's reply
	loseExecRequest // throw away the transaction before Redis sees EXEC
)

func startFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{t: t, l: l, target: target}
	go p.serve()
	t.Cleanup(func() {
		_ = l.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			_ = c.Close()
		}
	})
	return p
}

func (p *faultProxy) addr() string { return p.l.Addr().String() }

func (p *faultProxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		p.mu.Unlock()
		if p.hang.Load() {
			continue // accepted, never answered
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, s)
		p.mu.Unlock()
		var mute atomic.Bool // Redis's replies on this connection are lost
		go func() {
			buf := make([]byte, 64<<10)
			for {
				n, err := s.Read(buf)
				if n > 0 && !mute.Load() {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					_ = c.Close()
					return
				}
			}
		}()
		go func() {
			buf := make([]byte, 64<<10)
			dropping := false
			for {
				n, err := c.Read(buf)
				if n > 0 && !dropping {
					chunk := buf[:n]
					if bytes.Contains(bytes.ToLower(chunk), []byte("$4\r\nexec\r\n")) {
						switch {
						case p.fault.CompareAndSwap(loseExecReply, noFault):
							mute.Store(true)
						case p.fault.CompareAndSwap(loseExecRequest, noFault):
							dropping = true
							chunk = nil
						}
					}
					if _, werr := s.Write(chunk); werr != nil {
						return
					}
				}
				if err != nil {
					_ = s.Close()
					return
				}
			}
		}()
	}
}

// newProxiedHarness is a harness whose Server talks to Redis through a
// faultProxy with a short read timeout; h.rdb talks to Redis directly.
func newProxiedHarness(t *testing.T, mutate func(*Options)) (*harness, *faultProxy) {
	t.Helper()
	r := testenv.StartRedis(t)
	p := startFaultProxy(t, r.Addr)
	proxied := redis.NewClient(&redis.Options{Addr: p.addr(), ReadTimeout: 300 * time.Millisecond})
	t.Cleanup(func() { _ = proxied.Close() })
	opts := Options{Tokens: []string{testToken}, VconTTL: apiwire.DefaultVconTTL, IndexTTL: DefaultIndexTTL, ContextTTL: queue.DefaultContextTTL}
	if mutate != nil {
		mutate(&opts)
	}
	srv, err := New(proxied, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return &harness{t: t, redis: r, rdb: r.Client(), srv: srv, h: srv.Handler()}, p
}

// TestLostExecReplyIsAnsweredTruthfully: Redis ran the transaction but its
// reply never reached the API. The API finds out and answers 201, and the
// producer's retry (as after any answer it did not get) queues nothing more.
func TestLostExecReplyIsAnsweredTruthfully(t *testing.T) {
	h, p := newProxiedHarness(t, nil)
	ctx := context.Background()

	p.fault.Store(loseExecReply)
	rec := h.doJSON("POST", "/api/vcon?ingress_lists=work", testVcon(u1))
	if p.fault.Load() != noFault {
		t.Fatal("the fault was not injected")
	}
	mustStatus(t, rec, http.StatusCreated)
	if n := h.rdb.Exists(ctx, "vcon:"+u1).Val(); n != 1 {
		t.Fatal("answered 201 but the body is missing")
	}
	mustStatus(t, h.doJSON("POST", "/api/vcon?ingress_lists=work", testVcon(u1)), http.StatusCreated)
	if got := h.rdb.LRange(ctx, "work", 0, -1).Val(); fmt.Sprint(got) != fmt.Sprint([]string{u1}) {
		t.Errorf("work = %v, want the uuid once", got)
	}
}

// TestLostExecRequestIsAnsweredTruthfully: the transaction never reached
// Redis. The API says it was not stored (503, retry), and the retry stores
// and queues it once.
func TestLostExecRequestIsAnsweredTruthfully(t *testing.T) {
	h, p := newProxiedHarness(t, nil)
	ctx := context.Background()

	p.fault.Store(loseExecRequest)
	rec := h.doJSON("POST", "/api/vcon?ingress_lists=work", testVcon(u1))
	if p.fault.Load() != noFault {
		t.Fatal("the fault was not injected")
	}
	mustStatus(t, rec, http.StatusServiceUnavailable)
	if rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), "not stored") {
		t.Errorf("answer %v %s", rec.Header(), rec.Body.String())
	}
	if n := h.rdb.Exists(ctx, "vcon:"+u1).Val(); n != 0 {
		t.Fatal("answered not stored but the body is there")
	}
	mustStatus(t, h.doJSON("POST", "/api/vcon?ingress_lists=work", testVcon(u1)), http.StatusCreated)
	if got := h.rdb.LRange(ctx, "work", 0, -1).Val(); fmt.Sprint(got) != fmt.Sprint([]string{u1}) {
		t.Errorf("work = %v, want the uuid once", got)
	}
}

// TestRepeatedPostQueuesOnceWhileWaiting pins the dedup rule: a uuid
// waiting on a list is not queued there again by a POST; once taken, or on
// another list, it is; explicit re-ingress always queues.
func TestRepeatedPostQueuesOnceWhileWaiting(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	post := func(lists string) {
		t.Helper()
		mustStatus(t, h.doJSON("POST", "/api/vcon?"+lists, testVcon(u1)), http.StatusCreated)
	}
	list := func(name string) string { return fmt.Sprint(h.rdb.LRange(ctx, name, 0, -1).Val()) }

	post("ingress_lists=a")
	post("ingress_lists=a&ingress_lists=b")
	if list("a") != "["+u1+"]" || list("b") != "["+u1+"]" {
		t.Fatalf("a = %s, b = %s", list("a"), list("b"))
	}
	h.rdb.LPop(ctx, "a") // a worker takes it
	post("ingress_lists=a")
	if list("a") != "["+u1+"]" {
		t.Errorf("after the worker took it, a re-POST did not queue it: a = %s", list("a"))
	}
	mustStatus(t, h.doJSON("POST", "/api/vcon/ingress?ingress_list=a", `["`+u1+`"]`), http.StatusNoContent)
	if list("a") != "["+u1+" "+u1+"]" {
		t.Errorf("explicit re-ingress: a = %s", list("a"))
	}
	// Other vCons are unaffected.
	mustStatus(t, h.doJSON("POST", "/api/vcon?ingress_lists=b", testVcon(u2)), http.StatusCreated)
	if list("b") != "["+u1+" "+u2+"]" {
		t.Errorf("b = %s", list("b"))
	}
}

// manyParties is a vCon with n parties, each with a tel, a mailto and a
// name: conserver would write 3n index keys.
func manyParties(uuid string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"vcon":"0.0.1","uuid":%q,"created_at":"2024-01-15T10:30:00Z","parties":[`, uuid)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"tel":"+1%09d","mailto":"p%d@example.com","name":"P%d"}`, i, i, i)
	}
	b.WriteString(`],"dialog":[],"analysis":[],"attachments":[]}`)
	return b.String()
}

// TestManyPartiesBoundIndexWrites: a 150,000-party vCon (once 450,001
// keys and a 500 after the client's read timeout, though written) is
// stored whole, answered 201, queued once, and indexes only its first
// MaxIndexedParties parties.
func TestManyPartiesBoundIndexWrites(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.MaxBodyBytes = 32 << 20 })
	ctx := context.Background()
	body := manyParties(u1, 150_000)

	start := time.Now()
	rec := h.doJSON("POST", "/api/vcon?ingress_lists=work", body)
	took := time.Since(start)
	mustStatus(t, rec, http.StatusCreated)
	keys := h.rdb.DBSize(ctx).Val()
	t.Logf("150,000 parties: %d keys, %v", keys, took)
	// body, vcons, the list, its queued marker, the write marker, 3 index keys per indexed party
	if max := int64(5 + 3*MaxIndexedParties); keys > max {
		t.Errorf("%d keys, want at most %d", keys, max)
	}
	if n := h.rdb.StrLen(ctx, "vcon:"+u1).Val(); n < int64(len(body))-100 {
		t.Errorf("body stored with %d bytes, sent %d", n, len(body))
	}
	if got := h.rdb.LRange(ctx, "work", 0, -1).Val(); len(got) != 1 {
		t.Errorf("work = %d entries", len(got))
	}
	first := decode[[]string](t, h.doJSON("GET", "/api/vcons/search?tel=%2B1000000000", ""))
	last := decode[[]string](t, h.doJSON("GET", fmt.Sprintf("/api/vcons/search?tel=%%2B1%09d", MaxIndexedParties-1), ""))
	past := decode[[]string](t, h.doJSON("GET", fmt.Sprintf("/api/vcons/search?tel=%%2B1%09d", MaxIndexedParties), ""))
	if len(first) != 1 || len(last) != 1 || len(past) != 0 {
		t.Errorf("search: first %v, last indexed %v, past the cap %v", first, last, past)
	}
	// DELETE removes what was indexed, in bounded work too.
	mustStatus(t, h.doJSON("DELETE", "/api/vcon/"+u1, ""), http.StatusNoContent)
	if n := h.rdb.Exists(ctx, "tel:+1000000000").Val(); n != 0 {
		t.Error("DELETE left the index entry")
	}
}

// TestQueuedBodyOutlivesItsBacklog: a body the API queues gets at least
// the queued retention, however short VCON_REDIS_EXPIRY is, so a backlog
// longer than that cannot expire it before a worker takes it; a body that
// is only stored keeps VCON_REDIS_EXPIRY. Queuing stored vCons by uuid
// extends their bodies the same way.
func TestQueuedBodyOutlivesItsBacklog(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.VconTTL, o.QueuedRetention = 2*time.Second, time.Hour })
	ctx := context.Background()
	queued, stored := "0190d6f0-1c2d-7a00-8000-00000000a001", "0190d6f0-1c2d-7a00-8000-00000000a002"
	mustStatus(t, h.doJSON("POST", "/api/vcon?ingress_lists=backlog", testVcon(queued)), http.StatusCreated)
	mustStatus(t, h.doJSON("POST", "/api/vcon", testVcon(stored)), http.StatusCreated)
	between := func(what, uuid string, lo, hi time.Duration) {
		t.Helper()
		if ttl := h.rdb.PTTL(ctx, vconstore.Key(uuid)).Val(); ttl < lo || ttl > hi {
			t.Errorf("%s: body TTL %s, want %s to %s", what, ttl, lo, hi)
		}
	}
	between("queued", queued, 59*time.Minute, time.Hour)
	between("stored only", stored, time.Second, 2*time.Second)

	// The backlog outlasts VCON_REDIS_EXPIRY: the queued body is there.
	time.Sleep(2500 * time.Millisecond)
	if n := h.rdb.Exists(ctx, vconstore.Key(queued)).Val(); n != 1 {
		t.Fatal("the queued body expired while it waited")
	}
	if n := h.rdb.Exists(ctx, vconstore.Key(stored)).Val(); n != 0 {
		t.Error("the stored-only body outlived VCON_REDIS_EXPIRY")
	}

	// Queued later by uuid: extended too.
	late := "0190d6f0-1c2d-7a00-8000-00000000a003"
	mustStatus(t, h.doJSON("POST", "/api/vcon", testVcon(late)), http.StatusCreated)
	mustStatus(t, h.doJSON("POST", "/api/vcon/ingress?ingress_list=backlog", `["`+late+`"]`), http.StatusNoContent)
	between("queued by uuid", late, 59*time.Minute, time.Hour)
}
