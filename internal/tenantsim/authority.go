package tenantsim

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// tokenLifetime matches what Entra ID reports for app-only Graph tokens.
const tokenLifetime = 3599 * time.Second

// serveAuthority routes /{tenant}/... paths shaped like login.microsoftonline.com.
func (s *Server) serveAuthority(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) < 2 {
		s.aadError(w, http.StatusNotFound, "not_found", 90000, fmt.Sprintf("No such endpoint: %q.", r.URL.Path))
		return
	}
	tenant, rest := parts[0], strings.Join(parts[1:], "/")
	switch rest {
	case "v2.0/.well-known/openid-configuration":
		s.serveDiscovery(w, r, tenant)
	case "oauth2/v2.0/token":
		s.serveToken(w, r, tenant)
	case "discovery/v2.0/keys":
		// Tokens are look-alikes whose signatures verify against nothing, so
		// the key set is empty by design.
		writeJSON(w, http.StatusOK, map[string]any{"keys": []any{}})
	case "oauth2/v2.0/devicecode":
		s.serveDeviceCode(w, r, tenant)
	case "oauth2/v2.0/authorize":
		s.aadError(w, http.StatusBadRequest, "invalid_request", 50049,
			"The simulator does not implement interactive (browser) sign-in; use device code or an app credential.")
	default:
		s.aadError(w, http.StatusNotFound, "not_found", 90000, fmt.Sprintf("No such endpoint: %q.", r.URL.Path))
	}
}

// resolveTenant maps the tenant segment of a path to the tenant ID, accepting
// the ID or any verified domain as Entra ID does.
func (s *Server) resolveTenant(seg string) (string, bool) {
	if strings.EqualFold(seg, s.tenant.ID) {
		return s.tenant.ID, true
	}
	if _, ok := s.verified[strings.ToLower(seg)]; ok {
		return s.tenant.ID, true
	}
	return "", false
}

func isMultiTenantAlias(seg string) bool {
	switch strings.ToLower(seg) {
	case "common", "organizations":
		return true
	}
	return false
}

func (s *Server) serveDiscovery(w http.ResponseWriter, r *http.Request, tenant string) {
	if r.Method != http.MethodGet {
		s.aadError(w, http.StatusMethodNotAllowed, "invalid_request", 900561, "The endpoint only accepts GET requests.")
		return
	}
	issuerTenant, ok := s.resolveTenant(tenant)
	if !ok && isMultiTenantAlias(tenant) {
		// The real multi-tenant documents carry this literal placeholder.
		issuerTenant, ok = "{tenantid}", true
	}
	if !ok {
		s.aadError(w, http.StatusBadRequest, "invalid_tenant", 90002, unknownTenantText(tenant))
		return
	}
	base := s.URL() + "/" + tenant
	writeJSON(w, http.StatusOK, map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                s.URL() + "/" + issuerTenant + "/v2.0",
		"request_uri_parameter_supported":       false,
		"userinfo_endpoint":                     s.URL() + "/oidc/userinfo",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"http_logout_supported":                 true,
		"frontchannel_logout_supported":         true,
		"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
		"claims_supported":                      []string{"sub", "iss", "aud", "exp", "iat", "nbf", "tid", "roles"},
		"tenant_region_scope":                   "EU",
		"cloud_instance_name":                   "microsoftonline.com",
		"cloud_graph_host_name":                 "graph.windows.net",
		"msgraph_host":                          "graph.microsoft.com",
	})
}

func unknownTenantText(tenant string) string {
	return fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant)
}

// tokenRequest is a parsed POST to the token endpoint, handed to the handler
// of its grant type.
type tokenRequest struct {
	tenantID  string
	tenantSeg string // the tenant as the path named it, part of the assertion audience
	form      map[string][]string
	clientID  string
	secret    string // from the form or HTTP Basic
}

func (t *tokenRequest) get(k string) string {
	if v := t.form[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// grantHandler answers one grant type. Certificates and federated tokens are
// client credentials too (a client_assertion instead of a secret), so they
// share grantClientCredentials.
type grantHandler func(s *Server, w http.ResponseWriter, tr *tokenRequest)

var grantHandlers = map[string]grantHandler{
	"client_credentials": (*Server).grantClientCredentials,
	deviceCodeGrant:      (*Server).grantDeviceCode,
	// MSAL sends the short form, which Entra ID accepts as well.
	"device_code": (*Server).grantDeviceCode,
}

// formPost checks what every endpoint of the authority's wants: a POST to
// a known tenant with a form body (allowed names the methods the endpoint
// says it accepts). It answers the request itself when not, and returns
// the tenant ID.
func (s *Server) formPost(w http.ResponseWriter, r *http.Request, tenant, allowed string) (string, bool) {
	if r.Method != http.MethodPost {
		s.aadError(w, http.StatusMethodNotAllowed, "invalid_request", 900561, "The endpoint only accepts "+allowed+" requests.")
		return "", false
	}
	tid, ok := s.resolveTenant(tenant)
	if !ok {
		s.aadError(w, http.StatusBadRequest, "invalid_request", 90002, unknownTenantText(tenant))
		return "", false
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		s.aadError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must be form-encoded: "+err.Error())
		return "", false
	}
	return tid, true
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request, tenant string) {
	tid, ok := s.formPost(w, r, tenant, "POST, OPTIONS")
	if !ok {
		return
	}
	tr := &tokenRequest{tenantID: tid, tenantSeg: tenant, form: r.PostForm}
	tr.clientID, tr.secret = tr.get("client_id"), tr.get("client_secret")
	if id, secret, ok := r.BasicAuth(); ok {
		tr.clientID, tr.secret = id, secret
	}
	gt := tr.get("grant_type")
	if gt == "" {
		s.aadError(w, http.StatusBadRequest, "invalid_request", 900144, missingParamText("grant_type"))
		return
	}
	h, ok := grantHandlers[gt]
	if !ok {
		s.aadError(w, http.StatusBadRequest, "unsupported_grant_type", 70003,
			fmt.Sprintf("The app requested an unsupported grant type '%s'.", gt))
		return
	}
	h(s, w, tr)
}

func missingParamText(p string) string {
	return fmt.Sprintf("The request body must contain the following parameter: '%s'.", p)
}

func (s *Server) grantClientCredentials(w http.ResponseWriter, tr *tokenRequest) {
	if tr.clientID == "" {
		s.aadError(w, http.StatusBadRequest, "invalid_request", 900144, missingParamText("client_id"))
		return
	}
	if tr.clientID != s.cfg.ClientID {
		s.aadError(w, http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf(
			"Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
			tr.clientID, s.tenant.Name))
		return
	}
	if !s.authenticateClient(w, tr) {
		return
	}
	resource, ok := defaultScopeResource(tr.get("scope"))
	if !ok {
		s.aadError(w, http.StatusBadRequest, "invalid_scope", 1002012, fmt.Sprintf(
			"The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
			tr.get("scope")))
		return
	}
	s.issueToken(w, tr.tenantID, tr.clientID, resource)
}

// authenticateClient checks the client's credential and answers the error
// itself when it fails.
func (s *Server) authenticateClient(w http.ResponseWriter, tr *tokenRequest) bool {
	if tr.get("client_assertion") != "" {
		return s.authenticateAssertion(w, tr)
	}
	if tr.secret == "" {
		s.aadError(w, http.StatusUnauthorized, "invalid_client", 7000216,
			"'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.")
		return false
	}
	if s.cfg.ClientSecret == "" || subtle.ConstantTimeCompare([]byte(tr.secret), []byte(s.cfg.ClientSecret)) != 1 {
		s.aadError(w, http.StatusUnauthorized, "invalid_client", 7000215, fmt.Sprintf(
			"Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.",
			tr.clientID))
		return false
	}
	return true
}

// defaultScopeResource extracts the resource of the one "<resource>/.default"
// scope, ignoring the OpenID scopes MSAL appends to every request.
func defaultScopeResource(scope string) (string, bool) {
	var resource string
	for _, sc := range strings.Fields(scope) {
		switch sc {
		case "openid", "profile", "offline_access":
			continue
		}
		if resource != "" || !strings.HasSuffix(sc, "/.default") {
			return "", false
		}
		resource = strings.TrimSuffix(sc, "/.default")
	}
	return resource, resource != ""
}

func (s *Server) issueToken(w http.ResponseWriter, tenantID, clientID, resource string) {
	now := s.now()
	claims := s.baseClaims(now, tenantID, resource)
	claims["appid"], claims["azp"], claims["sub"], claims["oid"] = clientID, clientID, clientID, newRequestID()
	claims["idtyp"] = "app"
	if len(s.cfg.Roles) > 0 {
		// Entra ID omits the claim rather than sending an empty array.
		claims["roles"] = s.cfg.Roles
	}
	tok := s.mintAccessToken(claims, now)
	s.log.Debug("token issued", zap.String("client_id", clientID), zap.String("resource", resource))
	s.writeTokenResponse(w, map[string]any{"access_token": tok})
}

// baseClaims are the claims every access token carries.
func (s *Server) baseClaims(now time.Time, tenantID, resource string) map[string]any {
	return map[string]any{
		"aud": resource,
		"iss": s.URL() + "/" + tenantID + "/v2.0",
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(tokenLifetime).Unix(),
		"tid": tenantID,
		"uti": newRequestID(),
		"ver": "1.0",
	}
}

// mintAccessToken signs nothing: the token is a look-alike that Graph
// recognises by registry lookup. The permissions it carries are the
// configured roles whichever claim (roles or scp) shows them.
func (s *Server) mintAccessToken(claims map[string]any, now time.Time) string {
	tok := unsignedJWT(map[string]any{"typ": "JWT", "alg": "RS256", "kid": "tenantsim"}, claims)
	exp := now.Add(tokenLifetime)
	s.tokens.add(tok, tokenInfo{roles: append([]string(nil), s.cfg.Roles...), expires: exp}, now)
	s.tokensIssued.Add(1)
	return tok
}

func unsignedJWT(header, claims map[string]any) string {
	hb, _ := json.Marshal(header)
	cb, _ := json.Marshal(claims)
	sig := make([]byte, 256)
	_, _ = rand.Read(sig)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(hb) + "." + enc.EncodeToString(cb) + "." + enc.EncodeToString(sig)
}

func (s *Server) writeTokenResponse(w http.ResponseWriter, fields map[string]any) {
	body := map[string]any{
		"token_type":     "Bearer",
		"expires_in":     int(tokenLifetime.Seconds()),
		"ext_expires_in": int(tokenLifetime.Seconds()),
	}
	for k, v := range fields {
		body[k] = v
	}
	w.Header().Set("Cache-Control", "no-store, no-cache")
	writeJSON(w, http.StatusOK, body)
}

// aadError writes an error shaped like Entra ID's token endpoint errors,
// which MSAL parses for error and error_description.
func (s *Server) aadError(w http.ResponseWriter, status int, code string, aadsts int, text string) {
	now := s.now().UTC().Format("2006-01-02 15:04:05Z")
	trace, corr := newRequestID(), newRequestID()
	writeJSON(w, status, map[string]any{
		"error": code,
		"error_description": fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s",
			aadsts, text, trace, corr, now),
		"error_codes":    []int{aadsts},
		"timestamp":      now,
		"trace_id":       trace,
		"correlation_id": corr,
		"error_uri":      s.URL() + "/error?code=" + fmt.Sprint(aadsts),
	})
}

type tokenInfo struct {
	roles   []string
	expires time.Time
}

// tokenRegistry remembers issued tokens so Graph can tell a token this
// simulator issued from a forged or stale one without verifying signatures.
type tokenRegistry struct {
	mu sync.RWMutex
	m  map[string]tokenInfo
}

func (r *tokenRegistry) init() { r.m = make(map[string]tokenInfo) }

func (r *tokenRegistry) add(tok string, ti tokenInfo, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Expired tokens are kept for a day so that Graph can still say
	// "expired" rather than "invalid", then dropped to bound memory.
	for k, v := range r.m {
		if now.Sub(v.expires) > 24*time.Hour {
			delete(r.m, k)
		}
	}
	r.m[tok] = ti
}

func (r *tokenRegistry) lookup(tok string) (tokenInfo, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ti, ok := r.m[tok]
	return ti, ok
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":"internal"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
