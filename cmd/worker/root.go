package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/msaudit/msaudit/internal/envflag"
	"github.com/msaudit/msaudit/internal/realm"
	"github.com/msaudit/msaudit/internal/redisconn"
	"github.com/msaudit/msaudit/internal/worker"
)

type options struct {
	envflag.Common
	worker.Config
	MetricsAddr string
	env         *envflag.Set
}

func (o *options) Validate() error {
	if err := o.env.Err(); err != nil {
		return err
	}
	if o.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(o.MetricsAddr); err != nil {
			return fmt.Errorf("--metrics-addr %q: want host:port or :port", o.MetricsAddr)
		}
	}
	return o.Config.Validate()
}

func newRootCommand() *cobra.Command {
	o := &options{}
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Check queued addresses against the realm service",
		Long: `worker takes audit batches from the Redis queue and asks Microsoft's sign-in realm
service, for each address, whether a personal Microsoft account exists.

Run as many workers as you like, on as many machines: the per-tenant request
rate (--tenant-rate) and the optional global one (--global-rate) are shared
through Redis. Within that ceiling each tenant's rate adapts: it rises while
answers come back clean and drops at the first throttle signal from any worker.
An address that gets no answer is retried after a randomized exponential
backoff (--backoff-base, --backoff-max); after --max-attempts it is
dead-lettered (see 'enqueue deadletters' and 'enqueue requeue').

Workers need no tenant credentials: the realm service is public.`,
		Example: `  # against a local Redis and the real service
  worker --redis-url redis://127.0.0.1:6379/0 --concurrency 8 --tenant-rate 5

  # against the tenant simulator (trust its CA)
  SSL_CERT_FILE=sim-ca.pem worker --realm-url https://127.0.0.1:8443/common/userrealm`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return run(cmd.Context(), o)
		},
	}
	s := envflag.New(cmd.Flags())
	o.env = s
	o.Common.Register(s)
	s.Int(&o.Concurrency, "concurrency", "WORKER_CONCURRENCY", 10, "batches processed at once by this worker")
	s.String(&o.RealmURL, "realm-url", "REALM_URL", realm.DefaultURL, "realm endpoint")
	s.Duration(&o.RealmTimeout, "realm-timeout", "REALM_TIMEOUT", 10*time.Second, "timeout of one realm request")
	s.Float(&o.Limits.TenantRate, "tenant-rate", "TENANT_RATE", 5, "ceiling of realm requests per second per tenant, across all workers")
	s.Float(&o.Limits.GlobalRate, "global-rate", "GLOBAL_RATE", 0, "ceiling of realm requests per second over all tenants (0: none)")
	s.Float(&o.Limits.Initial, "initial-rate", "INITIAL_RATE", 1, "starting rate of a tenant whose rate is not learned yet, requests/s")
	cmd.Flags().BoolVar(&o.Limits.Adaptive, "adaptive", true, "adapt each tenant's rate to the service's throttling (false: always --tenant-rate)")
	s.Duration(&o.Limits.MaxWait, "max-wait", "MAX_WAIT", 2*time.Second, "longest a batch holds its worker slot waiting for a rate-limit slot before yielding it")
	s.Int(&o.Checker.MaxAttempts, "max-attempts", "MAX_ATTEMPTS", 8, "realm requests per address before it is dead-lettered")
	s.Duration(&o.Checker.BackoffBase, "backoff-base", "BACKOFF_BASE", 30*time.Second, "first retry delay ceiling; doubles per attempt, randomized (full jitter)")
	s.Duration(&o.Checker.BackoffMax, "backoff-max", "BACKOFF_MAX", 15*time.Minute, "cap of the retry delay")
	s.String(&o.MetricsAddr, "metrics-addr", "METRICS_ADDR", ":9090", "serve /metrics, /healthz and /readyz here (empty: off)")
	s.Duration(&o.ShutdownTimeout, "shutdown-timeout", "SHUTDOWN_TIMEOUT", 20*time.Second, "on SIGTERM, wait this long for running batches (keep below Kubernetes' terminationGracePeriodSeconds)")
	return cmd
}

func run(ctx context.Context, o *options) error {
	log, err := o.Logger()
	if err != nil {
		return err
	}
	defer log.Sync()
	rdb, err := redisconn.Open(ctx, o.RedisURL, o.Concurrency+10)
	if err != nil {
		return err
	}
	defer rdb.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	w, err := worker.New(rdb, o.Config, log, reg)
	if err != nil {
		return err
	}
	log.Info("worker started", zap.String("redis", redisconn.Redact(o.RedisURL)), zap.Int("concurrency", o.Concurrency),
		zap.Float64("tenant_rate", o.Limits.TenantRate), zap.Float64("global_rate", o.Limits.GlobalRate))

	var srv *http.Server
	if o.MetricsAddr != "" {
		srv = metricsServer(o.MetricsAddr, reg, w)
		ln, err := net.Listen("tcp", o.MetricsAddr)
		if err != nil {
			w.Shutdown()
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server", zap.Error(err))
			}
		}()
	}
	<-ctx.Done()
	log.Info("shutting down", zap.Duration("timeout", o.ShutdownTimeout))
	w.Shutdown()
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
	return nil
}

func metricsServer(addr string, reg *prometheus.Registry, w *worker.Worker) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(rw http.ResponseWriter, _ *http.Request) { rw.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(rw http.ResponseWriter, _ *http.Request) {
		if err := w.Ready(); err != nil {
			http.Error(rw, "redis unreachable", http.StatusServiceUnavailable)
			return
		}
		rw.Write([]byte("ok\n"))
	})
	return &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
}
