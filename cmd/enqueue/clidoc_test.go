package main

import (
	"io"
	"testing"

	"github.com/msaudit/msaudit/internal/clidoc"
)

// docs/cli.md documents every command of enqueue and every flag, with its
// default and environment variable.
func TestCLIDoc(t *testing.T) {
	t.Parallel()
	noEnv := func(string) (string, bool) { return "", false }
	clidoc.Check(t, newRootCommand(io.Discard, io.Discard, noEnv), clidoc.Options{
		// The root's flags are the global ones, shared with the worker.
		Sections: map[string]string{"enqueue": "Flags of both binaries"},
		// local takes the flags of submit and the checking flags of worker.
		Also: map[string][]string{"enqueue local": {"enqueue submit", "worker"}},
	})
}
