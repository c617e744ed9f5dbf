package devsys

import (
	"context"

	"github.com/vcon-operator/vcon-operator/hack/dev/promop"
)

// startPrometheus installs the Prometheus Operator and one Prometheus that
// selects every ServiceMonitor, PodMonitor, ScrapeConfig and PrometheusRule
// (hack/dev/promop), before the chart, whose monitors need its CRDs.
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
