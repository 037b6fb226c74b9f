// Command enqueue is the operator's CLI: it reads a tenant through Microsoft
// Graph, queues its addresses for the workers, and reports on runs.
package main

import (
	"os"

	"github.com/msaudit/msaudit/internal/cmdrun"
)

func main() {
	os.Exit(cmdrun.Main("enqueue", newRootCommand(os.Stdout, os.Stderr, os.LookupEnv), os.Stderr))
}
