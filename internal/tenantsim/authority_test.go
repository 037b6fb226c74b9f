package tenantsim

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

func TestDiscovery(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 20, nil)
	for _, tenant := range []string{e.tenant.ID, "Contoso.com"} {
		r := e.do(http.MethodGet, e.srv.URL()+"/"+tenant+"/v2.0/.well-known/openid-configuration", nil, nil)
		if r.status != http.StatusOK {
			t.Fatalf("discovery for %s: %d %s", tenant, r.status, r.body)
		}
		m := r.json(t)
		base := e.srv.URL() + "/" + tenant
		for k, want := range map[string]string{
			"token_endpoint":                base + "/oauth2/v2.0/token",
			"authorization_endpoint":        base + "/oauth2/v2.0/authorize",
			"device_authorization_endpoint": base + "/oauth2/v2.0/devicecode",
			"issuer":                        e.srv.URL() + "/" + e.tenant.ID + "/v2.0",
		} {
			if m[k] != want {
				t.Errorf("%s = %v, want %s", k, m[k], want)
			}
		}
		if m["jwks_uri"] == nil || m["response_types_supported"] == nil {
			t.Errorf("discovery lacks jwks_uri or response_types_supported: %v", m)
		}
	}
	r := e.do(http.MethodGet, e.srv.URL()+"/nosuch.example/v2.0/.well-known/openid-configuration", nil, nil)
	if r.status != http.StatusBadRequest || !strings.Contains(r.json(t)["error_description"].(string), "AADSTS90002") {
		t.Fatalf("unknown tenant: %d %s", r.status, r.body)
	}
}

func TestTokenEndpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 20, func(c *Config) { c.Roles = []string{"Directory.Read.All"} })
	r := e.postToken(tokenForm())
	if r.status != http.StatusOK {
		t.Fatalf("token: %d %s", r.status, r.body)
	}
	m := r.json(t)
	if m["token_type"] != "Bearer" || m["expires_in"] != 3599.0 || m["ext_expires_in"] != 3599.0 {
		t.Fatalf("token response %v", m)
	}
	parts := strings.Split(m["access_token"].(string), ".")
	if len(parts) != 3 {
		t.Fatalf("access token has %d parts", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("payload: %v", err)
	}
	var claims struct {
		Aud, Iss, Tid, AppID string
		Roles                []string
		Iat, Nbf, Exp        int64
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatalf("claims: %v", err)
	}
	if claims.Aud != "https://graph.microsoft.com" || claims.Tid != e.tenant.ID || claims.AppID != testClientID ||
		len(claims.Roles) != 1 || claims.Roles[0] != "Directory.Read.All" || claims.Exp-claims.Iat != 3599 ||
		claims.Iss != e.srv.URL()+"/"+e.tenant.ID+"/v2.0" || claims.Nbf != claims.Iat {
		t.Fatalf("claims %+v", claims)
	}
	if st := e.srv.Stats(); st.TokensIssued != 1 {
		t.Fatalf("TokensIssued %d", st.TokensIssued)
	}
}

func TestTokenErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 20, nil)
	cases := []struct {
		name   string
		edit   func(f map[string][]string)
		status int
		code   string
		aadsts string
	}{
		{"wrong client", func(f map[string][]string) { f["client_id"] = []string{"00000000-0000-0000-0000-000000000000"} },
			400, "unauthorized_client", "AADSTS700016"},
		{"wrong secret", func(f map[string][]string) { f["client_secret"] = []string{"nope"} }, 401, "invalid_client", "AADSTS7000215"},
		{"no secret", func(f map[string][]string) { delete(f, "client_secret") }, 401, "invalid_client", "AADSTS7000216"},
		{"scope without .default", func(f map[string][]string) { f["scope"] = []string{"User.Read"} }, 400, "invalid_scope", "AADSTS1002012"},
		{"unsupported grant", func(f map[string][]string) { f["grant_type"] = []string{"password"} }, 400, "unsupported_grant_type", "AADSTS70003"},
		{"no grant", func(f map[string][]string) { delete(f, "grant_type") }, 400, "invalid_request", "AADSTS900144"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := tokenForm()
			c.edit(f)
			r := e.postToken(f)
			m := r.json(t)
			if r.status != c.status || m["error"] != c.code || !strings.HasPrefix(m["error_description"].(string), c.aadsts+":") {
				t.Fatalf("got %d %s", r.status, r.body)
			}
			if strings.Contains(string(r.body), testSecret) {
				t.Fatal("error body echoes the client secret")
			}
		})
	}
	if st := e.srv.Stats(); st.TokensIssued != 0 {
		t.Fatalf("TokensIssued %d after failures", st.TokensIssued)
	}
}

// TestAzidentityClientSecret proves that the real credential type the
// enqueuer uses can sign in against the simulator.
func TestAzidentityClientSecret(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 20, nil)
	opts := &azidentity.ClientSecretCredentialOptions{
		ClientOptions: azcore.ClientOptions{
			Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: e.srv.URL() + "/"},
			Transport: e.client,
		},
		DisableInstanceDiscovery: true,
	}
	cred, err := azidentity.NewClientSecretCredential(e.tenant.ID, testClientID, testSecret, opts)
	if err != nil {
		t.Fatalf("credential: %v", err)
	}
	tok, err := cred.GetToken(t.Context(), policy.TokenRequestOptions{Scopes: []string{"https://graph.microsoft.com/.default"}})
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	if r := e.graph(tok.Token, "/domains", nil); r.status != http.StatusOK {
		t.Fatalf("domains with azidentity token: %d %s", r.status, r.body)
	}

	bad, err := azidentity.NewClientSecretCredential(e.tenant.ID, testClientID, "wrong", opts)
	if err != nil {
		t.Fatalf("credential: %v", err)
	}
	_, err = bad.GetToken(t.Context(), policy.TokenRequestOptions{Scopes: []string{"https://graph.microsoft.com/.default"}})
	if err == nil || !strings.Contains(err.Error(), "AADSTS7000215") {
		t.Fatalf("wrong secret: err %v, want AADSTS7000215", err)
	}
}
