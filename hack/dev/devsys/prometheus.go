package devsys

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// The monitoring guide's prometheus-alerts.yml, copied as written.
const guideAlertsFile = "hack/dev/prometheus-alerts.yml"

// Our own alerts, one rule per file, as the chart ships them.
const ourAlertsDir = "charts/vcon-operator/alerts/vcon-operator"

func (s *System) startPrometheus(ctx context.Context) error {
	dir := filepath.Join(s.opts.StateDir, "prometheus")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return err
	}
	guide, err := os.ReadFile(filepath.Join(s.opts.Root, guideAlertsFile))
	if err != nil {
		return err
	}
	guide, err = overrideFor(guide, s.opts.AlertFor)
	if err != nil {
		return err
	}
	ruleFiles := []string{filepath.Join(dir, "prometheus-alerts.yml")}
	if err := writeFileAtomic(ruleFiles[0], guide, 0o644); err != nil {
		return err
	}
	ours, err := ourRules(filepath.Join(s.opts.Root, ourAlertsDir))
	if err != nil {
		return err
	}
	if ours != nil {
		ruleFiles = append(ruleFiles, filepath.Join(dir, "vcon-operator-alerts.yml"))
		if err := writeFileAtomic(ruleFiles[1], ours, 0o644); err != nil {
			return err
		}
	}
	targets := filepath.Join(dir, "workers.json")
	if _, err := os.Stat(targets); err != nil {
		if err := writeFileAtomic(targets, []byte("[]\n"), 0o644); err != nil {
			return err
		}
	}
	apiAddr := strings.TrimPrefix(s.APIURL, "http://")
	cfg := map[string]any{
		"global": map[string]any{
			"scrape_interval":     s.opts.ScrapeInterval.String(),
			"evaluation_interval": s.opts.ScrapeInterval.String(),
		},
		"rule_files": ruleFiles,
		"scrape_configs": []any{
			map[string]any{"job_name": "vcon-operator", "static_configs": []any{map[string]any{"targets": []string{s.OperatorMetricsAddr}}}},
			// The guide's ServiceDown watches up{job="vcon-server"}: the API.
			map[string]any{"job_name": "vcon-server", "static_configs": []any{map[string]any{"targets": []string{apiAddr}}}},
			map[string]any{"job_name": "vcon-worker", "file_sd_configs": []any{map[string]any{
				"files": []string{targets}, "refresh_interval": "1s"}}},
		},
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := writeFileAtomic(cfgPath, b, 0o644); err != nil {
		return err
	}
	port, err := s.port(9090)
	if err != nil {
		return err
	}
	s.PrometheusURL = "http://127.0.0.1:" + strconv.Itoa(port)
	p, err := startProc(procSpec{
		name: "prometheus", path: s.bin("prometheus"), dir: dir, log: s.logPath("prometheus"),
		args: []string{"--config.file=" + cfgPath, "--storage.tsdb.path=" + filepath.Join(dir, "data"),
			"--web.listen-address=127.0.0.1:" + strconv.Itoa(port), "--storage.tsdb.retention.time=1d"},
	})
	if err != nil {
		return err
	}
	s.prometheus = p
	s.track(p)
	return waitHTTP(ctx, p, s.PrometheusURL+"/-/ready", 120*time.Second)
}

// overrideFor changes the `for:` of the named alerts in a rules file,
// leaving every other byte as written.
func overrideFor(rules []byte, forByAlert map[string]string) ([]byte, error) {
	out := string(rules)
	for alert, d := range forByAlert {
		re := regexp.MustCompile(`(?s)(- alert: ` + regexp.QuoteMeta(alert) + `\n.*?\n\s+for: )(\S+)`)
		if !re.MatchString(out) {
			return nil, fmt.Errorf("alert %s with a `for` not found in %s", alert, guideAlertsFile)
		}
		done := false
		out = re.ReplaceAllStringFunc(out, func(m string) string {
			if done {
				return m
			}
			done = true
			sub := re.FindStringSubmatch(m)
			return sub[1] + d
		})
	}
	return []byte(out), nil
}

// ourRules turns the chart's one-rule files into one rules file (group
// vcon-operator); nil when the directory does not exist.
func ourRules(dir string) ([]byte, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return nil, err
	}
	sort.Strings(files)
	var rules []any
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var rule map[string]any
		if err := yaml.Unmarshal(b, &rule); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		rules = append(rules, rule)
	}
	return yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "vcon-operator", "rules": rules}}})
}
