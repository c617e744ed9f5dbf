package devsys

import (
	"fmt"
	"os"
	"path/filepath"
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
