// Command tenantsim serves a simulated Microsoft 365 tenant (authority,
// Graph and the userrealm service) over local HTTPS for tests and demos.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCommand(os.Stdout, os.Stderr, os.Getenv).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tenantsim:", err)
		os.Exit(1)
	}
}
