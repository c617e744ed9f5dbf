package vconstore

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeRedis is a tiny RESP2 server that answers the commands this package
// sends the way redis-stack (Redis with the RedisJSON module) answers them,
// and records every command. It exists because the RedisJSON path cannot run
// against Debian's redis-server, which has no JSON module. It answers HELLO
// with "unknown command" so that go-redis falls back to RESP2.
type fakeRedis struct {
	hasJSON bool
	addr    string

	mu   sync.Mutex
	keys map[string]*fakeEntry
	log  []string
}

type fakeEntry struct {
	typ      string // "string", "ReJSON-RL", "list"
	val      string
	expireAt time.Time
}

func startFakeRedis(t *testing.T, hasJSON bool) *fakeRedis {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRedis{hasJSON: hasJSON, addr: l.Addr().String(), keys: map[string]*fakeEntry{}}
	var wg sync.WaitGroup
	var conns []net.Conn
	var connsMu sync.Mutex
	t.Cleanup(func() {
		_ = l.Close()
		connsMu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		connsMu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			connsMu.Lock()
			conns = append(conns, c)
			connsMu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); f.serve(c) }()
		}
	}()
	return f
}

// commands returns the recorded commands, without connection set-up.
func (f *fakeRedis) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.log...)
}

func (f *fakeRedis) resetLog() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = nil
}

func (f *fakeRedis) set(key, typ, val string, ttl time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := &fakeEntry{typ: typ, val: val}
	if ttl > 0 {
		e.expireAt = time.Now().Add(ttl)
	}
	f.keys[key] = e
}

func (f *fakeRedis) entry(key string) *fakeEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.lookup(key)
	if e == nil {
		return nil
	}
	c := *e
	return &c
}

func (f *fakeRedis) lookup(key string) *fakeEntry {
	e := f.keys[key]
	if e != nil && !e.expireAt.IsZero() && time.Now().After(e.expireAt) {
		delete(f.keys, key)
		return nil
	}
	return e
}

func (f *fakeRedis) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	var queued [][]string
	inMulti := false
	for {
		args, err := readCommand(r)
		if err != nil {
			return
		}
		name := strings.ToUpper(args[0])
		f.mu.Lock()
		if name != "HELLO" && name != "CLIENT" {
			// Upper-cased because go-redis sends its typed commands in
			// lower case and Do commands as written.
			f.log = append(f.log, strings.Join(append([]string{name}, args[1:]...), " "))
		}
		var reply string
		switch {
		case name == "MULTI":
			inMulti, queued, reply = true, nil, "+OK\r\n"
		case name == "EXEC":
			reply = fmt.Sprintf("*%d\r\n", len(queued))
			for _, q := range queued {
				reply += f.do(q)
			}
			inMulti, queued = false, nil
		case inMulti:
			queued, reply = append(queued, args), "+QUEUED\r\n"
		default:
			reply = f.do(args)
		}
		f.mu.Unlock()
		if _, err := io.WriteString(c, reply); err != nil {
			return
		}
	}
}

func readCommand(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(line, "*") {
		return nil, fmt.Errorf("not an array: %q", line)
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil || n < 1 {
		return nil, fmt.Errorf("bad array header %q", line)
	}
	args := make([]string, n)
	for i := range args {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		size, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "$")))
		if err != nil {
			return nil, fmt.Errorf("bad bulk header %q", line)
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		args[i] = string(buf[:size])
	}
	return args, nil
}

func bulk(s string) string { return fmt.Sprintf("$%d\r\n%s\r\n", len(s), s) }

const (
	nilReply       = "$-1\r\n"
	wrongTypeReply = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
)

// do answers one command; f.mu is held.
func (f *fakeRedis) do(args []string) string {
	name := strings.ToUpper(args[0])
	unknown := fmt.Sprintf("-ERR unknown command '%s', with args beginning with: \r\n", args[0])
	if strings.HasPrefix(name, "JSON.") && !f.hasJSON {
		return unknown
	}
	key := ""
	if len(args) > 1 {
		key = args[1]
	}
	switch name {
	case "PING":
		return "+PONG\r\n"
	case "COMMAND":
		if len(args) == 3 && strings.EqualFold(args[1], "INFO") {
			if f.hasJSON && strings.HasPrefix(strings.ToUpper(args[2]), "JSON.") {
				return "*1\r\n*6\r\n" + bulk(strings.ToLower(args[2])) + ":-4\r\n*2\r\n+write\r\n+denyoom\r\n:1\r\n:1\r\n:1\r\n"
			}
			return "*1\r\n*-1\r\n"
		}
	case "MODULE":
		if f.hasJSON {
			return "*1\r\n*4\r\n" + bulk("name") + bulk("ReJSON") + bulk("ver") + ":20609\r\n"
		}
		return "*0\r\n"
	case "TYPE":
		if e := f.lookup(key); e != nil {
			return "+" + e.typ + "\r\n"
		}
		return "+none\r\n"
	case "JSON.GET":
		e := f.lookup(key)
		switch {
		case e == nil:
			return nilReply
		case e.typ != "ReJSON-RL":
			return wrongTypeReply
		}
		return bulk(e.val)
	case "JSON.SET":
		if len(args) != 4 || (args[2] != "$" && args[2] != ".") {
			return "-ERR only root JSON.SET is faked\r\n"
		}
		if e := f.lookup(key); e != nil && e.typ != "ReJSON-RL" {
			return wrongTypeReply
		}
		// A root JSON.SET replaces the key and, in the module versions
		// this package guards against, drops its TTL.
		f.keys[key] = &fakeEntry{typ: "ReJSON-RL", val: args[3]}
		return "+OK\r\n"
	case "GET":
		e := f.lookup(key)
		switch {
		case e == nil:
			return nilReply
		case e.typ != "string":
			return wrongTypeReply
		}
		return bulk(e.val)
	case "SET":
		e := &fakeEntry{typ: "string", val: args[2]}
		for i := 3; i < len(args); i++ {
			switch strings.ToUpper(args[i]) {
			case "KEEPTTL":
				if old := f.lookup(key); old != nil {
					e.expireAt = old.expireAt
				}
			case "PX":
				ms, _ := strconv.Atoi(args[i+1])
				e.expireAt = time.Now().Add(time.Duration(ms) * time.Millisecond)
				i++
			}
		}
		f.keys[key] = e
		return "+OK\r\n"
	case "PTTL":
		e := f.lookup(key)
		switch {
		case e == nil:
			return ":-2\r\n"
		case e.expireAt.IsZero():
			return ":-1\r\n"
		}
		return fmt.Sprintf(":%d\r\n", time.Until(e.expireAt).Milliseconds())
	case "PEXPIRE", "PEXPIREAT":
		e := f.lookup(key)
		if e == nil {
			return ":0\r\n"
		}
		ms, _ := strconv.ParseInt(args[2], 10, 64)
		if name == "PEXPIRE" {
			e.expireAt = time.Now().Add(time.Duration(ms) * time.Millisecond)
		} else {
			e.expireAt = time.UnixMilli(ms)
		}
		return ":1\r\n"
	case "DEL":
		if f.lookup(key) == nil {
			return ":0\r\n"
		}
		delete(f.keys, key)
		return ":1\r\n"
	case "RPUSH":
		return ":1\r\n"
	}
	return unknown
}
