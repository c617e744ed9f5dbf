package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegisterOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	counter := func(help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total", Help: help}, []string{"link"})
	}
	first, err := RegisterOnce(reg, counter("x"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := RegisterOnce(reg, counter("x"))
	if err != nil || again != first {
		t.Fatalf("second registration = %p, %v; want the first collector %p", again, err, first)
	}
	// Another help text is another descriptor under the same name: an
	// error, not a silent second series.
	if _, err := RegisterOnce(reg, counter("other")); err == nil {
		t.Fatal("a conflicting collector was accepted")
	}
	// The same descriptor as another type is not the collector asked for.
	gauge := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "x_total", Help: "x"}, []string{"link"})
	if _, err := RegisterOnce(reg, gauge); err == nil {
		t.Fatal("a gauge was handed the counter's registration")
	}
}
