package main

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		var ds []time.Duration
		for _, n := range ns {
			ds = append(ds, time.Duration(n)*time.Millisecond)
		}
		return ds
	}
	twenty := ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20)
	tests := []struct {
		name   string
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one value", ms(7), 0.95, 7 * time.Millisecond},
		{"p50 of 20 is the 10th", twenty, 0.5, 10 * time.Millisecond},
		{"p95 of 20 is the 19th", twenty, 0.95, 19 * time.Millisecond},
		{"p100 is the max", twenty, 1, 20 * time.Millisecond},
		{"tiny q is the min", twenty, 0.001, 1 * time.Millisecond},
		{"p95 of 3 is the max", ms(1, 2, 3), 0.95, 3 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.q); got != tt.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.sorted, tt.q, got, tt.want)
			}
		})
	}
}

func TestMedianIndex(t *testing.T) {
	for _, tt := range []struct{ n, want int }{{1, 0}, {2, 0}, {3, 1}, {20, 9}, {21, 10}} {
		if got := medianIndex(tt.n); got != tt.want {
			t.Errorf("medianIndex(%d) = %d, want %d", tt.n, got, tt.want)
		}
	}
}

func TestParseSummary(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		json    string
		want    map[string]podMemory
		wantErr bool
	}{
		{
			name: "one container",
			json: `{"node":{"nodeName":"vcon-node"},"pods":[{"podRef":{"name":"op-1","namespace":"vcon-system","uid":"x"},
				"containers":[{"name":"manager","memory":{"time":"2026-12-02T06:00:00Z","workingSetBytes":1048576,"rssBytes":524288,"usageBytes":9}}]}]}`,
			want: map[string]podMemory{"vcon-system/op-1": {WorkingSet: 1 << 20, RSS: 1 << 19, Time: t0}},
		},
		{
			name: "containers summed, the oldest sample's time",
			json: `{"pods":[{"podRef":{"name":"w","namespace":"b"},"containers":[
				{"name":"worker","memory":{"time":"2026-12-02T06:00:05Z","workingSetBytes":100,"rssBytes":10}},
				{"name":"step","memory":{"time":"2026-12-02T06:00:00Z","workingSetBytes":50,"rssBytes":5}}]}]}`,
			want: map[string]podMemory{"b/w": {WorkingSet: 150, RSS: 15, Time: t0}},
		},
		{
			name: "a container without memory leaves its pod out",
			json: `{"pods":[
				{"podRef":{"name":"half","namespace":"b"},"containers":[
					{"name":"a","memory":{"time":"2026-12-02T06:00:00Z","workingSetBytes":1,"rssBytes":1}},
					{"name":"b"}]},
				{"podRef":{"name":"norss","namespace":"b"},"containers":[
					{"name":"a","memory":{"time":"2026-12-02T06:00:00Z","workingSetBytes":1}}]},
				{"podRef":{"name":"empty","namespace":"b"},"containers":[]},
				{"podRef":{"name":"ok","namespace":"b"},"containers":[
					{"name":"a","memory":{"time":"2026-12-02T06:00:00Z","workingSetBytes":0,"rssBytes":0}}]}]}`,
			want: map[string]podMemory{"b/ok": {Time: t0}},
		},
		{name: "no pods", json: `{"node":{}}`, want: map[string]podMemory{}},
		{name: "not JSON", json: `<html>`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSummary([]byte(tt.json))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d pods %v, want %d %v", len(got), got, len(tt.want), tt.want)
			}
			for k, w := range tt.want {
				g, ok := got[k]
				if !ok || g.WorkingSet != w.WorkingSet || g.RSS != w.RSS || !g.Time.Equal(w.Time) {
					t.Errorf("%s = %+v (present %v), want %+v", k, g, ok, w)
				}
			}
		})
	}
}
