// Package cliflags defines the command-line flags that more than one command
// shares — the Redis connection, logging, and the worker's checking settings
// — together with their environment variables. It is the one place those
// names and defaults are spelled, so that 'worker' and 'enqueue local' cannot
// drift apart. The packages that do the work (redisconn, worker, ratelimit,
// checker) take plain configuration structs and know no flags.
package cliflags

import (
	"errors"
	"fmt"

	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/msaudit/msaudit/internal/envflag"
	"github.com/msaudit/msaudit/internal/logging"
	"github.com/msaudit/msaudit/internal/redisconn"
	"github.com/msaudit/msaudit/internal/worker"
)

// Common are the flags of both binaries: where Redis is and how to log.
type Common struct {
	Redis     redisconn.Options
	LogLevel  string
	LogFormat string
}

// Register defines the common flags on fs. The Redis variables keep their
// conventional names; the logging ones carry the product's prefix.
func (c *Common) Register(fs *pflag.FlagSet) {
	fs.StringVar(&c.Redis.URL, "redis-url", redisconn.DefaultURL,
		"Redis to use: redis://[user[:password]@]host:port/db, or rediss:// for TLS; with Sentinel (high availability), "+
			"redis-sentinel://[user[:password]@]host1:port1,host2:port2/PRIMARY/db (rediss-sentinel:// for TLS), PRIMARY being the name the Sentinels monitor")
	fs.StringVar(&c.Redis.PasswordFile, "redis-password-file", "", "file holding the Redis password, instead of putting it in the URL")
	fs.StringVar(&c.Redis.CAFile, "redis-ca-file", "", "PEM file of the CA that signed the Redis server's certificate (rediss:// and rediss-sentinel://; default: the system pool)")
	fs.StringVar(&c.Redis.CertFile, "redis-cert-file", "", "client certificate (PEM) for mutual TLS with Redis")
	fs.StringVar(&c.Redis.KeyFile, "redis-key-file", "", "key (PEM) of --redis-cert-file")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", "console", "log format: json or console")
	for _, f := range []string{"redis-url", "redis-password-file", "redis-ca-file", "redis-cert-file", "redis-key-file"} {
		envflag.BindTo(fs, f, envflagName(f))
	}
	envflag.Bind(fs, "log-level", "log-format")
}

// envflagName is REDIS_URL for --redis-url: the conventional spelling.
func envflagName(flag string) string { return envflag.Name(flag)[len(envflag.Prefix):] }

// Logger builds the process logger from the flags (to stderr).
func (c *Common) Logger() (*zap.Logger, error) {
	log, err := logging.New(c.LogLevel, c.LogFormat, nil)
	var oe *logging.OptionError
	if errors.As(err, &oe) {
		return nil, fmt.Errorf("--log-%s %q: want %s", oe.Option, oe.Value, oe.Want)
	}
	return log, err
}

// checkingFlags are the flags of how addresses are checked, which 'worker'
// and 'enqueue local' both take.
var checkingFlags = []string{
	"concurrency", "realm-url", "realm-timeout", "tenant-rate", "global-rate", "initial-rate",
	"adaptive", "max-wait", "max-attempts", "backoff-base", "backoff-max",
}

// RegisterChecking defines the checking settings on fs, bound to c, with
// c's current values (worker.DefaultConfig() normally) as the defaults.
func RegisterChecking(fs *pflag.FlagSet, c *worker.Config) {
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "batches checked at once by this process")
	fs.StringVar(&c.RealmURL, "realm-url", c.RealmURL, "realm endpoint")
	fs.DurationVar(&c.RealmTimeout, "realm-timeout", c.RealmTimeout, "timeout of one realm request")
	fs.Float64Var(&c.Limits.TenantRate, "tenant-rate", c.Limits.TenantRate, "ceiling of realm requests per second per tenant, across all workers")
	fs.Float64Var(&c.Limits.GlobalRate, "global-rate", c.Limits.GlobalRate, "ceiling of realm requests per second over all tenants, e.g. for one egress IP (0: none)")
	fs.Float64Var(&c.Limits.Initial, "initial-rate", c.Limits.Initial, "starting rate of a tenant whose rate is not learned yet, requests/s")
	fs.BoolVar(&c.Limits.Adaptive, "adaptive", c.Limits.Adaptive, "adapt each tenant's rate to the service's throttling (false: always --tenant-rate)")
	fs.DurationVar(&c.Limits.MaxWait, "max-wait", c.Limits.MaxWait, "longest a batch holds its slot waiting for a rate-limit slot before yielding it")
	fs.IntVar(&c.Checker.MaxAttempts, "max-attempts", c.Checker.MaxAttempts, "realm requests per address before it is dead-lettered")
	fs.DurationVar(&c.Checker.BackoffBase, "backoff-base", c.Checker.BackoffBase, "first retry delay ceiling; doubles per attempt, randomized (full jitter)")
	fs.DurationVar(&c.Checker.BackoffMax, "backoff-max", c.Checker.BackoffMax, "cap of the retry delay")
	envflag.Bind(fs, checkingFlags...)
}

// RegisterProcess defines the flags of a long-running worker process:
// graceful stop and the metrics and probe endpoint.
func RegisterProcess(fs *pflag.FlagSet, c *worker.Config, metricsAddr *string) {
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout,
		"on SIGTERM, the longest to wait for running batches to hand back their work (keep below Kubernetes' terminationGracePeriodSeconds)")
	fs.StringVar(metricsAddr, "metrics-addr", ":9090", "serve /metrics, /healthz, /readyz and /scaler here (empty: off)")
	fs.DurationVar(&c.ReconcileEvery, "reconcile-every", c.ReconcileEvery,
		"how often one of the workers repairs the open runs that made no progress for as long, as 'enqueue reconcile' does (0: never)")
	envflag.Bind(fs, "shutdown-timeout", "metrics-addr", "reconcile-every")
}
