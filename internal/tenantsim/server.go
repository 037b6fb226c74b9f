package tenantsim

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// DefaultRoles are the app roles granted when Config.Roles is nil: the
// least privileges the audit needs.
var DefaultRoles = []string{"User.Read.All", "Domain.Read.All"}

// Config is the simulator's behaviour.
type Config struct {
	// ClientID is the one app registration the authority knows.
	// ClientSecret, ClientCertificates and FederatedToken are its client
	// credentials; at least one is required. Device-code sign-in needs
	// none (the app is then a public client).
	ClientID, ClientSecret string
	// ClientCertificates are the certificates registered on the app: a
	// client_assertion signed with one of their keys (RS256 or PS256,
	// x5t or x5t#S256, optional x5c whose leaf must match) is accepted.
	ClientCertificates []*x509.Certificate
	// FederatedToken is the workload identity token (the content of the
	// projected service account token file) accepted as client_assertion.
	FederatedToken string
	// DeviceCodePendingPolls is how many token polls of a device code are
	// answered authorization_pending before it counts as approved.
	DeviceCodePendingPolls int
	// ManagedIdentityHeader, when set, enables GET /msi/token, an App
	// Service style managed identity endpoint expecting this value in
	// X-IDENTITY-HEADER (see serveManagedIdentity).
	ManagedIdentityHeader string
	// Roles are the app roles granted in tokens; nil means DefaultRoles, an
	// empty non-nil slice grants none.
	Roles []string
	// PageSize is the users page size when no $top is given (default 100).
	PageSize int
	// GraphThrottleEvery > 0 makes every Nth /users page request answer 429
	// with Retry-After: 1; the repeated request for that page succeeds.
	GraphThrottleEvery int
	// GraphFailAfterPages > 0 makes every users page request after that
	// many pages were served answer 500, until PUT /_sim/graph lifts it: a
	// Graph outage in the middle of an enumeration.
	GraphFailAfterPages int
	Realm               RealmConfig
	// Renamed are consumer accounts renamed since the tenant was generated:
	// the realm service answers that they have none (see /_sim/renamed).
	Renamed []string
	// Seed seeds the fault draws.
	Seed int64
}

const (
	defaultPageSize = 100
	maxPageSize     = 999
)

// Stats is a snapshot of what the simulator has served.
type Stats struct {
	RealmRequests  int64 `json:"realm_requests"`
	RealmAnswered  int64 `json:"realm_answered"`
	RealmThrottled int64 `json:"realm_throttled"`
	RealmFaults    int64 `json:"realm_faults"`
	// RealmReasked counts real answers (0 or 1) given again for an address
	// already answered: checks whose answer was lost and that were asked again.
	RealmReasked int64 `json:"realm_reasked"`
	// RealmTenants are the realm counters per tenant (see
	// ScopePerTenant for how a request's tenant is told): the simulated
	// tenant under its ID, any other domain under its name.
	RealmTenants map[string]RealmTenantStats `json:"realm_tenants"`
	// RealmRate is the realm rate in effect (0 = unlimited), which the
	// schedule changes.
	RealmRate float64 `json:"realm_rate"`
	// RealmScheduleStart is when the schedule's clock started: the first
	// realm request since the throttle model was set; absent before.
	RealmScheduleStart *time.Time `json:"realm_schedule_start,omitempty"`
	// PerAddress counts realm requests per lower-cased address, whatever
	// their outcome.
	PerAddress    map[string]int64 `json:"per_address"`
	GraphRequests int64            `json:"graph_requests"`
	// UserPages counts successful serves of each users page, keyed by its
	// $skiptoken or "first".
	UserPages    map[string]int64 `json:"user_pages"`
	TokensIssued int64            `json:"tokens_issued"`
	// Client assertions accepted, by kind; WithChain counts certificate
	// assertions that carried an x5c chain.
	AssertionsCertificate int64 `json:"assertions_certificate"`
	AssertionsWithChain   int64 `json:"assertions_with_chain"`
	AssertionsFederated   int64 `json:"assertions_federated"`
}

// RealmTenantStats are one tenant's realm counters.
type RealmTenantStats struct {
	Requests  int64 `json:"requests"`
	Answered  int64 `json:"answered"`
	Throttled int64 `json:"throttled"`
	Faults    int64 `json:"faults"`
}

// Server serves the authority, Graph, the realm service and the admin
// endpoints on one HTTPS listener.
type Server struct {
	tenant *Tenant
	cfg    Config
	log    *zap.Logger
	certs  *certs
	// now is replaced by tests that need to move time (token expiry, the
	// throttle's refill and penalty) without sleeping.
	now func() time.Time

	// Indexes built once: the tenant is read-only while serving.
	byID      map[string]int // lower-cased object ID → index in tenant.Users
	byUPN     map[string]int // lower-cased UPN → index
	consumers map[string]struct{}
	verified  map[string]struct{} // every verified domain, lower-cased

	renamed renamedSet

	tokens  tokenRegistry
	devices deviceCodes
	graph   graphState
	realm   realmState

	assertionsCertificate atomic.Int64
	assertionsWithChain   atomic.Int64
	assertionsFederated   atomic.Int64

	graphRequests atomic.Int64
	tokensIssued  atomic.Int64
	inflight      atomic.Int64

	mu   sync.Mutex
	url  string
	srv  *http.Server
	quit chan struct{}
	stop sync.Once
}

// NewServer validates cfg and prepares a server for t; nothing listens
// until Start. t is indexed here and must not change afterwards. log may be
// nil.
func NewServer(t *Tenant, cfg Config, log *zap.Logger) (*Server, error) {
	if t == nil {
		return nil, errors.New("tenantsim: nil tenant")
	}
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.ClientID == "" {
		return nil, errors.New("tenantsim: client ID is required")
	}
	if cfg.ClientSecret == "" && len(cfg.ClientCertificates) == 0 && cfg.FederatedToken == "" {
		return nil, errors.New("tenantsim: a client secret, certificate or federated token is required")
	}
	if cfg.GraphFailAfterPages < 0 {
		return nil, fmt.Errorf("tenantsim: graph fail-after-pages %d is negative", cfg.GraphFailAfterPages)
	}
	if cfg.DeviceCodePendingPolls < 0 {
		return nil, fmt.Errorf("tenantsim: device code pending polls %d is negative", cfg.DeviceCodePendingPolls)
	}
	if cfg.Roles == nil {
		cfg.Roles = append([]string(nil), DefaultRoles...)
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = defaultPageSize
	}
	if cfg.PageSize < 1 || cfg.PageSize > maxPageSize {
		return nil, fmt.Errorf("tenantsim: page size %d outside 1..%d", cfg.PageSize, maxPageSize)
	}
	if cfg.GraphThrottleEvery < 0 {
		return nil, fmt.Errorf("tenantsim: graph throttle interval %d is negative", cfg.GraphThrottleEvery)
	}
	if err := cfg.Realm.Validate(); err != nil {
		return nil, fmt.Errorf("tenantsim: %w", err)
	}
	c, err := newCerts()
	if err != nil {
		return nil, fmt.Errorf("tenantsim: %w", err)
	}
	s := &Server{
		tenant:    t,
		cfg:       cfg,
		log:       log,
		certs:     c,
		now:       time.Now,
		byID:      make(map[string]int, len(t.Users)),
		byUPN:     make(map[string]int, len(t.Users)),
		consumers: t.consumerSet(),
		verified:  t.verifiedDomains(),
		quit:      make(chan struct{}),
	}
	for i := range t.Users {
		s.byID[strings.ToLower(t.Users[i].ID)] = i
		s.byUPN[strings.ToLower(t.Users[i].UPN)] = i
	}
	s.tokens.init()
	s.graph.init()
	s.graph.setFailAfter(int64(cfg.GraphFailAfterPages))
	s.realm.init(cfg.Realm, cfg.Seed)
	s.renamed.set(cfg.Renamed)
	return s, nil
}

// Start listens on addr (e.g. "127.0.0.1:0") and serves HTTPS in the
// background.
func (s *Server) Start(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("tenantsim: server already started")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("tenantsim: listen: %w", err)
	}
	tcp := ln.Addr().(*net.TCPAddr)
	host := tcp.IP.String()
	if tcp.IP.IsUnspecified() {
		// A wildcard listener is reachable on loopback, which the
		// certificate names.
		host = "127.0.0.1"
	}
	s.url = "https://" + net.JoinHostPort(host, fmt.Sprint(tcp.Port))
	s.srv = &http.Server{
		Handler:           s.routes(),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{s.certs.leaf}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          zap.NewStdLog(s.log.Named("http")),
	}
	srv := s.srv
	go func() {
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("serve", zap.Error(err))
		}
	}()
	s.log.Info("tenantsim listening", zap.String("url", s.url), zap.String("tenant_id", s.tenant.ID),
		zap.Int("users", len(s.tenant.Users)))
	return nil
}

// URL is the base URL, "https://127.0.0.1:PORT"; empty before Start.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// GraphURL is the Graph base URL, URL()+"/v1.0".
func (s *Server) GraphURL() string { return s.URL() + "/v1.0" }

// CAPEM is the PEM of the CA that signed the server certificate.
func (s *Server) CAPEM() []byte { return append([]byte(nil), s.certs.caPEM...) }

// CertPool is a pool holding only the simulator's CA.
func (s *Server) CertPool() *x509.CertPool { return s.certs.pool.Clone() }

// Close releases hanging requests and shuts the listener down, waiting up to
// five seconds for in-flight requests to finish.
func (s *Server) Close() error {
	s.stop.Do(func() { close(s.quit) })
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctx) }()
	// Shutdown alone would also wait out connections that were dialled but
	// never used (clients open spares), so once no request is in flight the
	// rest are cut.
	for s.inflight.Load() > 0 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	// Shutdown and Close race to close the listener; whichever comes second
	// sees net.ErrClosed, which is no failure.
	err := srv.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	if serr := <-shut; serr != nil && !errors.Is(serr, context.DeadlineExceeded) &&
		!errors.Is(serr, http.ErrServerClosed) && !errors.Is(serr, net.ErrClosed) {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("tenantsim: close: %w", err)
	}
	return nil
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats { return s.stats(true) }

// stats is Stats, PerAddress left nil unless perAddress.
func (s *Server) stats(perAddress bool) Stats {
	st := Stats{
		GraphRequests: s.graphRequests.Load(),
		TokensIssued:  s.tokensIssued.Load(),

		AssertionsCertificate: s.assertionsCertificate.Load(),
		AssertionsWithChain:   s.assertionsWithChain.Load(),
		AssertionsFederated:   s.assertionsFederated.Load(),
	}
	s.realm.snapshot(&st, s.now(), perAddress)
	s.graph.snapshot(&st)
	return st
}

// SetRealm replaces the realm service's throttle and fault model. Invalid
// values are clamped into range (see RealmConfig.Validate); the token buckets,
// penalty windows and the schedule's clock restart only when the rate,
// burst, penalty, model, scope or schedule change.
func (s *Server) SetRealm(r RealmConfig) {
	if err := r.Validate(); err != nil {
		s.log.Warn("realm config clamped", zap.Error(err))
		r = r.clamped()
	}
	s.realm.set(r)
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1.0/", s.serveGraph)
	mux.HandleFunc("/common/userrealm", s.serveRealm)
	mux.HandleFunc("/common/userrealm/", s.serveRealm)
	mux.HandleFunc("/_sim/stats", s.serveAdminStats)
	mux.HandleFunc("/_sim/realm", s.serveAdminRealm)
	mux.HandleFunc("/_sim/graph", s.serveAdminGraph)
	mux.HandleFunc("/_sim/renamed", s.serveAdminRenamed)
	mux.HandleFunc("/msi/token", s.serveManagedIdentity)
	mux.HandleFunc("/", s.serveAuthority)
	return s.logRequests(mux)
}

// logRequests counts in-flight requests for Close and logs them at debug
// level only: at the realm service's request rates anything louder drowns the
// caller's own logs. Query strings are left out because realm queries carry
// whatever addresses a test feeds in, which may be real ones.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.inflight.Add(1)
		defer s.inflight.Add(-1)
		if ce := s.log.Check(zap.DebugLevel, "request"); ce != nil {
			start := time.Now()
			rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
			next.ServeHTTP(rec, r)
			ce.Write(zap.String("method", r.Method), zap.String("path", r.URL.Path),
				zap.Int("status", rec.status), zap.Duration("duration", time.Since(start)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
