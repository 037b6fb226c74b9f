package main

import (
	"io"
	"testing"

	"github.com/msaudit/msaudit/internal/clidoc"
)

// docs/cli.md documents every flag of tenantsim, with its default.
func TestCLIDoc(t *testing.T) {
	t.Parallel()
	noEnv := func(string) string { return "" }
	clidoc.Check(t, newRootCommand(io.Discard, io.Discard, noEnv), clidoc.Options{})
}
