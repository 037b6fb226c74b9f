package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/msaudit/msaudit/internal/tenantsim"
)

const (
	secretEnv       = "TENANTSIM_CLIENT_SECRET"
	defaultClientID = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"
)

const longHelp = `tenantsim serves a simulated Microsoft 365 tenant on one local HTTPS port:
  - an Entra ID authority (OpenID discovery; client-credentials tokens by secret,
    certificate assertion or federated token; device-code sign-in with delegated
    tokens; an App Service style managed identity endpoint at /msi/token),
  - Microsoft Graph v1.0 (/domains, /users with $select, $filter, $top, $count, paging),
  - the public userrealm service, with a token-bucket throttle and a penalty window,
    or any throttle of the model family (--realm-model; docs/throttle-models.md)
    (shared by all requests, or per tenant with --realm-scope per-tenant, the tenant
    being told by the address's domain: the simulated tenant's domains are one tenant,
    any other domain is a tenant of its own), a capacity schedule (--realm-schedule,
    counted from the first realm request), answer latency (--realm-latency,
    --realm-latency-tail) and injectable faults.
The directory is generated from --seed and --users; --ground-truth-out writes what a
correct "all addresses" run must find. It is a test double: keep it on loopback and
never give it real credentials.

The client secret comes from $TENANTSIM_CLIENT_SECRET or --client-secret-file (the
file wins); it is never printed. When ready, one JSON line goes to stdout:
  {"url":…,"graph_url":…,"authority_host":…,"realm_url":…,"tenant_id":…,"client_id":…,
   "ca_file":…,"users":N,"addresses":M}
and the simulator serves until SIGINT or SIGTERM.

With the enqueuer and a worker:
  export TENANTSIM_CLIENT_SECRET=$(openssl rand -hex 16)
  tenantsim --users 2000 --ca-out /tmp/sim-ca.pem --ground-truth-out /tmp/truth.json \
      > /tmp/sim.json &
  # once /tmp/sim.json has its line:
  export SSL_CERT_FILE=/tmp/sim-ca.pem   # trust the simulator's CA
  AZURE_CLIENT_SECRET=$TENANTSIM_CLIENT_SECRET enqueue submit --auth client-secret \
      --tenant-id "$(jq -r .tenant_id /tmp/sim.json)" \
      --client-id "$(jq -r .client_id /tmp/sim.json)" \
      --graph-url "$(jq -r .graph_url /tmp/sim.json)" \
      --authority-host "$(jq -r .authority_host /tmp/sim.json)"
  worker --realm-url "$(jq -r .realm_url /tmp/sim.json)" --tenant-rate 20
  # then compare "enqueue report RUN --format json" with /tmp/truth.json

Admin endpoints (unauthenticated): GET /_sim/stats returns the counters (realm_tenants
holds them per tenant, realm_rate is the rate in effect; ?per_address=false leaves out
the per-address counts); GET and PUT /_sim/realm read and replace the realm model as
JSON (snake_case fields, durations as Go duration strings such as "250ms" or as integer
nanoseconds), e.g.
  curl --cacert /tmp/sim-ca.pem -X PUT https://127.0.0.1:8443/_sim/realm \
       -d '{"rate":20,"penalty":"5s","faults":{"code4":0.01}}'
  a whole model: {"rate":40,"burst":0,"penalty":"2s","throttle_http":false,
   "scope":"per-tenant","schedule":[{"after":"2m","rate":15},{"after":"4m","rate":40}],
   "latency":{"min":"100ms","max":"400ms","tail_share":0.02,"tail_min":"1s","tail_max":"2s"},
   "faults":{...},"fail_addresses":[...]}
GET and PUT /_sim/renamed read and replace the consumer accounts renamed since the
tenant was generated ({"addresses":[...]}), for re-audit experiments:
  curl --cacert /tmp/sim-ca.pem -X PUT https://127.0.0.1:8443/_sim/renamed \
       -d '{"addresses":["adele.vance0@contoso.com"]}'`

// options are the command's flags after parsing.
type options struct {
	listen             string
	users              int
	seed               int64
	clientID           string
	clientSecretFile   string
	envSecret          string // from $TENANTSIM_CLIENT_SECRET
	caOut              string
	groundTruthOut     string
	clientCertFile     string
	federatedTokenFile string
	devicePendingPolls int
	miHeader           string
	roles              []string
	rolesSet           bool
	pageSize           int
	graphThrottleEvery int
	graphFailAfter     int
	realmRate          float64
	realmBurst         int
	realmPenalty       time.Duration
	realmModel         string
	realmThrottle      string
	realmScope         string
	realmSchedule      string
	realmLatency       string
	realmLatencyTail   string
	faultTimeout       float64
	faultTimeoutHang   time.Duration
	fault5xx           float64
	faultBadJSON       float64
	faultCode4         float64
	faultMissingFlag   float64
	failAddressesFile  string
	renamedFile        string
	hostileUsers       bool
	verifyDomains      []string
	logLevel           string
}

// Validate checks the flags without touching the file system.
func (o *options) Validate() error {
	switch {
	case o.listen == "":
		return errors.New("--listen must not be empty")
	case o.users < 0:
		return fmt.Errorf("--users %d is negative", o.users)
	case strings.TrimSpace(o.clientID) == "":
		return errors.New("--client-id must not be empty")
	case o.clientSecretFile == "" && o.envSecret == "" && o.clientCertFile == "" && o.federatedTokenFile == "":
		return fmt.Errorf("no client credential: set $%s or --client-secret-file (or --client-certificate-file, --federated-token-file)", secretEnv)
	case o.devicePendingPolls < 0:
		return fmt.Errorf("--device-code-pending-polls %d is negative", o.devicePendingPolls)
	case o.pageSize < 0 || o.pageSize > 999:
		return fmt.Errorf("--page-size %d outside 1..999 (0 = default 100)", o.pageSize)
	case o.graphFailAfter < 0:
		return fmt.Errorf("--graph-fail-after-pages %d is negative", o.graphFailAfter)
	case o.graphThrottleEvery < 0:
		return fmt.Errorf("--graph-throttle-every %d is negative", o.graphThrottleEvery)
	case o.realmThrottle != "code2" && o.realmThrottle != "http429":
		return fmt.Errorf("--realm-throttle %q: want code2 or http429", o.realmThrottle)
	}
	if _, err := zapcore.ParseLevel(o.logLevel); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	cfg, err := o.realm(nil)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("realm flags: %w", err)
	}
	return nil
}

func newRootCommand(stdout, stderr io.Writer, getenv func(string) string) *cobra.Command {
	o := &options{}
	cmd := &cobra.Command{
		Use:           "tenantsim",
		Short:         "Serve a simulated Microsoft 365 tenant (authority, Graph, userrealm) over local HTTPS",
		Long:          longHelp,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.envSecret = getenv(secretEnv)
			o.rolesSet = cmd.Flags().Changed("roles")
			if err := o.Validate(); err != nil {
				return err
			}
			log, err := newLogger(o.logLevel, stderr)
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			return runServe(cmd.Context(), o, stdout, log)
		},
	}
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", "127.0.0.1:8443", "address to serve HTTPS on (port 0 picks a free one)")
	f.IntVar(&o.users, "users", 2000, "number of users to generate")
	f.Int64Var(&o.seed, "seed", 1, "seed of the generated directory and of the fault draws")
	f.StringVar(&o.clientID, "client-id", defaultClientID, "application (client) ID the authority accepts")
	f.StringVar(&o.clientSecretFile, "client-secret-file", "", "file holding the client secret (else $"+secretEnv+")")
	f.StringVar(&o.clientCertFile, "client-certificate-file", "", "PEM file of the app's registered certificate(s): certificate client assertions signed with their keys are accepted")
	f.StringVar(&o.federatedTokenFile, "federated-token-file", "", "file holding the federated (workload identity) token accepted as client assertion")
	f.IntVar(&o.devicePendingPolls, "device-code-pending-polls", 1, "token polls of a device code answered authorization_pending before it is approved")
	f.StringVar(&o.miHeader, "managed-identity-header", "", "enable the App Service style managed identity endpoint /msi/token, expecting this X-IDENTITY-HEADER value")
	f.StringVar(&o.caOut, "ca-out", "", "write the simulator's CA certificate (PEM) to this file")
	f.StringVar(&o.groundTruthOut, "ground-truth-out", "", "write the ground truth (JSON) to this file")
	f.StringSliceVar(&o.roles, "roles", nil, "app roles granted in tokens, comma-separated (default User.Read.All,Domain.Read.All; \"\" grants none)")
	f.IntVar(&o.pageSize, "page-size", 100, "users page size when the client sends no $top (1..999)")
	f.IntVar(&o.graphFailAfter, "graph-fail-after-pages", 0, "after this many users pages, answer every users page with 500 until PUT /_sim/graph {\"fail_after_pages\":0} (0 = never)")
	f.IntVar(&o.graphThrottleEvery, "graph-throttle-every", 0, "answer every Nth users page request with 429 once (0 = never)")
	f.Float64Var(&o.realmRate, "realm-rate", 0, "requests/s the realm service sustains (0 = unlimited)")
	f.IntVar(&o.realmBurst, "realm-burst", 0, "realm token-bucket capacity (0 = max(1, the rate in effect))")
	f.DurationVar(&o.realmPenalty, "realm-penalty", 0, "throttle everything (of the tenant, per-tenant) for this long after an overshoot, extended by each request during it")
	f.StringVar(&o.realmModel, "realm-model", "", "throttle like this member of the throttle model family, KIND[-ra]-SEED (e.g. penalty-extend-ra-4; docs/throttle-models.md), at --realm-rate and --realm-schedule, instead of the token bucket")
	f.StringVar(&o.realmScope, "realm-scope", tenantsim.ScopePerSource, "what the realm throttle counts: per-source (one bucket for all requests) or per-tenant (a bucket per tenant, told by the address's domain)")
	f.StringVar(&o.realmSchedule, "realm-schedule", "", "realm rate changes AFTER:RATE,..., counted from the first realm request, e.g. 2m:15,4m:40")
	f.StringVar(&o.realmLatency, "realm-latency", "", "realm answer delay MIN-MAX, uniform, e.g. 100ms-400ms (default none)")
	f.StringVar(&o.realmLatencyTail, "realm-latency-tail", "", "slow tail SHARE:MIN-MAX replacing --realm-latency for that share of requests, e.g. 0.02:1s-2s")
	f.StringVar(&o.realmThrottle, "realm-throttle", "code2", "how throttling shows: code2 (200 with MicrosoftAccount 2) or http429")
	f.Float64Var(&o.faultTimeout, "fault-timeout", 0, "probability that a realm request hangs (then 504)")
	f.DurationVar(&o.faultTimeoutHang, "fault-timeout-hang", 30*time.Second, "how long a timeout fault hangs unless the client gives up")
	f.Float64Var(&o.fault5xx, "fault-5xx", 0, "probability of HTTP 500/503")
	f.Float64Var(&o.faultBadJSON, "fault-bad-json", 0, "probability of a truncated JSON body")
	f.Float64Var(&o.faultCode4, "fault-code4", 0, "probability of MicrosoftAccount 4 (service failure)")
	f.Float64Var(&o.faultMissingFlag, "fault-missing-flag", 0, "probability of a body without IsMicrosoftAccountSet")
	f.StringVar(&o.failAddressesFile, "fail-addresses-file", "", "addresses (one a line) that always get HTTP 500")
	f.StringVar(&o.renamedFile, "renamed-file", "", "consumer accounts (addresses, one a line) renamed since: the realm service answers they have none; PUT /_sim/renamed changes the set")
	f.StringSliceVar(&o.verifyDomains, "verify-domain", nil, "mark this registered domain verified (repeatable; e.g. unverified.example, whose aliases some users have): the tenant as it is after an administrator verified it")
	f.BoolVar(&o.hostileUsers, "hostile-users", false, "add three users whose display names are markup and whose addresses start with =, + and -, each with a consumer account")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error (logs go to stderr as JSON)")
	return cmd
}

// readyLine is what scripts parse from stdout once the simulator serves.
type readyLine struct {
	URL           string `json:"url"`
	GraphURL      string `json:"graph_url"`
	AuthorityHost string `json:"authority_host"`
	RealmURL      string `json:"realm_url"`
	TenantID      string `json:"tenant_id"`
	ClientID      string `json:"client_id"`
	CAFile        string `json:"ca_file"`
	Users         int    `json:"users"`
	Addresses     int    `json:"addresses"`
}

// runServe generates the tenant, serves it until ctx ends, and prints the
// ready line once the listener is up.
func runServe(ctx context.Context, o *options, stdout io.Writer, log *zap.Logger) error {
	secret := o.envSecret
	creds, err := o.readCredentials()
	if err != nil {
		return err
	}
	if o.clientSecretFile != "" {
		b, err := os.ReadFile(o.clientSecretFile)
		if err != nil {
			return fmt.Errorf("read client secret: %w", err)
		}
		if secret = strings.TrimSpace(string(b)); secret == "" {
			return fmt.Errorf("client secret file %s is empty", o.clientSecretFile)
		}
	}
	var fail []string
	if o.failAddressesFile != "" {
		var err error
		if fail, err = readLines(o.failAddressesFile); err != nil {
			return fmt.Errorf("read fail addresses: %w", err)
		}
	}
	var roles []string
	if o.rolesSet {
		roles = make([]string, 0, len(o.roles))
		for _, r := range o.roles {
			if r = strings.TrimSpace(r); r != "" {
				roles = append(roles, r)
			}
		}
	}

	var renamed []string
	if o.renamedFile != "" {
		if renamed, err = readLines(o.renamedFile); err != nil {
			return fmt.Errorf("read renamed addresses: %w", err)
		}
	}
	realm, err := o.realm(fail)
	if err != nil {
		return err
	}
	tenant := tenantsim.Generate(o.seed, o.users)
	for _, d := range o.verifyDomains {
		if err := tenant.Verify(d); err != nil {
			return fmt.Errorf("--verify-domain: %w", err)
		}
	}
	if o.hostileUsers {
		tenant.AddHostileUsers()
	}
	truth := tenant.GroundTruth().WithRenamed(renamed)
	srv, err := tenantsim.NewServer(tenant, tenantsim.Config{
		ClientID:               o.clientID,
		ClientSecret:           secret,
		ClientCertificates:     creds.certs,
		FederatedToken:         creds.federated,
		DeviceCodePendingPolls: o.devicePendingPolls,
		ManagedIdentityHeader:  o.miHeader,
		Roles:                  roles,
		PageSize:               o.pageSize,
		GraphThrottleEvery:     o.graphThrottleEvery,
		GraphFailAfterPages:    o.graphFailAfter,
		Realm:                  realm,
		Renamed:                renamed,
		Seed:                   o.seed,
	}, log)
	if err != nil {
		return err
	}
	caFile := ""
	if o.caOut != "" {
		if caFile, err = writeFile(o.caOut, srv.CAPEM()); err != nil {
			return fmt.Errorf("write CA: %w", err)
		}
	}
	if o.groundTruthOut != "" {
		if err := writeTruth(o.groundTruthOut, truth); err != nil {
			return fmt.Errorf("write ground truth: %w", err)
		}
	}
	addresses := len(truth.Addresses)
	truth = tenantsim.GroundTruth{}
	// The truth of a large tenant is hundreds of megabytes that are garbage
	// from here on; hand them back so that the simulator does not skew the
	// memory figures of the processes benchmarked next to it.
	debug.FreeOSMemory()
	if err := srv.Start(o.listen); err != nil {
		return err
	}
	line, err := json.Marshal(readyLine{
		URL: srv.URL(), GraphURL: srv.GraphURL(), AuthorityHost: srv.URL() + "/",
		RealmURL: srv.URL() + "/common/userrealm", TenantID: tenant.ID, ClientID: o.clientID,
		CAFile: caFile, Users: len(tenant.Users), Addresses: addresses,
	})
	if err != nil {
		_ = srv.Close()
		return fmt.Errorf("encode ready line: %w", err)
	}
	if _, err := fmt.Fprintf(stdout, "%s\n", line); err != nil {
		_ = srv.Close()
		return fmt.Errorf("print ready line: %w", err)
	}
	<-ctx.Done()
	log.Info("shutting down")
	return srv.Close()
}

type credentials struct {
	certs     []*x509.Certificate
	federated string
}

// readCredentials reads the certificate and federated token files.
func (o *options) readCredentials() (credentials, error) {
	var c credentials
	if o.clientCertFile != "" {
		b, err := os.ReadFile(o.clientCertFile)
		if err != nil {
			return c, fmt.Errorf("read client certificate: %w", err)
		}
		for block, rest := pem.Decode(b); block != nil; block, rest = pem.Decode(rest) {
			if block.Type != "CERTIFICATE" {
				continue // a PEM that also holds the key is fine
			}
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return c, fmt.Errorf("client certificate %s: %w", o.clientCertFile, err)
			}
			c.certs = append(c.certs, cert)
		}
		if len(c.certs) == 0 {
			return c, fmt.Errorf("client certificate %s holds no PEM certificate", o.clientCertFile)
		}
	}
	if o.federatedTokenFile != "" {
		b, err := os.ReadFile(o.federatedTokenFile)
		if err != nil {
			return c, fmt.Errorf("read federated token: %w", err)
		}
		if c.federated = strings.TrimSpace(string(b)); c.federated == "" {
			return c, fmt.Errorf("federated token file %s is empty", o.federatedTokenFile)
		}
	}
	return c, nil
}

func newLogger(level string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(w), lvl)
	return zap.New(core).Named("tenantsim"), nil
}
