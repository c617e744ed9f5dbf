// Command kubectl-vcon is the `kubectl vcon` plugin: put it on PATH and run
// `kubectl vcon status`. See internal/plugin for what it does.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/vcon-operator/vcon-operator/internal/plugin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := plugin.Main(ctx, os.Args[1:], plugin.ProcessRuntime())
	stop()
	os.Exit(code)
}
