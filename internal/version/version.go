// Package version holds what the binary was built from. The Makefile and
// the Dockerfile set the variables with -ldflags -X; a plain `go build`
// leaves the defaults, which say so.
package version

var (
	// Version is the release (git describe), e.g. v0.3.0 or 2026.01.15.
	Version = "dev"
	// GitCommit is the short commit hash.
	GitCommit = "unknown"
	// BuildTime is when the binary was built, RFC 3339 in UTC.
	BuildTime = "unknown"
)

// Info is the answer of GET /api/version, in conserver's field names.
type Info struct {
	Version   string `json:"version"`
	GitCommit string `json:"git_commit"`
	BuildTime string `json:"build_time"`
}

// Get returns the build information.
func Get() Info {
	return Info{Version: Version, GitCommit: GitCommit, BuildTime: BuildTime}
}
