// Command redact checks that the PII redactor (internal/redact) stays
// linear on adversarial input: for each repeated unit that could make a
// detector go quadratic, 50 KB must cost about ten times what 5 KB costs.
// The ratio is measured in one run, each size the best of several rounds,
// so a busy machine moves both sides alike. It prints a Markdown section
// and exits 1 when a ratio is over the bound.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/redact"
)

// bound is the most 10x the input may cost: linear is 10, quadratic 100.
const bound = 40

var units = []string{"o ", "oh ", "1 ", "double ", "one ", "4111 ", "expires cvv ", "a@b.co ", "at dot ", "twenty ", "hundred ", "4111111111111111 "}

func main() {
	rounds := flag.Int("rounds", 7, "runs per size; the best counts")
	flag.Parse()
	r, err := redact.New(redact.Config{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	best := func(text string) time.Duration {
		d := time.Duration(1<<63 - 1)
		for range *rounds {
			start := time.Now()
			r.Redact(text)
			d = min(d, time.Since(start))
		}
		return max(d, time.Microsecond)
	}
	fmt.Println("## Redaction on adversarial input")
	fmt.Println()
	fmt.Printf("Each unit repeated to 5 KB and to 50 KB; the best of %d runs of `Redactor.Redact` each. Linear is 10x, quadratic 100x; the bound is %dx.\n\n", *rounds, bound)
	fmt.Println("| unit | 5 KB | 50 KB | ratio |")
	fmt.Println("|---|---|---|---|")
	failed := false
	for _, u := range units {
		small := best(strings.Repeat(u, 5000/len(u)))
		large := best(strings.Repeat(u, 50000/len(u)))
		ratio := float64(large) / float64(small)
		mark := ""
		if ratio > bound {
			mark, failed = " **over the bound**", true
		}
		fmt.Printf("| `%q` | %v | %v | %.1fx%s |\n", u, small.Round(time.Microsecond), large.Round(time.Microsecond), ratio, mark)
	}
	fmt.Println()
	fmt.Println("Reproduce: `go run ./hack/bench/redact`.")
	if failed {
		os.Exit(1)
	}
}
