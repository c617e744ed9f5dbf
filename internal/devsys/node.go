package devsys

import (
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Managed services (Redis, PostgreSQL, the webhook receiver) run as
// processes on the node's address, the way a managed Redis or database
// sits outside the cluster at an address the pods can reach: inside the
// node's network namespace, so nothing they serve is reachable from
// anywhere but this machine's own cluster and tests.

// inNode is a procSpec that runs inside the node's network namespace.
// nsenter execs the command (no fork for a network namespace), so the pid
// is the service's own; uid/gid (when not root) are set after entering,
// which needs root first.
func (s *System) inNode(spec procSpec, uid, gid int) procSpec {
	args := []string{"--net=/run/netns/" + s.Node.NetNS}
	if uid > 0 {
		args = append(args, fmt.Sprintf("--setuid=%d", uid), fmt.Sprintf("--setgid=%d", gid))
	}
	args = append(args, "--", spec.path)
	spec.args = append(args, spec.args...)
	spec.path = "nsenter"
	return spec
}

// ListenInNode opens a TCP listener inside the node's network namespace,
// where worker pods reach it (a webhook receiver, a slow downstream). A
// socket stays in the namespace it was created in, so one locked thread
// enters the namespace, listens and goes back to this process's namespace.
// Only if it cannot go back does its goroutine end still locked, which
// ends the thread: no thread ever serves the rest of the program from the
// wrong namespace. Children survive that (startProc pins their threads).
func (s *System) ListenInNode(addr string) (net.Listener, error) {
	type result struct {
		l   net.Listener
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer home.Close()
		node, err := os.Open("/run/netns/" + s.Node.NetNS)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer node.Close()
		if err := unix.Setns(int(node.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("enter the node's network namespace: %w", err)}
			return
		}
		l, err := net.Listen("tcp", addr)
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else: stay locked; the thread ends with this goroutine
		done <- result{l, err}
	}()
	r := <-done
	return r.l, r.err
}
