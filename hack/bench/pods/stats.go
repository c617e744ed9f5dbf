package main

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// podMemory is one pod's memory as the kubelet's stats/summary reports it,
// summed over the pod's containers.
type podMemory struct {
	WorkingSet uint64    // bytes
	RSS        uint64    // bytes
	Time       time.Time // the oldest container sample's time
}

// summary is the part of the kubelet's /stats/summary this program reads
// (k8s.io/kubelet/pkg/apis/stats/v1alpha1, which the module does not
// depend on).
type summary struct {
	Pods []struct {
		PodRef struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"podRef"`
		Containers []struct {
			Name   string `json:"name"`
			Memory *struct {
				Time            time.Time `json:"time"`
				WorkingSetBytes *uint64   `json:"workingSetBytes"`
				RSSBytes        *uint64   `json:"rssBytes"`
			} `json:"memory"`
		} `json:"containers"`
	} `json:"pods"`
}

// parseSummary reads a stats/summary answer into memory by
// "namespace/name". A pod is left out until every container of it has a
// memory sample: a half-measured pod would under-report.
func parseSummary(b []byte) (map[string]podMemory, error) {
	var s summary
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decode stats/summary: %w", err)
	}
	out := map[string]podMemory{}
pods:
	for _, p := range s.Pods {
		if len(p.Containers) == 0 {
			continue
		}
		var m podMemory
		for _, c := range p.Containers {
			if c.Memory == nil || c.Memory.WorkingSetBytes == nil || c.Memory.RSSBytes == nil {
				continue pods
			}
			m.WorkingSet += *c.Memory.WorkingSetBytes
			m.RSS += *c.Memory.RSSBytes
			if m.Time.IsZero() || c.Memory.Time.Before(m.Time) {
				m.Time = c.Memory.Time
			}
		}
		out[p.PodRef.Namespace+"/"+p.PodRef.Name] = m
	}
	return out, nil
}

// percentile is the nearest-rank q-quantile of sorted durations (q in
// (0, 1]): the smallest value at or above q of them.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// medianIndex is the index of the median of n sorted values (the lower
// one for an even n), so that the median is always a measured value.
func medianIndex(n int) int { return (n - 1) / 2 }

func sortedCopy(ds []time.Duration) []time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func joinDurations(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = round(d).String()
	}
	return strings.Join(parts, ", ")
}

func round(d time.Duration) time.Duration { return d.Round(10 * time.Millisecond) }
