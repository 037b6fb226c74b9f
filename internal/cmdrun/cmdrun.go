// Package cmdrun runs a binary's root command the way every msaudit binary
// does: SIGINT and SIGTERM cancel its context (a worker drains, a watch
// stops), and an error is one line on stderr, prefixed with the binary's
// name, and exit status 1. It is the one place that maps errors to exit
// codes; nothing below main exits.
package cmdrun

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Main executes cmd and returns the process's exit status.
func Main(name string, cmd *cobra.Command, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, name+":", err)
		return 1
	}
	return 0
}
