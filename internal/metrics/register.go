// Package metrics holds what our Prometheus collectors share.
package metrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterOnce registers c with reg, or returns the collector registered
// before under the same descriptor: links, limiters and processors are
// built again on every config reload and for every chain of a worker, and
// each must count into the one series a scrape sees, not fail on the
// second registration.
func RegisterOnce[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}
