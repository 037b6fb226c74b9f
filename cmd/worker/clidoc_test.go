package main

import (
	"testing"

	"github.com/msaudit/msaudit/internal/clidoc"
)

// docs/cli.md documents every flag of worker, with its default and
// environment variable.
func TestCLIDoc(t *testing.T) {
	t.Parallel()
	noEnv := func(string) (string, bool) { return "", false }
	clidoc.Check(t, newRootCommand(noEnv), clidoc.Options{
		// The Redis and logging flags are documented once for both binaries.
		Also: map[string][]string{"worker": {"Flags of both binaries"}},
	})
}
