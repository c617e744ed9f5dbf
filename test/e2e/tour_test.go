//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

// TestMakeDevTour runs `make dev` as a newcomer would, then every command
// of the README's five-minute tour exactly as printed there, and stops it
// with Ctrl-C (SIGINT to its process group), which must tear the cluster
// down and leave nothing behind.
func TestMakeDevTour(t *testing.T) {
	root, err := testenv.RepoRoot()
	must(t, err)
	tour, err := readmeTour(filepath.Join(root, "README.md"))
	must(t, err)
	if len(tour) < 8 {
		t.Fatalf("the README's tour has %d commands; the parser lost some: %q", len(tour), tour)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dev := exec.Command("make", "--no-print-directory", "dev")
	dev.Dir = root
	dev.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a terminal's process group, for Ctrl-C
	stdout, err := dev.StdoutPipe()
	must(t, err)
	var stderr bytes.Buffer
	dev.Stderr = &stderr
	start := time.Now()
	must(t, dev.Start())
	exited := make(chan error, 1)
	printed := make(chan string, 1)
	go func() {
		var all strings.Builder
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "Ctrl-C stops everything") {
				printed <- all.String()
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		exited <- dev.Wait()
	}()
	interrupt := func() { _ = syscall.Kill(-dev.Process.Pid, syscall.SIGINT) }
	defer func() {
		if dev.ProcessState == nil {
			interrupt()
			select {
			case <-exited:
			case <-time.After(2 * time.Minute):
				_ = syscall.Kill(-dev.Process.Pid, syscall.SIGKILL)
			}
		}
	}()

	var banner string
	select {
	case banner = <-printed:
	case err := <-exited:
		t.Fatalf("make dev exited before it was up (%v):\n%s", err, tail(stderr.String(), 40))
	case <-ctx.Done():
		t.Fatalf("make dev not up after 10 minutes:\n%s", tail(stderr.String(), 40))
	}
	t.Logf("make dev up in %s; it printed:\n%s", time.Since(start).Round(time.Second), banner)
	for _, want := range []string{". .dev/env", "kubectl get chains", "Content-Type: application/json", "localhost:8000"} {
		if !strings.Contains(banner, want) {
			t.Errorf("make dev's next steps lack %q", want)
		}
	}

	for _, cmd := range tour {
		out, code := runTourCommand(ctx, root, cmd)
		t.Logf("$ %s\n%s(exit %d)", cmd, out, code)
		switch {
		case strings.HasSuffix(cmd, " -w"):
			// A watch runs until Ctrl-C: it must have printed the table.
			if code != 124 || !strings.Contains(out, "calls") {
				t.Errorf("%s: exit %d, want it still watching after 5s with the Chain in its table", cmd, code)
			}
		case code != 0:
			t.Errorf("%s: exit %d, want 0", cmd, code)
		}
		if strings.HasPrefix(cmd, "curl ") && !strings.Contains(out, `"uuid"`) {
			t.Errorf("curl did not get the vCon back (415 without the JSON content type?): %s", out)
		}
	}

	// Without the content type curl sends -d as a form, which the API (as
	// conserver's) refuses: the README says why the header is there.
	out, _ := runTourCommand(ctx, root, `curl -s -o /dev/null -w '%{http_code}' -H "x-conserver-api-token: $CONSERVER_API_TOKEN" -d @hack/dev/vcons/call-1.json 'localhost:8000/api/vcon?ingress_lists=default'`)
	if strings.TrimSpace(out) != "415" {
		t.Errorf("curl -d without the JSON content type: status %q, want 415", out)
	}

	interrupt()
	select {
	case err := <-exited:
		// make itself dies of the SIGINT (as at a terminal); what it ran
		// must have stopped cleanly, which it says below.
		if err != nil && !diedOfInterrupt(err) {
			t.Errorf("make dev after Ctrl-C: %v\n%s", err, tail(stderr.String(), 20))
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("make dev did not stop within 3 minutes of Ctrl-C")
	}
	if !strings.Contains(stderr.String(), "everything stopped; the cluster is torn down") {
		t.Errorf("make dev did not say it stopped everything:\n%s", tail(stderr.String(), 20))
	}
	if out, _ := exec.Command("ip", "netns", "list").Output(); bytes.Contains(out, []byte("vcon-node")) {
		t.Errorf("the node's network namespace is still there after Ctrl-C: %s", out)
	}
	if left := processesMentioning(filepath.Join(root, ".cluster") + "/"); len(left) > 0 {
		t.Errorf("cluster processes left after Ctrl-C:\n%s", strings.Join(left, "\n"))
	}
}

// readmeTour is the README's tour: the first sh block after "A
// five-minute tour", continuation lines joined, comments dropped.
func readmeTour(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	_, rest, ok := strings.Cut(string(b), "## A five-minute tour")
	if !ok {
		return nil, errors.New("README has no \"A five-minute tour\" section")
	}
	_, rest, ok = strings.Cut(rest, "```sh\n")
	if !ok {
		return nil, errors.New("the tour has no sh block")
	}
	block, _, _ := strings.Cut(rest, "```")
	var cmds []string
	cur := ""
	for _, line := range strings.Split(block, "\n") {
		if i := strings.Index(line, "  # "); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur += strings.TrimSuffix(line, "\\")
			continue
		}
		cmds = append(cmds, strings.TrimSpace(cur+line))
		cur = ""
	}
	return cmds, nil
}

// runTourCommand runs one line in a fresh shell that has sourced
// .dev/env, as the README says to; a watch gets 5 s.
func runTourCommand(ctx context.Context, root, cmd string) (string, int) {
	limit := "60"
	if strings.HasSuffix(cmd, " -w") {
		limit = "5"
	}
	line := cmd
	if cmd != ". .dev/env" {
		line = ". .dev/env && " + cmd
	}
	c := exec.CommandContext(ctx, "timeout", limit, "bash", "-c", line)
	c.Dir = root
	// What a newcomer's shell has; the env file adds the rest.
	c.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:" + filepath.Dir(goBinary()), "HOME=" + os.Getenv("HOME")}
	out, err := c.CombinedOutput()
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		return fmt.Sprintf("run: %v", err), -1
	}
	return string(out), code
}

// diedOfInterrupt: the process was killed by SIGINT or exited 130, as a
// shell reports a Ctrl-C.
func diedOfInterrupt(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && (ws.Signaled() && ws.Signal() == syscall.SIGINT || ws.Exited() && ws.ExitStatus() == 130)
}

func goBinary() string {
	p, err := exec.LookPath("go")
	if err != nil {
		return "/usr/local/go/bin/go"
	}
	return p
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
