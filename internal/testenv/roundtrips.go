package testenv

import (
	"context"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// RoundTrips is a go-redis hook counting what a client sends: each single
// command and each pipeline is one round trip on a standalone server.
// Connection set-up (HELLO, CLIENT ...) goes through the hooks too and is
// not counted: it is paid once per pooled connection, not per operation.
type RoundTrips struct{ Commands, Pipelines atomic.Int64 }

// Total is the commands and pipelines sent so far.
func (r *RoundTrips) Total() int64 { return r.Commands.Load() + r.Pipelines.Load() }

// Count is the round trips fn sends.
func (r *RoundTrips) Count(fn func()) int64 {
	before := r.Total()
	fn()
	return r.Total() - before
}

func isSetup(cmd redis.Cmder) bool { return cmd.Name() == "hello" || cmd.Name() == "client" }

// DialHook implements redis.Hook.
func (r *RoundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook implements redis.Hook.
func (r *RoundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !isSetup(cmd) {
			r.Commands.Add(1)
		}
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook implements redis.Hook.
func (r *RoundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && !isSetup(cmds[0]) {
			r.Pipelines.Add(1)
		}
		return next(ctx, cmds)
	}
}
