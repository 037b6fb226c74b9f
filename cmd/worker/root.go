package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/msaudit/msaudit/internal/cliflags"
	"github.com/msaudit/msaudit/internal/envflag"
	"github.com/msaudit/msaudit/internal/redisconn"
	"github.com/msaudit/msaudit/internal/runevents"
	"github.com/msaudit/msaudit/internal/version"
	"github.com/msaudit/msaudit/internal/worker"
)

type options struct {
	cliflags.Common
	worker.Config
	MetricsAddr       string
	WebhookURL        string
	WebhookURLFile    string
	WebhookSecretFile string
}

func (o *options) Validate() error {
	if o.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(o.MetricsAddr); err != nil {
			return fmt.Errorf("--metrics-addr %q: want host:port or :port", o.MetricsAddr)
		}
	}
	if err := o.webhook(); err != nil {
		return err
	}
	return o.Config.Validate()
}

// webhook sets o.Events.Webhook from the flags. Neither the URL nor the
// secret is quoted in an error: an incoming-webhook URL holds a token.
func (o *options) webhook() error {
	url := o.WebhookURL
	switch {
	case url != "" && o.WebhookURLFile != "":
		return errors.New("--webhook-url and --webhook-url-file: give one")
	case o.WebhookURLFile != "":
		b, err := os.ReadFile(o.WebhookURLFile)
		if err != nil {
			return fmt.Errorf("--webhook-url-file: %w", err)
		}
		url = strings.TrimSpace(string(b))
	case url == "":
		if o.WebhookSecretFile != "" {
			return errors.New("--webhook-secret-file: only with --webhook-url or --webhook-url-file")
		}
		return nil
	}
	var secret []byte
	if o.WebhookSecretFile != "" {
		b, err := os.ReadFile(o.WebhookSecretFile)
		if err != nil {
			return fmt.Errorf("--webhook-secret-file: %w", err)
		}
		if secret = bytes.TrimSpace(b); len(secret) == 0 {
			return fmt.Errorf("--webhook-secret-file %s: empty", o.WebhookSecretFile)
		}
	}
	w, err := runevents.NewWebhook(url, secret, webhookTimeout)
	if err != nil {
		return fmt.Errorf("--webhook-url: %w", err)
	}
	o.Events.Webhook = w
	return nil
}

// webhookTimeout bounds one delivery.
const webhookTimeout = 10 * time.Second

func newRootCommand(lookupEnv func(string) (string, bool)) *cobra.Command {
	return newCommand(&options{Config: worker.DefaultConfig()}, lookupEnv)
}

// newCommand builds the command over o, which holds the defaults and
// receives the flags.
func newCommand(o *options, lookupEnv func(string) (string, bool)) *cobra.Command {
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

On SIGTERM the worker turns not ready at once, stops taking batches, lets
the requests in flight finish, records their answers and hands the rest of
each batch back to the queue; --shutdown-timeout is only the upper bound.

Every flag can also be set by the environment variable named after it; a
flag given on the command line wins. Workers need no tenant credentials: the
realm service is public.

A worker mostly waits, so it runs Go code on one thread (GOMAXPROCS=1) unless
the GOMAXPROCS environment variable says otherwise.`,
		Example: `  # against a local Redis and the real service
  worker --redis-url redis://127.0.0.1:6379/0 --concurrency 8 --tenant-rate 5

  # the same, configured by the environment (as in Kubernetes)
  REDIS_URL=rediss://redis.example:6380/0 REDIS_PASSWORD_FILE=/etc/redis/password \
    MSAUDIT_TENANT_RATE=5 worker

  # against the tenant simulator (trust its CA)
  SSL_CERT_FILE=sim-ca.pem worker --realm-url https://127.0.0.1:8443/common/userrealm`,
		Version:       version.String(),
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := envflag.Apply(cmd.Flags(), lookupEnv); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return run(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	o.Common.Register(f)
	cliflags.RegisterChecking(f, &o.Config)
	cliflags.RegisterProcess(f, &o.Config, &o.MetricsAddr)
	f.StringVar(&o.WebhookURL, "webhook-url", "", "POST run events here (JSON; a Slack or Teams incoming webhook works)")
	f.StringVar(&o.WebhookURLFile, "webhook-url-file", "", "read --webhook-url from this file: an incoming-webhook URL is a credential")
	f.StringVar(&o.WebhookSecretFile, "webhook-secret-file", "", "sign each event body with the secret in this file (X-Msaudit-Signature: sha256=<HMAC>)")
	f.DurationVar(&o.Events.StallAfter, "stall-after", o.Events.StallAfter, "an open, unpaused run with no answer for this long is stalled: event run.stalled (0: never)")
	envflag.Bind(f, "webhook-url", "webhook-url-file", "webhook-secret-file", "stall-after")
	return cmd
}

func run(ctx context.Context, o *options) error {
	log, err := o.Logger()
	if err != nil {
		return err
	}
	defer log.Sync()
	rdb, err := redisconn.Open(ctx, o.Redis, o.Concurrency+10)
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
	log.Info("worker started", zap.String("redis", redisconn.Redact(o.Redis.URL)), zap.Int("concurrency", o.Concurrency),
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
		// Ready's errors are fit for the body: what is wrong, nothing of
		// the connection.
		if err := w.Ready(); err != nil {
			http.Error(rw, err.Error(), http.StatusServiceUnavailable)
			return
		}
		rw.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/scaler", func(rw http.ResponseWriter, r *http.Request) {
		res, err := w.Scale(r.Context())
		if err != nil {
			http.Error(rw, "redis unreachable", http.StatusServiceUnavailable)
			return
		}
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(res)
	})
	return &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
}
