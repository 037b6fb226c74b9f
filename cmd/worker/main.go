// Command worker consumes audit tasks from Redis and checks addresses with
// the realm service under per-tenant rate limits. Scale it out freely: the
// limits are shared through Redis.
package main

import (
	"os"
	"runtime"

	"github.com/msaudit/msaudit/internal/cmdrun"
	"github.com/msaudit/msaudit/internal/worker"
)

func main() {
	if _, set := os.LookupEnv("GOMAXPROCS"); !set {
		runtime.GOMAXPROCS(worker.Procs)
	}
	os.Exit(cmdrun.Main("worker", newRootCommand(os.LookupEnv), os.Stderr))
}
