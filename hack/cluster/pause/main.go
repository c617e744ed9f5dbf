// Command pause is the pod sandbox's process on the real single-node
// cluster (make cluster): it holds the pod's namespaces open, reaps any
// child re-parented to it (it is PID 1 when the pod shares its PID
// namespace) and exits on SIGTERM or SIGINT. Nothing is pulled on that
// cluster, so the sandbox image is built from this, see hack/cluster/up.sh.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		// Reap every exited child; several may share one SIGCHLD.
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
