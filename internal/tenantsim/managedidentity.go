package tenantsim

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
)

// serveManagedIdentity answers GET /msi/token like the App Service managed
// identity endpoint (IDENTITY_ENDPOINT, api-version 2019-08-01): the caller
// proves it runs on the host with the X-IDENTITY-HEADER secret and names the
// resource; a user-assigned identity is named by client_id, which must be the
// configured app. It is the one managed identity source a test can point
// azidentity at without a cloud VM; IMDS (169.254.169.254) is not simulated.
func (s *Server) serveManagedIdentity(w http.ResponseWriter, r *http.Request) {
	miErr := func(status int, msg string) {
		writeJSON(w, status, map[string]any{"statusCode": status, "message": msg})
	}
	if s.cfg.ManagedIdentityHeader == "" {
		miErr(http.StatusNotFound, "managed identity is not enabled on this simulator (Config.ManagedIdentityHeader)")
		return
	}
	if r.Method != http.MethodGet {
		miErr(http.StatusMethodNotAllowed, "use GET")
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("X-IDENTITY-HEADER")), []byte(s.cfg.ManagedIdentityHeader)) != 1 {
		miErr(http.StatusUnauthorized, "missing or wrong X-IDENTITY-HEADER")
		return
	}
	q := r.URL.Query()
	if v := q.Get("api-version"); v != "2019-08-01" {
		miErr(http.StatusBadRequest, fmt.Sprintf("unsupported api-version %q", v))
		return
	}
	resource := strings.TrimSuffix(strings.TrimSuffix(q.Get("resource"), "/.default"), "/")
	if resource == "" {
		miErr(http.StatusBadRequest, "resource is required")
		return
	}
	if id := q.Get("client_id"); id != "" && id != s.cfg.ClientID {
		miErr(http.StatusBadRequest, fmt.Sprintf("no user-assigned identity with client ID %s is assigned to this resource", id))
		return
	}
	now := s.now()
	claims := s.baseClaims(now, s.tenant.ID, resource)
	claims["appid"], claims["azp"], claims["sub"], claims["oid"] = s.cfg.ClientID, s.cfg.ClientID, s.cfg.ClientID, newRequestID()
	claims["idtyp"] = "app"
	if len(s.cfg.Roles) > 0 {
		claims["roles"] = s.cfg.Roles
	}
	tok := s.mintAccessToken(claims, now)
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok,
		"expires_on":   fmt.Sprint(now.Add(tokenLifetime).Unix()),
		"resource":     resource,
		"token_type":   "Bearer",
		"client_id":    s.cfg.ClientID,
	})
}
