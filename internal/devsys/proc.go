package devsys

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one child process in its own process group, so that a signal to
// the group reaches everything it started, and a Ctrl-C on the terminal
// reaches only us: we decide the order things stop in.
type proc struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // set before exited closes
	log    string
}

// procSpec says how to start a process.
type procSpec struct {
	name string
	path string
	args []string
	env  []string // appended to a minimal environment
	dir  string
	log  string // file receiving stdout and stderr
	cred *syscall.Credential
	// inherit the full environment of this process (tools that need HOME etc.)
	inheritEnv bool
}

func startProc(s procSpec) (*proc, error) {
	if err := os.MkdirAll(filepath.Dir(s.log), 0o755); err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log of %s: %w", s.name, err)
	}
	cmd := exec.Command(s.path, s.args...)
	cmd.Dir = s.dir
	if s.inheritEnv {
		cmd.Env = append(os.Environ(), s.env...)
	} else {
		cmd.Env = append(baseEnv(), s.env...)
	}
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Pdeathsig: if this program dies without cleaning up, the kernel kills
	// its children instead of leaving them behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: s.cred}
	p := &proc{name: s.name, cmd: cmd, exited: make(chan struct{}), log: s.log}
	started := make(chan error, 1)
	// Pdeathsig fires when the thread that forked the child ends, not the
	// process, and Go ends a thread whenever a goroutine locked to it
	// returns (ListenInNode may, if it cannot leave the node's namespace).
	// A child started from a pooled thread was killed at random that way:
	// Redis vanished mid-run with nothing in its log. So the child is
	// started and waited for on a thread locked for the child's whole life.
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	if err := <-started; err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s (%s): %w", s.name, s.path, err)
	}
	return p, nil
}

// baseEnv is what every child gets: enough to run, nothing of the user's
// cluster configuration (no KUBECONFIG unless we set it).
func baseEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "USER", "TMPDIR", "LANG", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// signal sends sig to the whole process group.
func (p *proc) signal(sig syscall.Signal) {
	_ = syscall.Kill(-p.pid(), sig)
}

// stop sends SIGTERM, waits up to grace, then SIGKILLs the group. It
// returns once the process has exited.
func (p *proc) stop(grace time.Duration) {
	if !p.running() {
		p.signal(syscall.SIGKILL) // anything it left in its group
		return
	}
	p.signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		p.signal(syscall.SIGKILL)
		<-p.exited
	}
	p.signal(syscall.SIGKILL)
}

// logTail is the end of the process's log, for error messages.
func logTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// waitHTTP waits until url answers 200, the process exits, or timeout.
func waitHTTP(ctx context.Context, p *proc, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	var last error
	for time.Now().Before(deadline) {
		if p != nil && !p.running() {
			return fmt.Errorf("%s exited at start (%v); log %s:\n%s", p.name, p.err, p.log, logTail(p.log, 20))
		}
		resp, err := client.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	name := "server"
	logs := ""
	if p != nil {
		name, logs = p.name, "\n"+logTail(p.log, 20)
	}
	return fmt.Errorf("%s did not answer %s within %s: %v%s", name, url, timeout, last, logs)
}

// freePort returns a loopback port that was free a moment ago; preferred
// is tried first (0: any).
func freePort(preferred int) (int, error) {
	if preferred > 0 {
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", preferred)); err == nil {
			l.Close()
			return preferred, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// portAllocator hands out distinct free ports, so that two processes
// started in the same instant never get the same one.
type portAllocator struct {
	mu    sync.Mutex
	given map[int]bool
}

func (a *portAllocator) get(preferred int) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.given == nil {
		a.given = map[int]bool{}
	}
	for i := 0; i < 50; i++ {
		p, err := freePort(preferred)
		if err != nil {
			return 0, err
		}
		preferred = 0
		if !a.given[p] {
			a.given[p] = true
			return p, nil
		}
	}
	return 0, errors.New("no free port")
}

func (a *portAllocator) release(p int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.given, p)
}
