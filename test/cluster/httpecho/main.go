// Command httpecho is the test/cluster Deployment's server: it answers
// every request on :8080 with its pod's name, so the test sees which pod a
// Service reached, and /metrics with one metric, so internal/devsys/promop's test
// has a target to scrape.
package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	name, _ := os.Hostname()
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "httpecho", name) })
	http.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8") // Prometheus 3 wants a type
		fmt.Fprintln(w, "httpecho_up 1")
	})
	if err := http.ListenAndServe(":8080", nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
