package devsys

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStopKillsAfterGraceWithTheGroup(t *testing.T) {
	dir := t.TempDir()
	p, err := startProc(procSpec{name: "stubborn", path: "/bin/sh", dir: dir, log: filepath.Join(dir, "log"),
		args: []string{"-c", `trap "" TERM; sleep 300 & echo $! > child; wait`}})
	if err != nil {
		t.Fatal(err)
	}
	var child int
	for deadline := time.Now().Add(10 * time.Second); child == 0; {
		b, _ := os.ReadFile(filepath.Join(dir, "child"))
		child, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		if time.Now().After(deadline) {
			t.Fatal("the child pid was never written")
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	p.stop(700 * time.Millisecond)
	if took := time.Since(start); took < 700*time.Millisecond || took > 10*time.Second {
		t.Errorf("stop took %s; want the grace period (700ms), then SIGKILL", took)
	}
	if p.running() {
		t.Fatal("still running after stop")
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		if err := syscall.Kill(child, 0); err != nil {
			break
		}
		if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child)); isZombie(string(st)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the child %d of the stopped process is still running", child)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A process that honours SIGTERM is not kept waiting for the grace period.
func TestStopReturnsWhenTheProcessExits(t *testing.T) {
	dir := t.TempDir()
	p, err := startProc(procSpec{name: "polite", path: "/bin/sleep", args: []string{"300"}, dir: dir, log: filepath.Join(dir, "log")})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p.stop(time.Minute)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("stop took %s for a process that exits on SIGTERM", took)
	}
}

// A child must outlive the thread that started it: Go ends a thread when a
// goroutine locked to it returns, and Pdeathsig would then kill the child
// (how the dev system's Redis once vanished mid-run).
func TestChildSurvivesTheThreadThatStartedIt(t *testing.T) {
	dir := t.TempDir()
	// The runtime never ends the main thread (it parks it instead), so the
	// child is started from a goroutine locked to any other thread.
	parked := make(chan struct{})
	defer close(parked)
	var p *proc
	for p == nil {
		started := make(chan *proc, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: this thread ends with the goroutine
			if syscall.Gettid() == os.Getpid() {
				started <- nil
				<-parked // hold the main thread so the next try gets another
				runtime.UnlockOSThread()
				return
			}
			p, err := startProc(procSpec{name: "sleeper", path: "/bin/sleep", dir: dir, log: filepath.Join(dir, "log"), args: []string{"300"}})
			if err != nil {
				t.Error(err)
			}
			started <- p
		}()
		if p = <-started; p == nil && t.Failed() {
			t.FailNow()
		}
	}
	defer p.stop(time.Second)
	select {
	case <-p.exited:
		t.Fatalf("the child died with the thread that started it: %v", p.err)
	case <-time.After(time.Second):
	}
}
