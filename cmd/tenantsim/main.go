// Command tenantsim serves a simulated Microsoft 365 tenant (authority,
// Graph and the userrealm service) over local HTTPS for tests and demos.
package main

import (
	"os"

	"github.com/msaudit/msaudit/internal/cmdrun"
)

func main() {
	os.Exit(cmdrun.Main("tenantsim", newRootCommand(os.Stdout, os.Stderr, os.Getenv), os.Stderr))
}
