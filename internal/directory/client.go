package directory

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	abstractions "github.com/microsoft/kiota-abstractions-go"
	absser "github.com/microsoft/kiota-abstractions-go/serialization"
	khttp "github.com/microsoft/kiota-http-go"
	jsonser "github.com/microsoft/kiota-serialization-json-go"
	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"
	graphauth "github.com/microsoftgraph/msgraph-sdk-go-core/authentication"
	"go.uber.org/zap"
)

// Options says which tenant to connect to, where, and as whom.
//
// Scope: the token scope is always Cloud.Scope, also when GraphURL is
// overridden. An override points at a private endpoint or a proxy that still
// expects tokens for the cloud's Graph audience; deriving the scope from the
// override's host would ask the authority for an audience that does not
// exist. A caller that needs another scope sets Cloud.Scope.
type Options struct {
	// Cloud is the national cloud; the zero value means Global.
	Cloud Cloud
	// GraphURL and AuthorityHost override the cloud's endpoints when not
	// empty (private endpoints, tests). Both must be https; GraphURL must end
	// in /v1.0.
	GraphURL      string
	AuthorityHost string

	TenantID string
	// ClientID is the app registration; optional for managed-identity (then
	// the system-assigned identity) and azure-cli.
	ClientID string
	// Auth is the sign-in method; empty means client-secret.
	Auth AuthMethod
	// ClientSecret is for client-secret. It never appears in errors or logs.
	ClientSecret string
	// Certificate is the PEM or PFX content for certificate auth, with
	// CertificatePassword for an encrypted PFX (never logged).
	Certificate         []byte
	CertificatePassword string
	// FederatedTokenFile is for workload-identity; empty means
	// $AZURE_FEDERATED_TOKEN_FILE.
	FederatedTokenFile string
	// Prompt receives the device-code instructions; nil means stderr.
	Prompt io.Writer

	// HTTPClient, when set, carries both the token requests and the Graph
	// requests; tests pass one trusting the simulator's CA. Its Transport is
	// wrapped in the Graph middleware (retry, redirect…) and its Timeout
	// bounds each Graph call including retries. When nil, the system trust
	// store is used, so SSL_CERT_FILE works.
	HTTPClient *http.Client
	Logger     *zap.Logger
}

// Client reads a tenant's directory through Graph. It is safe for concurrent
// use.
type Client struct {
	adapter  abstractions.RequestAdapter
	graphURL string
	clientID string
	grant    Grant
	log      *zap.Logger
}

// defaultGraphTimeout is kiota's own default for a Graph call.
const defaultGraphTimeout = 100 * time.Second

// Connect builds the credential and the Graph request adapter and acquires a
// token at once, so that a wrong secret, client ID or tenant fails here with
// the identity platform's AADSTS message instead of on the first page read.
func Connect(ctx context.Context, opts Options) (*Client, error) {
	cfg, err := opts.resolve()
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	cred, err := newCredential(cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	// EnableCAE matches what the kiota token provider asks for, so the token
	// cached here is the one Graph requests reuse.
	tro := policy.TokenRequestOptions{Scopes: []string{cfg.Cloud.Scope}, EnableCAE: true}
	tok, err := cred.GetToken(ctx, tro)
	if err != nil {
		return nil, fmt.Errorf("connect: sign in to tenant %s %s: %w",
			cfg.TenantID, signInContext(cfg), explainTokenError(err, cfg.secret()))
	}
	grant := grantFromToken(tok.Token)
	adapter, err := newAdapter(cred, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	cfg.Logger.Info("connected to microsoft graph",
		zap.String("cloud", cfg.Cloud.Name),
		zap.String("graph_url", cfg.GraphURL),
		zap.String("authority_host", cfg.AuthorityHost),
		zap.String("tenant_id", cfg.TenantID),
		zap.String("client_id", cfg.ClientID),
		zap.String("auth", string(cfg.Auth)),
		zap.Bool("delegated", grant.Delegated),
		zap.Strings("granted_permissions", grant.Permissions))
	return &Client{adapter: adapter, graphURL: cfg.GraphURL, clientID: cfg.ClientID, grant: grant, log: cfg.Logger}, nil
}

// signInContext says as whom and where a failed sign-in was attempted.
func signInContext(cfg Options) string {
	who := "as client " + cfg.ClientID
	switch {
	case cfg.Auth == AuthAzureCLI:
		// The CLI ignores the authority host.
		return "with the azure cli's signed-in account"
	case cfg.Auth == AuthManagedIdentity && cfg.ClientID == "":
		return "with the system-assigned managed identity"
	case cfg.Auth == AuthManagedIdentity:
		return "with the user-assigned managed identity " + cfg.ClientID
	}
	return fmt.Sprintf("%s (%s) at %s", who, cfg.Auth, cfg.AuthorityHost)
}

// secret is the one secret value the resolved options carry, for redaction.
func (o Options) secret() string {
	if o.Auth == AuthCertificate {
		return o.CertificatePassword
	}
	return o.ClientSecret
}

// resolve fills in the cloud's defaults and validates everything Connect
// relies on, so that a bad flag is reported before any network call.
func (o Options) resolve() (Options, error) {
	if o.Cloud == (Cloud{}) {
		o.Cloud = cloudGlobal
	}
	if o.Cloud.Scope == "" {
		return o, fmt.Errorf("cloud %q has no token scope", o.Cloud.Name)
	}
	if o.GraphURL == "" {
		o.GraphURL = o.Cloud.GraphURL
	}
	if o.AuthorityHost == "" {
		o.AuthorityHost = o.Cloud.AuthorityHost
	}
	graphURL, err := normalizeGraphURL(o.GraphURL)
	if err != nil {
		return o, err
	}
	o.GraphURL = graphURL
	authority, err := normalizeAuthorityHost(o.AuthorityHost)
	if err != nil {
		return o, err
	}
	o.AuthorityHost = authority
	o.TenantID = strings.TrimSpace(o.TenantID)
	o.ClientID = strings.TrimSpace(o.ClientID)
	if o.TenantID == "" {
		return o, errors.New("tenant ID is empty")
	}
	if o.Auth == "" {
		// The enqueuer always says; library callers that only set a
		// secret get what they meant.
		o.Auth = AuthClientSecret
	}
	if _, err := ParseAuthMethod(string(o.Auth)); err != nil {
		return o, err
	}
	if o.ClientID == "" && o.Auth.needsClientID() {
		return o, fmt.Errorf("client ID is empty (%s auth signs in as an app registration)", o.Auth)
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return o, nil
}

// normalizeGraphURL insists on https (the token provider refuses to
// authenticate anything else) and on the /v1.0 suffix (the SDK's request
// paths are relative to the versioned root).
func normalizeGraphURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", fmt.Errorf("graph URL %q: %w", raw, err)
	}
	if !strings.EqualFold(u.Scheme, "https") || u.Host == "" {
		return "", fmt.Errorf("graph URL %q must be an absolute https URL", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("graph URL %q must not have a query or fragment", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	if !strings.HasSuffix(u.Path, "/v1.0") {
		return "", fmt.Errorf("graph URL %q must end in /v1.0", raw)
	}
	return u.String(), nil
}

// normalizeAuthorityHost insists on https because MSAL refuses anything else,
// and adds the trailing slash azidentity expects.
func normalizeAuthorityHost(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", fmt.Errorf("authority host %q: %w", raw, err)
	}
	if !strings.EqualFold(u.Scheme, "https") || u.Host == "" {
		return "", fmt.Errorf("authority host %q must be an absolute https URL", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("authority host %q must not have a query or fragment", raw)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	return u.String(), nil
}

// graphClientOptions feeds the telemetry middleware. The library version is
// left empty rather than hard-coding the SDK version, which would go stale.
var graphClientOptions = msgraphcore.GraphClientOptions{}

func newAdapter(cred azcore.TokenCredential, cfg Options) (abstractions.RequestAdapter, error) {
	auth, err := graphauth.NewAzureIdentityAuthenticationProviderWithScopesAndValidHosts(
		cred, []string{cfg.Cloud.Scope}, allowedHosts(cfg))
	if err != nil {
		return nil, fmt.Errorf("graph auth provider: %w", err)
	}
	// Local registries instead of the SDK root package's global registration:
	// Graph only ever answers these calls in JSON.
	parsers := absser.NewParseNodeFactoryRegistry()
	parsers.ContentTypeAssociatedFactories["application/json"] = jsonser.NewJsonParseNodeFactory()
	writers := absser.NewSerializationWriterFactoryRegistry()
	writers.ContentTypeAssociatedFactories["application/json"] = jsonser.NewJsonSerializationWriterFactory()

	adapter, err := msgraphcore.NewGraphRequestAdapterBaseWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(
		auth, graphClientOptions, parsers, writers, graphHTTPClient(cfg.HTTPClient))
	if err != nil {
		return nil, fmt.Errorf("graph request adapter: %w", err)
	}
	adapter.SetBaseUrl(cfg.GraphURL)
	return adapter, nil
}

// allowedHosts lists the hosts the auth provider may send tokens to. The
// provider compares host names without port and, for any host not listed,
// silently sends the request without an Authorization header; so an
// overridden Graph URL must be listed, and only Graph hosts ever are.
func allowedHosts(cfg Options) []string {
	hosts := []string{}
	for _, raw := range []string{cfg.GraphURL, cfg.Cloud.GraphURL} {
		u, err := url.Parse(raw)
		if err != nil || u.Hostname() == "" {
			continue
		}
		h := strings.ToLower(u.Hostname())
		if !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// graphMiddlewares is the SDK's default chain: telemetry, URL replacement and
// kiota's retry (429/503/504 honouring Retry-After), redirect, compression,
// parameter-name decoding, user agent and header inspection — with the retry
// handler allowed graphMaxRetries instead of kiota's 3: a tenant-wide read
// takes hundreds of pages, and Graph may throttle one page several times in a
// row; a page that still fails stops the submit, which must then be resumed.
func graphMiddlewares() []khttp.Middleware {
	mw := msgraphcore.GetDefaultMiddlewaresWithOptions(&graphClientOptions)
	for i, m := range mw {
		if _, ok := m.(*khttp.RetryHandler); ok {
			mw[i] = khttp.NewRetryHandlerWithOptions(khttp.RetryHandlerOptions{
				MaxRetries: graphMaxRetries,
				ShouldRetry: func(time.Duration, int, *http.Request, *http.Response) bool {
					return true
				},
			})
		}
	}
	return mw
}

// graphMaxRetries is kiota's ceiling; kiota also caps the total wait at
// three minutes.
const graphMaxRetries = 10

// graphHTTPClient wraps the injected client's transport (or kiota's default,
// which trusts the system pool) in the Graph middleware chain.
func graphHTTPClient(injected *http.Client) *http.Client {
	var parent http.RoundTripper
	timeout := defaultGraphTimeout
	if injected != nil {
		parent = injected.Transport
		if parent == nil {
			parent = http.DefaultTransport
		}
		if injected.Timeout > 0 {
			timeout = injected.Timeout
		}
	}
	return &http.Client{
		Transport: khttp.NewCustomTransportWithParentTransport(parent, graphMiddlewares()...),
		Timeout:   timeout,
		// The redirect middleware follows redirects; net/http must not as well.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
