// Command worker consumes audit tasks from Redis and checks addresses with
// the realm service under per-tenant rate limits. Scale it out freely: the
// limits are shared through Redis.
package main

import (
	"os"

	"github.com/msaudit/msaudit/internal/cmdrun"
)

func main() {
	os.Exit(cmdrun.Main("worker", newRootCommand(os.LookupEnv), os.Stderr))
}
