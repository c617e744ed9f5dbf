package devsys

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/vcon-operator/vcon-operator/internal/devsys/promop"
)

// installMonitoringCRDs applies the Prometheus Operator's CRDs before the
// chart, whose monitors need them.
func (s *System) installMonitoringCRDs(ctx context.Context) error {
	return promop.InstallCRDs(ctx, s.Config, s.bin(""))
}

// startPrometheus installs the Prometheus Operator and one Prometheus that
// selects every ServiceMonitor, PodMonitor, ScrapeConfig and PrometheusRule
// (internal/devsys/promop), after the chart: its first configuration then has the
// chart's monitors already.
func (s *System) startPrometheus(ctx context.Context) error {
	bin := s.bin("")
	if _, err := promop.ImportImages(ctx, bin, s.Node.CtrSocket); err != nil {
		return err
	}
	p, err := promop.Install(ctx, s.Config, promop.Options{
		BinDir:         bin,
		ScrapeInterval: s.opts.ScrapeInterval, EvaluationInterval: s.opts.ScrapeInterval,
	})
	if err != nil {
		return err
	}
	s.PrometheusURL = p.URL
	return nil
}

// waitForMonitors waits until Prometheus scrapes through every monitor of
// the chart and evaluates its rules. The Prometheus Operator writes them
// into a Secret that Prometheus mounts, and the kubelet updates a mounted
// Secret on its next pod sync, so a fresh install can take a while to be
// scraped; a load pushed before that would leave no series behind.
func (s *System) waitForMonitors(ctx context.Context) error {
	want := []string{
		"serviceMonitor/" + ReleaseNamespace + "/" + OperatorDeployment + "/0",
		"serviceMonitor/" + ReleaseNamespace + "/" + APIService + "/0",
		"podMonitor/" + ReleaseNamespace + "/" + ReleaseName + "-workers/0",
		"scrapeConfig/" + ReleaseNamespace + "/" + APIService + "-service",
	}
	var last string
	err := wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		var pools struct {
			Data struct {
				ScrapePools []string `json:"scrapePools"`
			} `json:"data"`
		}
		var rules struct {
			Data struct {
				Groups []struct {
					Name string `json:"name"`
				} `json:"groups"`
			} `json:"data"`
		}
		if err := GetJSON(ctx, s.PrometheusURL+"/api/v1/scrape_pools", &pools); err != nil {
			last = err.Error()
			return false, nil
		}
		if err := GetJSON(ctx, s.PrometheusURL+"/api/v1/rules", &rules); err != nil {
			last = err.Error()
			return false, nil
		}
		var groups []string
		for _, g := range rules.Data.Groups {
			groups = append(groups, g.Name)
		}
		last = fmt.Sprintf("scrape pools %v, rule groups %v", pools.Data.ScrapePools, groups)
		for _, w := range want {
			if !slices.Contains(pools.Data.ScrapePools, w) {
				return false, nil
			}
		}
		return slices.Contains(groups, "vcon-server") && slices.Contains(groups, "vcon-operator"), nil
	})
	if err != nil {
		return fmt.Errorf("Prometheus does not scrape the chart's monitors (want %v): %s", want, last)
	}
	return nil
}

// GetJSON decodes the JSON answer of a GET (Prometheus' HTTP API).
func GetJSON(ctx context.Context, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
