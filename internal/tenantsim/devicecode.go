package tenantsim

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

const (
	deviceCodeGrant    = "urn:ietf:params:oauth:grant-type:device_code"
	deviceCodeLifetime = 15 * time.Minute
)

// deviceCodes are the device codes handed out and not yet redeemed. A code is
// "approved" — as if the person had entered it at the verification URL —
// after Config.DeviceCodePendingPolls polls answered authorization_pending.
type deviceCodes struct {
	mu sync.Mutex
	m  map[string]*pendingCode
}

type pendingCode struct {
	tenantID, clientID, resource string
	polls                        int
	expires                      time.Time
}

func (s *Server) serveDeviceCode(w http.ResponseWriter, r *http.Request, tenant string) {
	tid, ok := s.formPost(w, r, tenant, "POST")
	if !ok {
		return
	}
	clientID := r.PostForm.Get("client_id")
	if clientID != s.cfg.ClientID {
		s.aadError(w, http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf(
			"Application with identifier '%s' was not found in the directory '%s'.", clientID, s.tenant.Name))
		return
	}
	resource, ok := defaultScopeResource(r.PostForm.Get("scope"))
	if !ok {
		s.aadError(w, http.StatusBadRequest, "invalid_scope", 70011, fmt.Sprintf(
			"The provided value for the input parameter 'scope' is not valid: %q.", r.PostForm.Get("scope")))
		return
	}
	code, user := randomCode(32), strings.ToUpper(randomCode(8))[:9]
	s.devices.mu.Lock()
	if s.devices.m == nil {
		s.devices.m = make(map[string]*pendingCode)
	}
	s.devices.m[code] = &pendingCode{tenantID: tid, clientID: clientID, resource: resource, expires: s.now().Add(deviceCodeLifetime)}
	s.devices.mu.Unlock()
	verify := s.URL() + "/devicelogin"
	writeJSON(w, http.StatusOK, map[string]any{
		"user_code":        user,
		"device_code":      code,
		"verification_uri": verify,
		"expires_in":       int(deviceCodeLifetime.Seconds()),
		"interval":         1,
		"message": fmt.Sprintf("To sign in, use a web browser to open the page %s and enter the code %s to authenticate.",
			verify, user),
	})
}

func randomCode(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *Server) grantDeviceCode(w http.ResponseWriter, tr *tokenRequest) {
	code := tr.get("device_code")
	s.devices.mu.Lock()
	p, ok := s.devices.m[code]
	if ok && p.polls < s.cfg.DeviceCodePendingPolls {
		p.polls++
		s.devices.mu.Unlock()
		s.aadError(w, http.StatusBadRequest, "authorization_pending", 70016,
			"OAuth 2.0 device flow error. Authorization is pending. Continue polling.")
		return
	}
	delete(s.devices.m, code)
	s.devices.mu.Unlock()
	switch {
	case !ok || p.clientID != tr.clientID || p.tenantID != tr.tenantID:
		s.aadError(w, http.StatusBadRequest, "invalid_grant", 70000, "The provided value for the 'device_code' is not valid.")
	case s.now().After(p.expires):
		s.aadError(w, http.StatusBadRequest, "expired_token", 70019, "Verification code expired.")
	default:
		s.issueDelegatedToken(w, p.tenantID, p.clientID, p.resource)
	}
}

// issueDelegatedToken answers a signed-in person's token request: the
// permissions go in scp, and an id_token and client_info let MSAL cache the
// account, so that later token requests are served silently instead of
// prompting again.
func (s *Server) issueDelegatedToken(w http.ResponseWriter, tenantID, clientID, resource string) {
	now := s.now()
	oid, upn := s.signedInUser()
	claims := s.baseClaims(now, tenantID, resource)
	claims["appid"], claims["azp"], claims["sub"], claims["oid"] = clientID, clientID, oid, oid
	claims["idtyp"], claims["upn"], claims["name"] = "user", upn, upn
	if len(s.cfg.Roles) > 0 {
		claims["scp"] = strings.Join(s.cfg.Roles, " ")
	}
	tok := s.mintAccessToken(claims, now)
	id := unsignedJWT(map[string]any{"typ": "JWT", "alg": "RS256", "kid": "tenantsim"}, map[string]any{
		"aud": clientID, "iss": s.URL() + "/" + tenantID + "/v2.0", "iat": now.Unix(), "nbf": now.Unix(),
		"exp": now.Add(tokenLifetime).Unix(), "tid": tenantID, "oid": oid, "sub": oid,
		"preferred_username": upn, "name": upn, "ver": "2.0",
	})
	ci, _ := json.Marshal(map[string]string{"uid": oid, "utid": tenantID})
	s.writeTokenResponse(w, map[string]any{
		"access_token": tok,
		"id_token":     id,
		"client_info":  base64.RawURLEncoding.EncodeToString(ci),
	})
}

// signedInUser is the person who "approves" a device code: the tenant's
// first member user, or a fixed administrator of an empty tenant.
func (s *Server) signedInUser() (oid, upn string) {
	for _, u := range s.tenant.Users {
		if u.UserType != "Guest" {
			return u.ID, u.UPN
		}
	}
	return "00000000-0000-0000-0000-0000000000ad", "admin@" + domContoso
}
