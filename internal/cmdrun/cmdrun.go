// Package cmdrun runs a binary's root command the way every msaudit binary
// does: SIGINT and SIGTERM cancel its context (a worker drains, a watch
// stops), and an error is one line on stderr, prefixed with the binary's
// name, and exit status 1, or the status an ExitError carries. It is the one
// place that maps errors to exit codes; nothing below main exits.
package cmdrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// ExitError ends a command with a status other than 1, for an outcome a
// script tells apart by the status alone. Err is printed like any error.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// Main executes cmd and returns the process's exit status.
func Main(name string, cmd *cobra.Command, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, name+":", err)
	if ee, ok := errors.AsType[*ExitError](err); ok {
		return ee.Code
	}
	return 1
}
