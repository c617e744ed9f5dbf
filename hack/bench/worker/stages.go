package main

import (
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/google/pprof/profile"
)

// A stage of a vCon's client CPU, known by the functions on a sample's
// stack. A sample counts once, in the first stage (in stageOrder) whose
// pattern matches a function on its stack: a collection the decoder's
// allocation set off is garbage collection, go-redis called from the
// trace-context code is tracing.
type stage struct {
	name    string
	pattern *regexp.Regexp
}

var stageOrder = []stage{
	{"garbage collection", regexp.MustCompile(`^runtime\.(gcBgMarkWorker|gcAssistAlloc|bgsweep|bgscavenge|gcDrain|markroot|scanobject)`)},
	{"the benchmark's own pushes and polls (floor only)", regexp.MustCompile(`^main\.(pushAndWait|load)`)},
	{"tracing (spans, trace-context records, batching and OTLP export)", regexp.MustCompile(`go\.opentelemetry\.io|/internal/telemetry\.|pipeline\.\(\*spanKit\)|[tT]raceRecord|otlp|google\.golang\.org/protobuf`)},
	{"metrics (Prometheus)", regexp.MustCompile(`prometheus`)},
	{"decode and validate", regexp.MustCompile(`pipeline\.parseBody|vcon\.ParseReadOnly|vcon\.Validate`)},
	{"links (links.tag)", regexp.MustCompile(`/internal/links\.`)},
	{"normalise and encode", regexp.MustCompile(`vcon\.Normalize|vcon\.\(\*VCon\)\.AppendMarshal|vcon\.appendJSON`)},
	{"Redis client (go-redis, its socket calls)", regexp.MustCompile(`go-redis|/internal/queue\.ExecChecked`)},
}

const restStage = "the rest (scheduler, timers, the pipeline's own code)"

// stageShares reads a CPU profile and returns each stage's share of its
// samples (restStage last), and how many samples it had.
func stageShares(file string) (map[string]float64, int64, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", file, err)
	}
	counts := map[string]int64{}
	var total int64
	for _, s := range p.Sample {
		v := s.Value[0] // samples (the second value is their CPU time)
		total += v
		counts[stageOf(s)] += v
	}
	shares := map[string]float64{}
	for name, c := range counts {
		shares[name] = float64(c) / float64(max(total, 1))
	}
	return shares, total, nil
}

func stageOf(s *profile.Sample) string {
	var funcs []string
	for _, loc := range s.Location {
		for _, line := range loc.Line {
			if line.Function != nil {
				funcs = append(funcs, line.Function.Name)
			}
		}
	}
	for _, st := range stageOrder {
		for _, fn := range funcs {
			if st.pattern.MatchString(fn) {
				return st.name
			}
		}
	}
	return restStage
}

// printStages prints the stage table of the floor's and the worker's
// profiles, in µs per vCon: a stage's share times the profiled run's
// client CPU per vCon.
func printStages(floorFile, workerFile string, floor, worker result, n int) error {
	fs, fSamples, err := stageShares(floorFile)
	if err != nil {
		return err
	}
	ws, wSamples, err := stageShares(workerFile)
	if err != nil {
		return err
	}
	fPer := float64(floor.clientCPU.Microseconds()) / float64(n)
	wPer := float64(worker.clientCPU.Microseconds()) / float64(n)
	var b strings.Builder
	fmt.Fprintf(&b, "\nWhere the client CPU of one vCon goes, from CPU profiles of the %s series' last round (%d samples of the floor's run, %d of the worker's; each sample counted once, in the first stage of this order whose code is on its stack; a stage's share times the run's client CPU per vCon, %.0f µs for the floor and %.0f µs for the worker):\n\n",
		profileSeries, fSamples, wSamples, fPer, wPer)
	b.WriteString("| stage | floor | worker | worker − floor |\n|---|---|---|---|\n")
	names := make([]string, 0, len(stageOrder)+1)
	for _, st := range stageOrder {
		names = append(names, st.name)
	}
	names = append(names, restStage)
	for _, name := range names {
		f, w := fs[name]*fPer, ws[name]*wPer
		fmt.Fprintf(&b, "| %s | %.1f µs (%.0f%%) | %.1f µs (%.0f%%) | %+.1f µs |\n", name, f, 100*fs[name], w, 100*ws[name], w-f)
	}
	fmt.Fprintf(&b, "| all | %.1f µs | %.1f µs | %+.1f µs |\n", fPer, wPer, wPer-fPer)
	fmt.Print(b.String())
	return nil
}
