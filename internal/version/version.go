// Package version holds the release stamp of the binaries. The build script
// (deploy/gobuild.sh, used by both the Makefile and the Dockerfile) sets the
// variables with -ldflags -X; a plain 'go build' leaves the defaults.
package version

import "fmt"

// Set at link time: -X github.com/msaudit/msaudit/internal/version.Version=…
var (
	Version = "dev"
	Commit  = "unknown"
)

// String is what --version prints after the program name.
func String() string { return fmt.Sprintf("%s (commit %s)", Version, Commit) }
