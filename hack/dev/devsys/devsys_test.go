package devsys

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

func TestWithHTTPAddr(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []string
		want []string
	}{
		{"equals form", []string{"--config=/c", "--http-addr=:9090", "--chain=x"}, []string{"--config=/c", "--chain=x", "--http-addr=127.0.0.1:1"}},
		{"separate value", []string{"--http-addr", ":9090", "--chain=x"}, []string{"--chain=x", "--http-addr=127.0.0.1:1"}},
		{"absent", []string{"--chain=x"}, []string{"--chain=x", "--http-addr=127.0.0.1:1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := withHTTPAddr(tc.in, "127.0.0.1:1"); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	prev := time.Duration(0)
	for n := 1; n < 12; n++ {
		d := backoff(n)
		if d < prev || d > 20*time.Second {
			t.Fatalf("backoff(%d) = %s after %s", n, d, prev)
		}
		prev = d
	}
	if backoff(1) != 500*time.Millisecond || backoff(11) != 20*time.Second {
		t.Errorf("backoff(1) = %s, backoff(11) = %s", backoff(1), backoff(11))
	}
}

// The dev Prometheus loads the guide's rules as written: the copy in
// hack/dev must say what the chart's copies (the guide's four alerts, one
// file each) say.
func TestGuideAlertsMatchTheChart(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, guideAlertsFile))
	if err != nil {
		t.Fatal(err)
	}
	var guide struct {
		Groups []struct {
			Name  string           `json:"name"`
			Rules []map[string]any `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(b, &guide); err != nil {
		t.Fatal(err)
	}
	if len(guide.Groups) != 1 || guide.Groups[0].Name != "vcon-server" {
		t.Fatalf("want one group vcon-server, got %+v", guide.Groups)
	}
	files, _ := filepath.Glob(filepath.Join(root, "charts/vcon-operator/alerts/vcon-server/*.yaml"))
	if len(files) != len(guide.Groups[0].Rules) {
		t.Fatalf("%d rules in %s, %d in the chart", len(guide.Groups[0].Rules), guideAlertsFile, len(files))
	}
	for _, rule := range guide.Groups[0].Rules {
		name := rule["alert"].(string)
		cb, err := os.ReadFile(filepath.Join(root, "charts/vcon-operator/alerts/vcon-server", name+".yaml"))
		if err != nil {
			t.Errorf("alert %s: %v", name, err)
			continue
		}
		var chart map[string]any
		if err := yaml.Unmarshal(cb, &chart); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(rule, chart) {
			t.Errorf("alert %s differs:\nhack/dev: %v\nchart:    %v", name, rule, chart)
		}
	}
}

func TestOverrideFor(t *testing.T) {
	in := []byte(`groups:
  - name: g
    rules:
      - alert: A
        expr: x > 0
        for: 5m
      - alert: DLQNotEmpty
        expr: y > 0
        for: 5m
        labels:
          severity: warning
`)
	out, err := overrideFor(in, map[string]string{"DLQNotEmpty": "10s"})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(string(in), "y > 0\n        for: 5m", "y > 0\n        for: 10s", 1)
	if string(out) != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	if _, err := overrideFor(in, map[string]string{"Nope": "1s"}); err == nil {
		t.Error("an unknown alert was accepted")
	}
}

func TestOurRulesWrapTheChartFiles(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := ourRules(filepath.Join(root, ourAlertsDir))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert string `json:"alert"`
				Expr  string `json:"expr"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(root, ourAlertsDir, "*.yaml"))
	var names []string
	for _, r := range f.Groups[0].Rules {
		if r.Expr == "" {
			t.Errorf("alert %s has no expr", r.Alert)
		}
		names = append(names, r.Alert+".yaml")
	}
	var want []string
	for _, f := range files {
		want = append(want, filepath.Base(f))
	}
	sort.Strings(names)
	if !reflect.DeepEqual(names, want) {
		t.Errorf("rules %v, files %v", names, want)
	}
}

// A worker that ignores SIGTERM is killed when its grace period ends, and
// so is everything it started in its process group.
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
