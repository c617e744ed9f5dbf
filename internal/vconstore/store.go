// Package vconstore is the one codec for vCon bodies in Redis, shared by the
// worker and the HTTP API. A body lives at vcon:{uuid}, either as a RedisJSON
// document (what conserver writes; its compose runs redis-stack) or as a
// plain string (for servers without the JSON module, e.g. Debian's
// redis-server). Reads accept both; rewrites keep the type and the TTL the
// key already has, so a conserver worker or API sharing the Redis never
// meets a WRONGTYPE. Every operation is one round trip, and the Queue*
// variants put the body commands into a caller's pipeline so they share the
// caller's round trip.
package vconstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"
)

// EnvBodyFormat is the environment variable the worker and the API read the
// format of new keys from ("auto", "json" or "string").
const EnvBodyFormat = "VCON_BODY_FORMAT"

// keyPrefix begins every body's key.
const keyPrefix = "vcon:"

// Key is the Redis key of a vCon body.
func Key(uuid string) string { return keyPrefix + uuid }

// keyArg is the key of uuid's body as a command argument: the one prev
// was read from (boxed once by QueueGet) when prev is that body, else
// built and boxed anew. A vCon's read, extension and rewrite name one
// key; building and boxing it for each command was two allocations
// apiece.
func keyArg(uuid string, prev Body) any {
	if k, ok := prev.key.(string); ok && len(k) == len(keyPrefix)+len(uuid) && k[len(keyPrefix):] == uuid {
		return prev.key
	}
	return Key(uuid)
}

// Format is how a body is stored.
type Format int

const (
	// FormatNone: no body was read (the key did not exist). Writing with a
	// previous Body of FormatNone creates the key in the new-key format.
	FormatNone Format = iota
	FormatString
	FormatJSON
)

func (f Format) String() string {
	switch f {
	case FormatString:
		return "string"
	case FormatJSON:
		return "json"
	}
	return "none"
}

// NewKeyFormat chooses the format of keys this process creates.
type NewKeyFormat string

const (
	// NewKeyAuto writes RedisJSON when the server has the JSON module, plain
	// strings otherwise; the server is asked once, on the first create.
	NewKeyAuto   NewKeyFormat = "auto"
	NewKeyJSON   NewKeyFormat = "json"
	NewKeyString NewKeyFormat = "string"
)

// ParseNewKeyFormat reads a VCON_BODY_FORMAT value; "" means auto.
func ParseNewKeyFormat(s string) (NewKeyFormat, error) {
	switch f := NewKeyFormat(strings.ToLower(strings.TrimSpace(s))); f {
	case "":
		return NewKeyAuto, nil
	case NewKeyAuto, NewKeyJSON, NewKeyString:
		return f, nil
	}
	return "", fmt.Errorf("%s=%q: want auto, json or string", EnvBodyFormat, s)
}

// DefaultMaxBodyBytes is the worker's default bound on a body it reads
// (VCON_MAX_BODY_BYTES): above the API's request limit, so links may grow
// a document, and far below what would take a pod sized for ordinary
// traffic into the OOM killer once decoded.
const DefaultMaxBodyBytes = 32 << 20

// Options configure a Store.
type Options struct {
	// NewKeyFormat is the format of keys that do not exist yet; "" is auto.
	NewKeyFormat NewKeyFormat
	// MaxBodyBytes bounds what QueueGet reads of a body; 0 means no bound.
	// A string body is read with GETRANGE up to one byte past the bound,
	// so an oversized one costs that much memory, never its whole size.
	// RedisJSON has no bounded read: a JSON body is measured once read.
	MaxBodyBytes int64
}

// OptionsFromEnv reads Options from the environment (VCON_BODY_FORMAT).
func OptionsFromEnv() (Options, error) {
	f, err := ParseNewKeyFormat(os.Getenv(EnvBodyFormat))
	return Options{NewKeyFormat: f}, err
}

var (
	// ErrNotFound: there is no body at vcon:{uuid}.
	ErrNotFound = errors.New("vcon not found")
	// ErrTooLarge: the body is over Options.MaxBodyBytes and was not read
	// whole.
	ErrTooLarge = errors.New("body is over the size limit")
	// ErrWrongType: vcon:{uuid} holds something else than a string or a
	// RedisJSON document (e.g. a list), or a RedisJSON document on a server
	// whose JSON module is gone.
	ErrWrongType = errors.New("key holds neither a string nor a RedisJSON document")
)

// Body is a vCon body as read from Redis, with what a rewrite needs to keep
// the key's type and TTL.
type Body struct {
	// Data is the document's JSON text. It may share memory with the Redis
	// reply's string: read it, never write into it.
	Data   []byte
	Format Format
	// PTTL is the time to live seen at read time; negative when the key has
	// none (or does not exist).
	PTTL time.Duration
	// ReadAt is when the read was queued; with PTTL it tells the TTL left at
	// write time. It carries Go's monotonic clock, so the remaining TTL does
	// not depend on the Redis server's clock agreeing with ours.
	ReadAt time.Time
	// key is the key the read named, as its commands' argument (keyArg);
	// nil when no read named one.
	key any
}

// ttlLeft is the TTL the key has now, if it had one when read.
func (b Body) ttlLeft() (time.Duration, bool) {
	if b.PTTL < 0 {
		return 0, false
	}
	left := b.PTTL - time.Since(b.ReadAt)
	if left < time.Millisecond {
		// It would have expired by now; let it expire as it would have,
		// rather than leave it without TTL.
		left = time.Millisecond
	}
	return left, true
}

// Store reads and writes vCon bodies.
type Store struct {
	client redis.UniversalClient
	opts   Options

	mu       sync.Mutex
	detected Format // new-key format found by asking the server; FormatNone until asked
}

// New returns a Store on any go-redis client (standalone, sentinel,
// cluster).
func New(client redis.UniversalClient, opts Options) *Store {
	if opts.NewKeyFormat == "" {
		opts.NewKeyFormat = NewKeyAuto
	}
	return &Store{client: client, opts: opts}
}

// keyCmd builds a command whose key is its second word. go-redis finds key
// positions from COMMAND INFO, which lacks module commands on a server
// without the module; fixing the position keeps cluster routing right.
func keyCmd(ctx context.Context, args ...any) *redis.Cmd {
	cmd := redis.NewCmd(ctx, args...)
	cmd.SetFirstKeyPos(1)
	return cmd
}

// PendingBody is a body read queued in a pipeline; Result decodes it after
// the pipeline has run. MGet leaves pttl nil: it has no rewrite to serve.
type PendingBody struct {
	key                string
	boxed              any // key, as the commands' argument
	jsonGet, get, pttl *redis.Cmd
	queuedAt           time.Time
	// maxBytes > 0: get is a GETRANGE of at most maxBytes+1 bytes.
	maxBytes int64
}

// QueueGet queues the read of a body into pipe: PTTL, JSON.GET and GET of
// the key, which needs no knowledge of its type. On every key one of the
// last two fails by design (WRONGTYPE, or "unknown command" without the
// JSON module, or nil for a missing key), so pipe.Exec reports an error for
// nearly every read: run the pipeline with ExecIgnoringBodyErrors, or
// ignore Exec's error and check each of your own commands.
func (s *Store) QueueGet(ctx context.Context, pipe redis.Pipeliner, uuid string) *PendingBody {
	key := Key(uuid)
	boxed := any(key) // one interface value for the three commands, not three
	p := &PendingBody{
		key:      key,
		boxed:    boxed,
		jsonGet:  keyCmd(ctx, "JSON.GET", boxed),
		pttl:     keyCmd(ctx, "PTTL", boxed),
		queuedAt: time.Now(),
		maxBytes: s.opts.MaxBodyBytes,
	}
	if p.maxBytes > 0 {
		// Same reply as GET for a string, WRONGTYPE for other types; a
		// missing key reads as "" (PTTL -2 tells it apart).
		p.get = keyCmd(ctx, "GETRANGE", boxed, 0, p.maxBytes)
	} else {
		p.get = keyCmd(ctx, "GET", boxed)
	}
	// PTTL first: go-redis reports a pipeline's first reply as its error
	// and runs an error it was given through its retry rules (a dozen
	// errors.As, two dozen allocations). The probe that fails by design,
	// JSON.GET without the module, first, did that on every read.
	_ = pipe.Process(ctx, p.pttl)
	_ = pipe.Process(ctx, p.jsonGet)
	_ = pipe.Process(ctx, p.get)
	return p
}

// Result decodes the read. A missing key gives ErrNotFound with a Body of
// FormatNone, which Put and QueuePut accept as "create".
func (p *PendingBody) Result() (Body, error) {
	body := Body{PTTL: -1, ReadAt: p.queuedAt, key: p.boxed}
	missing := false
	if p.pttl != nil {
		ms, err := p.pttl.Int64()
		if err == nil && ms >= 0 {
			body.PTTL = time.Duration(ms) * time.Millisecond
		}
		missing = err == nil && ms == -2
	}
	jsonErr, getErr := p.jsonGet.Err(), p.get.Err()
	switch {
	case jsonErr == nil:
		body.Format, body.Data = FormatJSON, textOf(p.jsonGet)
	case getErr == nil && p.maxBytes > 0 && missing && len(textOf(p.get)) == 0:
		return Body{PTTL: -1, ReadAt: p.queuedAt}, fmt.Errorf("%s: %w", p.key, ErrNotFound)
	case getErr == nil:
		body.Format, body.Data = FormatString, textOf(p.get)
	case errors.Is(getErr, redis.Nil):
		// GET answers nil only when the key does not exist.
		body.PTTL = -1
		return body, fmt.Errorf("%s: %w", p.key, ErrNotFound)
	case isWrongType(getErr) && isExpectedBodyErr(jsonErr):
		return body, fmt.Errorf("%s: %w", p.key, ErrWrongType)
	case !isExpectedBodyErr(jsonErr):
		return body, fmt.Errorf("read %s: %w", p.key, jsonErr)
	default:
		return body, fmt.Errorf("read %s: %w", p.key, getErr)
	}
	if body.Data == nil {
		// JSON.GET of a missing key answers nil without error on some
		// module versions; GET then answered nil too.
		return Body{PTTL: -1, ReadAt: p.queuedAt}, fmt.Errorf("%s: %w", p.key, ErrNotFound)
	}
	if p.maxBytes > 0 && int64(len(body.Data)) > p.maxBytes {
		return Body{Format: body.Format, PTTL: body.PTTL, ReadAt: p.queuedAt}, fmt.Errorf("%s: %w of %d bytes", p.key, ErrTooLarge, p.maxBytes)
	}
	return body, nil
}

func (p *PendingBody) owns(c redis.Cmder) bool {
	return c == p.jsonGet || c == p.get || (p.pttl != nil && c == p.pttl)
}

// textOf is a reply's text. A string reply is returned without a copy: the
// bytes share the string's memory, so a Body's Data is read-only (nothing
// writes into it; Parse only reads). A copy of every document read was one
// of the worker's largest costs per vCon.
func textOf(c *redis.Cmd) []byte {
	switch v := c.Val().(type) {
	case string:
		if v == "" {
			return []byte{}
		}
		return unsafe.Slice(unsafe.StringData(v), len(v))
	case []byte:
		return v
	}
	return nil
}

// ExecIgnoringBodyErrors runs pipe and returns its commands and the first
// error of a command that is not one of pending's probes failing by design
// (nil, WRONGTYPE, unknown command). Each PendingBody's Result still reports
// what its read found.
func ExecIgnoringBodyErrors(ctx context.Context, pipe redis.Pipeliner, pending ...*PendingBody) ([]redis.Cmder, error) {
	cmds, _ := pipe.Exec(ctx)
	for _, c := range cmds {
		err := c.Err()
		if err == nil {
			continue
		}
		probe := false
		for _, p := range pending {
			if p != nil && p.owns(c) {
				probe = true
				break
			}
		}
		if probe && isExpectedBodyErr(err) {
			continue
		}
		return cmds, err
	}
	return cmds, nil
}

func isRedisError(err error, match func(string) bool) bool {
	var re redis.Error
	return errors.As(err, &re) && match(err.Error())
}

func isWrongType(err error) bool {
	return isRedisError(err, func(s string) bool { return strings.HasPrefix(s, "WRONGTYPE") })
}

func isUnknownCommand(err error) bool {
	return isRedisError(err, func(s string) bool { return strings.Contains(strings.ToLower(s), "unknown command") })
}

func isExpectedBodyErr(err error) bool {
	return err == nil || errors.Is(err, redis.Nil) || isWrongType(err) || isUnknownCommand(err)
}

// Get reads a body in one round trip.
func (s *Store) Get(ctx context.Context, uuid string) (Body, error) {
	pipe := s.client.Pipeline()
	p := s.QueueGet(ctx, pipe, uuid)
	if _, err := ExecIgnoringBodyErrors(ctx, pipe, p); err != nil {
		return Body{}, fmt.Errorf("read %s: %w", Key(uuid), err)
	}
	return p.Result()
}

// QueuePut queues the rewrite of a body read as prev: same format, same TTL
// (what is left of it). A RedisJSON rewrite is JSON.SET followed by PEXPIRE
// when the key had a TTL, because a root JSON.SET may drop it; in a plain
// pipeline the two are not atomic, Put wraps them in MULTI/EXEC. A string
// rewrite is SET ... KEEPTTL. With prev of FormatNone the key is created in
// the new-key format without TTL (see QueueCreate for one); only that case
// may need a round trip, once per Store, to learn whether the server has
// the JSON module.
func (s *Store) QueuePut(ctx context.Context, pipe redis.Pipeliner, uuid string, data []byte, prev Body) error {
	if prev.Format == FormatNone {
		return s.QueueCreate(ctx, pipe, uuid, data, 0)
	}
	key := keyArg(uuid, prev)
	if prev.Format == FormatString {
		_ = pipe.Process(ctx, keyCmd(ctx, "SET", key, data, "KEEPTTL"))
		return nil
	}
	_ = pipe.Process(ctx, keyCmd(ctx, "JSON.SET", key, "$", data))
	if left, ok := prev.ttlLeft(); ok {
		_ = pipe.Process(ctx, keyCmd(ctx, "PEXPIRE", key, left.Milliseconds()))
	}
	return nil
}

// Put rewrites a body read as prev (see QueuePut), in one round trip.
func (s *Store) Put(ctx context.Context, uuid string, data []byte, prev Body) error {
	if prev.Format == FormatNone {
		return s.Create(ctx, uuid, data, 0)
	}
	pipe := s.pipeline(prev.Format == FormatJSON && prev.PTTL >= 0)
	if err := s.QueuePut(ctx, pipe, uuid, data, prev); err != nil {
		return err
	}
	return execWrite(ctx, pipe, uuid)
}

// QueueCreate queues the write of a body in the new-key format, with ttl
// when ttl > 0 (e.g. the API's VCON_REDIS_EXPIRY). An existing key is
// replaced; one of the other format makes the JSON.SET fail with WRONGTYPE.
func (s *Store) QueueCreate(ctx context.Context, pipe redis.Pipeliner, uuid string, data []byte, ttl time.Duration) error {
	format, err := s.NewKeyFormat(ctx)
	if err != nil {
		return err
	}
	key := Key(uuid)
	ms := ttl.Milliseconds()
	if ttl > 0 && ms == 0 {
		ms = 1
	}
	switch {
	case format == FormatString && ms > 0:
		_ = pipe.Process(ctx, keyCmd(ctx, "SET", key, data, "PX", ms))
	case format == FormatString:
		_ = pipe.Process(ctx, keyCmd(ctx, "SET", key, data))
	default:
		_ = pipe.Process(ctx, keyCmd(ctx, "JSON.SET", key, "$", data))
		if ms > 0 {
			_ = pipe.Process(ctx, keyCmd(ctx, "PEXPIRE", key, ms))
		}
	}
	return nil
}

// Create writes a body in the new-key format (see QueueCreate), in one
// round trip (two on the first create of an auto-detecting Store).
func (s *Store) Create(ctx context.Context, uuid string, data []byte, ttl time.Duration) error {
	format, err := s.NewKeyFormat(ctx)
	if err != nil {
		return err
	}
	pipe := s.pipeline(format == FormatJSON && ttl > 0)
	if err := s.QueueCreate(ctx, pipe, uuid, data, ttl); err != nil {
		return err
	}
	return execWrite(ctx, pipe, uuid)
}

// pipeline returns a MULTI/EXEC pipeline when a write is JSON.SET plus
// PEXPIRE, so that no reader ever sees the body without its TTL.
func (s *Store) pipeline(twoCommands bool) redis.Pipeliner {
	if twoCommands {
		return s.client.TxPipeline()
	}
	return s.client.Pipeline()
}

func execWrite(ctx context.Context, pipe redis.Pipeliner, uuid string) error {
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("write %s: %w", Key(uuid), err)
	}
	return nil
}

// NewKeyFormat is the format new keys are written in. In auto mode the
// server is asked once (COMMAND INFO JSON.SET) and the answer kept; a failed
// question is asked again next time.
func (s *Store) NewKeyFormat(ctx context.Context) (Format, error) {
	switch s.opts.NewKeyFormat {
	case NewKeyJSON:
		return FormatJSON, nil
	case NewKeyString:
		return FormatString, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.detected != FormatNone {
		return s.detected, nil
	}
	info, err := s.client.Do(ctx, "COMMAND", "INFO", "JSON.SET").Slice()
	if err != nil {
		return FormatNone, fmt.Errorf("detect the RedisJSON module (COMMAND INFO JSON.SET): %w; set %s=json or %s=string to skip detection", err, EnvBodyFormat, EnvBodyFormat)
	}
	s.detected = FormatString
	if len(info) > 0 && info[0] != nil {
		s.detected = FormatJSON
	}
	return s.detected, nil
}

// Delete removes a body of either format; a missing key is not an error.
func (s *Store) Delete(ctx context.Context, uuid string) error {
	if err := s.client.Process(ctx, keyCmd(ctx, "DEL", Key(uuid))); err != nil {
		return fmt.Errorf("delete %s: %w", Key(uuid), err)
	}
	return nil
}

// Expire sets a body's TTL; ErrNotFound when there is no body.
func (s *Store) Expire(ctx context.Context, uuid string, ttl time.Duration) error {
	cmd := expireCmd(ctx, uuid, ttl)
	_ = s.client.Process(ctx, cmd)
	n, err := cmd.Int64()
	if err != nil {
		return fmt.Errorf("expire %s: %w", Key(uuid), err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", Key(uuid), ErrNotFound)
	}
	return nil
}

// QueueExpire queues the setting of a body's TTL into pipe, e.g. after its
// write in the same pipeline; a missing body stays missing.
func (s *Store) QueueExpire(ctx context.Context, pipe redis.Pipeliner, uuid string, ttl time.Duration) {
	_ = pipe.Process(ctx, expireCmd(ctx, uuid, ttl))
}

// QueueExtend queues the extension of a body's TTL to at least ttl: a
// shorter TTL grows, a longer one and a body without TTL stay as they are
// (PEXPIRE ... GT), and a missing body is left missing.
// The command is returned so that a caller can ignore its error: Redis
// before 7.0 has no GT, and a missed extension must not hold a vCon.
func (s *Store) QueueExtend(ctx context.Context, pipe redis.Pipeliner, uuid string, ttl time.Duration) redis.Cmder {
	return queueExtend(ctx, pipe, Key(uuid), ttl)
}

// QueueExtendRead is QueueExtend of uuid's body, read as prev: the
// command names the key the read named, built once.
func (s *Store) QueueExtendRead(ctx context.Context, pipe redis.Pipeliner, uuid string, prev Body, ttl time.Duration) redis.Cmder {
	return queueExtend(ctx, pipe, keyArg(uuid, prev), ttl)
}

// QueueExtend is Store.QueueExtend of the body p reads, e.g. in the same
// pipeline, naming the key p's commands name.
func (p *PendingBody) QueueExtend(ctx context.Context, pipe redis.Pipeliner, ttl time.Duration) redis.Cmder {
	return queueExtend(ctx, pipe, p.boxed, ttl)
}

func queueExtend(ctx context.Context, pipe redis.Pipeliner, key any, ttl time.Duration) redis.Cmder {
	c := keyCmd(ctx, "PEXPIRE", key, max(ttl.Milliseconds(), 1), "GT")
	_ = pipe.Process(ctx, c)
	return c
}

// expireCmd is PEXPIRE of a body, at least 1 ms: 0 would delete the key,
// never what a TTL means.
func expireCmd(ctx context.Context, uuid string, ttl time.Duration) *redis.Cmd {
	return keyCmd(ctx, "PEXPIRE", Key(uuid), max(ttl.Milliseconds(), 1))
}

// MGet reads several bodies in one round trip (one per node in a cluster).
// The result is in the order of uuids, nil for a missing body. A key that
// holds something else than a body fails the whole call with ErrWrongType,
// since it means the keyspace is shared with something that misuses it.
func (s *Store) MGet(ctx context.Context, uuids []string) ([][]byte, error) {
	if len(uuids) == 0 {
		return [][]byte{}, nil
	}
	pipe := s.client.Pipeline()
	pending := make([]*PendingBody, len(uuids))
	for i, u := range uuids {
		key := Key(u)
		p := &PendingBody{key: key, jsonGet: keyCmd(ctx, "JSON.GET", key), get: keyCmd(ctx, "GET", key)}
		_ = pipe.Process(ctx, p.jsonGet)
		_ = pipe.Process(ctx, p.get)
		pending[i] = p
	}
	if _, err := ExecIgnoringBodyErrors(ctx, pipe, pending...); err != nil {
		return nil, fmt.Errorf("read %d vcons: %w", len(uuids), err)
	}
	out := make([][]byte, len(uuids))
	for i, p := range pending {
		b, err := p.Result()
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return nil, err
		default:
			out[i] = b.Data
		}
	}
	return out, nil
}
