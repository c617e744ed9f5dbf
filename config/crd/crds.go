// Package crd holds the CRDs controller-gen generates (bases/), embedded so
// that the operator knows the schema it was built for and can refuse to run
// against older CRDs (internal/crdcheck).
package crd

import "embed"

// Bases are config/crd/bases/*.yaml.
//
//go:embed bases/*.yaml
var Bases embed.FS
