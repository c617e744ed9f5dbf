package links

import (
	"fmt"
	"testing"
	"time"
)

func sampleUUIDs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("0190e3c2-0000-7000-8000-%012d", i+1)
	}
	return out
}

// kept runs the sampler over the uuids and reports which ones it kept.
func kept(t *testing.T, l Link, uuids []string) []bool {
	t.Helper()
	out := make([]bool, len(uuids))
	for i, u := range uuids {
		out[i] = !run(t, l, parseVCon(t, `{"uuid":"`+u+`"}`)).Halt
	}
	return out
}

func share(k []bool) float64 {
	n := 0
	for _, b := range k {
		if b {
			n++
		}
	}
	return float64(n) / float64(len(k))
}

func TestSamplerShares(t *testing.T) {
	uuids := sampleUUIDs(1000)
	tests := []struct {
		name     string
		opts     map[string]any
		min, max float64
	}{
		{name: "percentage 0 keeps none", opts: map[string]any{"method": "percentage", "value": 0}, min: 0, max: 0},
		{name: "percentage 100 keeps all", opts: map[string]any{"method": "percentage", "value": 100}, min: 1, max: 1},
		{name: "percentage 30 unseeded", opts: map[string]any{"method": "percentage", "value": 30}, min: 0.22, max: 0.38},
		{name: "percentage 30 seeded", opts: map[string]any{"method": "percentage", "value": 30, "seed": 42}, min: 0.22, max: 0.38},
		{name: "default is percentage 50", opts: map[string]any{"seed": "s"}, min: 0.42, max: 0.58},
		// conserver's rate keeps with probability 1 - e^(-1/value).
		{name: "rate 1 keeps 63%", opts: map[string]any{"method": "rate", "value": 1, "seed": 7}, min: 0.55, max: 0.71},
		{name: "rate 10 keeps 10%", opts: map[string]any{"method": "rate", "value": 10}, min: 0.05, max: 0.15},
		{name: "modulo 1 keeps all", opts: map[string]any{"method": "modulo", "value": 1}, min: 1, max: 1},
		{name: "modulo 4 keeps a quarter", opts: map[string]any{"method": "modulo", "value": 4}, min: 0.17, max: 0.33},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := share(kept(t, mustNew(t, "links.sampler", tc.opts, Deps{}), uuids))
			if got < tc.min || got > tc.max {
				t.Fatalf("kept %.3f, want %.2f..%.2f", got, tc.min, tc.max)
			}
		})
	}
}

func TestSamplerSeedIsReproduciblePerVCon(t *testing.T) {
	uuids := sampleUUIDs(200)
	opts := func(seed any) map[string]any {
		return map[string]any{"method": "percentage", "value": 50, "seed": seed}
	}
	first := kept(t, mustNew(t, "links.sampler", opts(42), Deps{}), uuids)
	again := kept(t, mustNew(t, "links.sampler", opts(42), Deps{}), uuids)
	other := kept(t, mustNew(t, "links.sampler", opts("another"), Deps{}), uuids)
	if fmt.Sprint(first) != fmt.Sprint(again) {
		t.Fatal("the same seed gave different decisions")
	}
	if s := share(first); s == 0 || s == 1 {
		t.Fatalf("a seed made the same decision for every vCon (kept %.2f)", s)
	}
	if fmt.Sprint(first) == fmt.Sprint(other) {
		t.Fatal("two seeds gave the same decisions")
	}
}

// The vectors come from conserver's own formula,
// int(sha256(uuid).hexdigest()[:8], 16) % value == 0, so a migrated chain
// keeps the same vCons.
func TestSamplerModuloMatchesConserver(t *testing.T) {
	l := mustNew(t, "links.sampler", map[string]any{"method": "modulo", "value": 3}, Deps{})
	got := kept(t, l, sampleUUIDs(6))
	want := []bool{false, false, false, true, false, true}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("kept %v, want %v", got, want)
	}
}

func TestSamplerTimeBased(t *testing.T) {
	tests := []struct {
		unix int64
		keep bool
	}{{1000, true}, {1001, false}, {1009, false}, {1010, true}}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.unix), func(t *testing.T) {
			l := mustNew(t, "links.sampler", map[string]any{"method": "time_based", "value": 10}, Deps{})
			l.(*sampler).now = func() time.Time { return time.Unix(tc.unix, 0) }
			if got := !run(t, l, parseVCon(t, `{"uuid":"u"}`)).Halt; got != tc.keep {
				t.Fatalf("kept = %v, want %v", got, tc.keep)
			}
		})
	}
}

func TestSamplerBadOptions(t *testing.T) {
	checkBadOptions(t, "links.sampler", Deps{}, []badOptionCase{
		{name: "unknown method", opts: map[string]any{"method": "random"}, want: `option "method": unknown method "random"`},
		{name: "percentage above 100", opts: map[string]any{"method": "percentage", "value": 150}, want: `option "value": percentage must be between 0 and 100`},
		{name: "rate zero", opts: map[string]any{"method": "rate", "value": 0}, want: `option "value": rate must be a positive`},
		{name: "modulo fraction", opts: map[string]any{"method": "modulo", "value": 2.5}, want: `option "value": modulo needs a whole number`},
		{name: "time_based zero", opts: map[string]any{"method": "time_based", "value": 0}, want: `option "value": time_based needs`},
		{name: "value string", opts: map[string]any{"value": "50%"}, want: `option "value": want a number, got "50%"`},
		{name: "seed list", opts: map[string]any{"seed": []any{1}}, want: `option "seed": want a string or a number, got a list`},
	})
}
