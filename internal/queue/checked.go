package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"github.com/redis/go-redis/v9"
)

// A vCon's outcome (body, Redis storages, egress pushes, the DLQ entry, the
// in-flight removal) must apply whole or not at all. MULTI/EXEC does not
// give that: a command that fails at run time (WRONGTYPE on an egress list
// named like a key of another type) fails alone while the others, the
// in-flight removal included, still apply, and the vCon is in no list at
// all. ExecChecked runs the same commands as one Lua script that first
// checks the type of every key it will write and writes nothing when one
// is wrong; a command that still fails stops the script before the
// commands after it, and the in-flight removal always comes last.

// OutcomeError is a deterministic refusal of an outcome: sending it again
// fails the same way. Nothing of it was applied when Key names a key of
// the wrong type (Have is set); after another command error the commands
// before it may have run (never the in-flight removal queued after it).
type OutcomeError struct {
	Command string // upper case, e.g. RPUSH
	Key     string
	Have    string // the key's type, for a type mismatch
	Want    string // the type the command needs
	Err     string // the server's error, for other failures
}

func (e *OutcomeError) Error() string {
	if e.Have != "" {
		return fmt.Sprintf("%s %s: the key holds a %s, not a %s; nothing was written", e.Command, e.Key, e.Have, e.Want)
	}
	return fmt.Sprintf("%s %s: %s", e.Command, e.Key, e.Err)
}

// keyTypes is the type each write command of an outcome needs its keys to
// have (or not exist). A SET replaces a key of any type: refusing one of
// another type keeps an outcome from clobbering a key it does not own.
// Commands absent here (EXPIRE, PEXPIRE) work on any type.
var keyTypes = map[string]string{
	"rpush": "list", "lpush": "list", "lrem": "list", "lmove": "list", "lpop": "list",
	"hset": "hash", "hdel": "hash",
	"zadd":     "zset",
	"set":      "string",
	"json.set": "ReJSON-RL",
}

// twoKeyCommands name their source and destination keys first.
var twoKeyCommands = map[string]bool{"lmove": true}

// checkedScript: ARGV[1] is the number of commands, ARGV[2] the repeated
// arguments (see sameArgs), then each command as its argument count
// followed by its arguments (name first). It returns {'ok', replies} or
// {'type', index, key, have, want} or {'error', index, message}. KEYS
// lists every key for cluster routing only.
var checkedScript = redis.NewScript(checkedSource)

// checkedSource is checkedScript's text, sent with EVAL when the server
// does not have it cached yet.
var checkedSource = luaTable("want", keyTypes) + luaTable("twokeys", twoKeyCommands) + `
for at, from in string.gmatch(ARGV[2], '(%d+)=(%d+)') do
  ARGV[tonumber(at)] = ARGV[tonumber(from)]
end
local cmds, pos = {}, 3
for i = 1, tonumber(ARGV[1]) do
  local argc = tonumber(ARGV[pos])
  cmds[i] = {unpack(ARGV, pos + 1, pos + argc)}
  pos = pos + argc + 1
end
for i, c in ipairs(cmds) do
  local name = string.lower(c[1])
  local w = want[name]
  if w then
    for k = 2, twokeys[name] and 3 or 2 do
      local have = redis.call('TYPE', c[k]).ok
      if have ~= 'none' and have ~= w then
        return {'type', i, c[k], have, w}
      end
    end
  end
end
local out = {}
for i, c in ipairs(cmds) do
  local r = redis.pcall(unpack(c))
  if type(r) == 'table' and r.err then
    return {'error', i, r.err}
  end
  if type(r) == 'table' and r.ok then
    r = r.ok
  end
  out[i] = r
end
return {'ok', out}
`

// ExecChecked runs the commands queued on pipes (plain pipelines, not yet
// sent), in order, so that they apply whole or not at all, and sets each
// command's reply. It returns an *OutcomeError for a refusal that would
// repeat (wrong key type, a command error), any other error for a failed
// round trip (which may be retried). A command's redis.Nil reply (an LMOVE
// from an empty list) is not a failure.
//
// On a cluster the keys of one outcome live in several slots, which no
// script spans: there the types are checked in one round trip and the
// commands sent after it, one pipe per round trip. A cluster pipeline sends
// to every node at once, in no order between nodes; sending a pipe only
// once the one before it is written keeps a push (the second pipe) from
// landing before the body it points at (the first). A key changing type
// after the check is the only way such an outcome applies in part.
func ExecChecked(ctx context.Context, rdb redis.UniversalClient, pipes ...redis.Pipeliner) error {
	var cmds []redis.Cmder
	for _, pipe := range pipes {
		if g := pipe.Cmds(); len(g) > 0 {
			if cmds == nil {
				cmds = g // one pipe with commands: no copy
			} else {
				cmds = append(slices.Clip(cmds), g...)
			}
		}
	}
	if len(cmds) == 0 {
		return nil
	}
	if IsCluster(rdb) {
		groups := make([][]redis.Cmder, 0, len(pipes))
		for _, pipe := range pipes {
			if g := pipe.Cmds(); len(g) > 0 {
				groups = append(groups, g)
			}
		}
		return execCheckedCluster(ctx, rdb, cmds, groups)
	}
	res, err := runChecked(ctx, rdb, cmds)
	if err != nil {
		// No reply: whether the script ran is unknown (a connection cut
		// after Redis applied it looks the same), and no command may look
		// as if it had answered. A queued take left with its zero value
		// read as a successor with uuid "" (seen on real pods across a
		// Redis restart: three dead letters for the empty uuid).
		failFrom(cmds, 0, err)
		return err
	}
	if len(res) < 2 {
		return fmt.Errorf("outcome script: unexpected reply %v", res)
	}
	switch status, _ := res[0].(string); status {
	case "ok":
		replies, _ := res[1].([]any)
		for i, c := range cmds {
			var v any
			if i < len(replies) {
				v = replies[i]
			}
			setReply(c, v)
		}
		return nil
	case "type":
		i := index(res[1])
		e := &OutcomeError{Command: commandName(cmds, i), Key: str(res, 2), Have: str(res, 3), Want: str(res, 4)}
		failFrom(cmds, 0, e)
		return e
	case "error":
		i := index(res[1])
		e := &OutcomeError{Command: commandName(cmds, i), Key: keyOf(cmds, i), Err: str(res, 2)}
		failFrom(cmds, i-1, e)
		return e
	default:
		return fmt.Errorf("outcome script: unexpected status %q", status)
	}
}

// runChecked sends cmds as one run of checkedScript: EVALSHA, or EVAL
// when the server has not cached the script yet (as redis.Script.Run).
// The command is built in one slice, sized once, from the commands' own
// argument values: through Script.Run, the arguments were copied twice
// and every key boxed again, about fifteen allocations per outcome.
func runChecked(ctx context.Context, rdb redis.UniversalClient, cmds []redis.Cmder) ([]any, error) {
	// Each command's key count, found once (an outcome has a dozen
	// commands at most; more take a slice of their own).
	var counts [16]int
	keys := counts[:0]
	if len(cmds) > len(counts) {
		keys = make([]int, 0, len(cmds))
	}
	nkeys, nargs := 0, 0
	for _, c := range cmds {
		args := c.Args()
		n := keyCount(args)
		keys = append(keys, n)
		nkeys += n
		nargs += 1 + len(args)
	}
	// EVALSHA sha numkeys KEYS... ARGV[1]=len(cmds), ARGV[2]=the repeated
	// arguments, then each command's argument count and arguments.
	argv := make([]any, 0, 3+nkeys+2+nargs)
	argv = append(argv, "evalsha", checkedScript.Hash(), nkeys)
	for i, c := range cmds {
		args := c.Args()
		argv = append(argv, args[1:1+keys[i]]...)
	}
	argvBase := len(argv) // ARGV[1] is argv[argvBase]
	argv = append(argv, len(cmds), "")
	var same sameArgs
	for _, c := range cmds {
		args := c.Args()
		argv = append(argv, len(args))
		for _, a := range args {
			argv = append(argv, same.arg(a, len(argv)-argvBase+1))
		}
	}
	argv[argvBase+1] = same.refs()
	run := func() *redis.Cmd {
		cmd := redis.NewCmd(ctx, argv...)
		if nkeys > 0 {
			cmd.SetFirstKeyPos(3) // routes by the first key, as Script.Run does
		}
		_ = rdb.Process(ctx, cmd)
		return cmd
	}
	cmd := run()
	if err := cmd.Err(); err != nil && (errors.Is(err, redis.ErrNoScript) || redis.HasErrorPrefix(err, "NOSCRIPT")) {
		argv[0], argv[1] = "eval", checkedSource
		cmd = run()
	}
	return cmd.Slice()
}

// sameArgMin is the size from which an argument repeated in one outcome
// is sent once. Every argument of a script becomes a Lua string before
// the script runs, at about 1.3 ns a byte on redis-server (measured with
// Redis 7.0: EVALSHA with one 5 KB argument 7.1 µs, with two 14.2 µs,
// with small ones 0.9 µs), and an outcome with a Redis storage carries
// the document twice: the body and the storage's copy.
const sameArgMin = 512

// sameArgs finds the large arguments of an outcome that repeat an
// earlier one, byte for byte: each is sent as an empty string and named
// in ARGV[2] as "at=from" (ARGV positions), which the script resolves
// before it reads the commands.
type sameArgs struct {
	seen [4]struct {
		at  int
		val []byte
	}
	n    int
	list []byte // ARGV[2]
}

// arg is what to send for a, the argument at ARGV position at.
func (s *sameArgs) arg(a any, at int) any {
	b := argBytes(a)
	if len(b) < sameArgMin {
		return a
	}
	for _, prev := range s.seen[:s.n] {
		if len(prev.val) == len(b) && (unsafe.SliceData(prev.val) == unsafe.SliceData(b) || bytes.Equal(prev.val, b)) {
			if len(s.list) > 0 {
				s.list = append(s.list, ',')
			}
			s.list = strconv.AppendInt(s.list, int64(at), 10)
			s.list = append(s.list, '=')
			s.list = strconv.AppendInt(s.list, int64(prev.at), 10)
			return ""
		}
	}
	if s.n < len(s.seen) {
		s.seen[s.n].at, s.seen[s.n].val = at, b
		s.n++
	}
	return a
}

// refs is ARGV[2]: the repeated arguments, "" when none.
func (s *sameArgs) refs() any {
	if len(s.list) == 0 {
		return ""
	}
	return s.list
}

// argBytes is a string or []byte argument's bytes without a copy, nil
// for any other type (numbers, durations: never large).
func argBytes(a any) []byte {
	switch v := a.(type) {
	case []byte:
		return v
	case string:
		return unsafe.Slice(unsafe.StringData(v), len(v))
	}
	return nil
}

// keyCount is how many keys a command names (its first argument, or the
// first two), as appendKeys finds them.
func keyCount(args []any) int {
	switch {
	case len(args) < 2:
		return 0
	case len(args) > 2 && isTwoKey(args[0]):
		return 2
	}
	return 1
}

// isTwoKey is twoKeyCommands[commandKey(name)] without building the
// lower-case name: the names of keyCmd's commands (SET, PEXPIRE,
// JSON.SET) are upper case, and lowering each one allocated, twice per
// command of every outcome. A map lookup by a converted byte slice does
// not allocate. Names that are not short ASCII take commandKey's way.
func isTwoKey(name any) bool {
	s, ok := name.(string)
	var buf [32]byte
	if !ok || len(s) > len(buf) {
		return twoKeyCommands[commandKey(name)]
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 0x80:
			return twoKeyCommands[commandKey(name)]
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return twoKeyCommands[string(buf[:len(s)])]
}

// commandKey is a command's name as keyTypes and twoKeyCommands spell it,
// lower case; go-redis's own commands already are, so most names cost
// no conversion.
func commandKey(name any) string {
	s, ok := name.(string)
	if !ok {
		return strings.ToLower(fmt.Sprint(name))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// execCheckedCluster: cmds are all of groups' commands, in order.
func execCheckedCluster(ctx context.Context, rdb redis.UniversalClient, cmds []redis.Cmder, groups [][]redis.Cmder) error {
	type check struct {
		cmd  int
		key  string
		want string
		typ  *redis.StatusCmd
	}
	var checks []check
	probe := rdb.Pipeline()
	for i, c := range cmds {
		args := c.Args()
		want, ok := keyTypes[commandKey(args[0])]
		if !ok {
			continue
		}
		for _, k := range appendKeys(nil, args) {
			checks = append(checks, check{cmd: i, key: k, want: want, typ: probe.Type(ctx, k)})
		}
	}
	if len(checks) > 0 {
		if _, err := probe.Exec(ctx); err != nil {
			failFrom(cmds, 0, err)
			return err
		}
		for _, ch := range checks {
			if have := ch.typ.Val(); have != "none" && have != ch.want {
				e := &OutcomeError{Command: commandName(cmds, ch.cmd+1), Key: ch.key, Have: have, Want: ch.want}
				failFrom(cmds, 0, e)
				return e
			}
		}
	}
	sent := 0
	for _, g := range groups {
		send := rdb.Pipeline()
		for _, c := range g {
			_ = send.Process(ctx, c)
		}
		_, _ = send.Exec(ctx)
		for i, c := range g {
			err := c.Err()
			if err == nil || errors.Is(err, redis.Nil) {
				continue
			}
			// The groups after this one were not sent.
			failFrom(cmds, sent+len(g), err)
			var rerr redis.Error
			if errors.As(err, &rerr) {
				return &OutcomeError{Command: commandName(cmds, sent+i+1), Key: keyOf(cmds, sent+i+1), Err: err.Error()}
			}
			return err
		}
		sent += len(g)
	}
	return nil
}

// luaTable writes m as a Lua table literal, so the script and the cluster
// path read the same rules.
func luaTable[V string | bool](name string, m map[string]V) string {
	var b strings.Builder
	fmt.Fprintf(&b, "local %s = {", name)
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, "[%q]=%#v, ", k, m[k])
	}
	b.WriteString("}\n")
	return b.String()
}

// appendKeys adds the keys a command names (its first argument, or two).
func appendKeys(keys []string, args []any) []string {
	if len(args) < 2 {
		return keys
	}
	for _, k := range args[1 : 1+keyCount(args)] {
		keys = append(keys, argString(k))
	}
	return keys
}

// argString is an argument as Redis receives it.
func argString(a any) string {
	switch a := a.(type) {
	case string:
		return a
	case []byte:
		return string(a)
	}
	return fmt.Sprint(a)
}

// setReply gives a command the reply the script returned for it.
func setReply(c redis.Cmder, v any) {
	switch c := c.(type) {
	case *redis.Cmd:
		if v == nil {
			c.SetErr(redis.Nil)
		} else {
			c.SetVal(v)
		}
	case *redis.StringCmd:
		if s, ok := v.(string); ok {
			c.SetVal(s)
		} else {
			c.SetErr(redis.Nil)
		}
	case *redis.StatusCmd:
		s, _ := v.(string)
		c.SetVal(s)
	case *redis.IntCmd:
		n, _ := v.(int64)
		c.SetVal(n)
	case *redis.BoolCmd:
		n, _ := v.(int64)
		c.SetVal(n == 1)
	}
}

// failFrom marks commands from index from (0-based) on as failed with err:
// none of them ran.
func failFrom(cmds []redis.Cmder, from int, err error) {
	for _, c := range cmds[max(from, 0):] {
		c.SetErr(err)
	}
}

// index reads a 1-based command index from the script's reply.
func index(v any) int {
	n, _ := v.(int64)
	return int(n)
}

func str(res []any, i int) string {
	if i < len(res) {
		s, _ := res[i].(string)
		return s
	}
	return ""
}

func commandName(cmds []redis.Cmder, i int) string {
	if i < 1 || i > len(cmds) {
		return ""
	}
	return strings.ToUpper(fmt.Sprint(cmds[i-1].Args()[0]))
}

func keyOf(cmds []redis.Cmder, i int) string {
	if i < 1 || i > len(cmds) {
		return ""
	}
	if keys := appendKeys(nil, cmds[i-1].Args()); len(keys) > 0 {
		return keys[0]
	}
	return ""
}
