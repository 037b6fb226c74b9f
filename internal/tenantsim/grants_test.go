package tenantsim

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/msaudit/msaudit/internal/testpki"
)

// appCert is an app registration's certificate credential.
type appCert testpki.Cert

func newAppCert(t *testing.T) appCert { return appCert(testpki.New(t, "app")) }

// assertion builds a PS256 client assertion the way MSAL does; mod may
// change the header or claims before signing.
func (a appCert) assertion(t *testing.T, e *testEnv, mod func(h, c map[string]any)) string {
	t.Helper()
	sum := sha256.Sum256(a.Cert.Raw)
	h := map[string]any{"alg": "PS256", "typ": "JWT", "x5t#S256": base64.StdEncoding.EncodeToString(sum[:]),
		"x5c": []string{base64.StdEncoding.EncodeToString(a.Cert.Raw)}}
	now := e.clock.Now()
	c := map[string]any{"aud": e.srv.URL() + "/" + e.tenant.ID + "/oauth2/v2.0/token", "iss": testClientID, "sub": testClientID,
		"jti": "x", "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()}
	if mod != nil {
		mod(h, c)
	}
	hb, _ := json.Marshal(h)
	cb, _ := json.Marshal(c)
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString(hb) + "." + enc.EncodeToString(cb)
	digest := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPSS(rand.Reader, a.Key, crypto.SHA256, digest[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + enc.EncodeToString(sig)
}

func assertionForm(assertion string) url.Values {
	return url.Values{"grant_type": {"client_credentials"}, "client_id": {testClientID}, "scope": {"https://graph.microsoft.com/.default"},
		"client_assertion_type": {jwtBearer}, "client_assertion": {assertion}}
}

func TestCertificateAssertion(t *testing.T) {
	t.Parallel()
	app, other := newAppCert(t), newAppCert(t)
	e := newEnv(t, 5, func(c *Config) { c.ClientCertificates = []*x509.Certificate{app.Cert} })
	if r := e.postToken(assertionForm(app.assertion(t, e, nil))); r.status != http.StatusOK {
		t.Fatalf("valid assertion: %d %s", r.status, r.body)
	}
	if st := e.srv.Stats(); st.AssertionsCertificate != 1 || st.AssertionsWithChain != 1 {
		t.Errorf("stats = %+v", st)
	}
	cases := []struct {
		name string
		tok  string
		want string
	}{
		{"unregistered certificate", other.assertion(t, e, nil), "AADSTS700027"},
		{"wrong key for the thumbprint", other.assertion(t, e, func(h, _ map[string]any) {
			sum := sha256.Sum256(app.Cert.Raw)
			h["x5t#S256"] = base64.StdEncoding.EncodeToString(sum[:])
			delete(h, "x5c")
		}), "signature validation"},
		{"x5c of another certificate", app.assertion(t, e, func(h, _ map[string]any) {
			h["x5c"] = []string{base64.StdEncoding.EncodeToString(other.Cert.Raw)}
		}), "x5c"},
		{"wrong audience", app.assertion(t, e, func(_, c map[string]any) { c["aud"] = "https://login.microsoftonline.com/x/oauth2/v2.0/token" }), "AADSTS700020"},
		{"issuer is not the client", app.assertion(t, e, func(_, c map[string]any) { c["iss"] = "someone-else" }), "AADSTS700021"},
		{"expired", app.assertion(t, e, func(_, c map[string]any) { c["exp"] = e.clock.Now().Add(-time.Hour).Unix() }), "AADSTS700024"},
		{"not yet valid", app.assertion(t, e, func(_, c map[string]any) { c["nbf"] = e.clock.Now().Add(time.Hour).Unix() }), "AADSTS700024"},
		{"unsupported algorithm", app.assertion(t, e, func(h, _ map[string]any) { h["alg"] = "HS256" }), "not accepted"},
		{"not a JWT", "abc", "AADSTS700025"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.postToken(assertionForm(c.tok))
			if r.status != http.StatusUnauthorized || !strings.Contains(string(r.body), c.want) {
				t.Errorf("got %d %s, want 401 with %q", r.status, r.body, c.want)
			}
		})
	}
	form := assertionForm(app.assertion(t, e, nil))
	form.Set("client_assertion_type", "urn:other")
	if r := e.postToken(form); r.status != http.StatusBadRequest {
		t.Errorf("wrong assertion type: %d %s", r.status, r.body)
	}
}

func TestFederatedTokenAssertion(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 5, func(c *Config) { c.FederatedToken = "fed.token.value" })
	if r := e.postToken(assertionForm("fed.token.value")); r.status != http.StatusOK {
		t.Fatalf("federated token: %d %s", r.status, r.body)
	}
	if r := e.postToken(assertionForm("fed.token.other")); r.status != http.StatusUnauthorized ||
		!strings.Contains(string(r.body), "AADSTS700211") {
		t.Errorf("wrong federated token: %d %s", r.status, r.body)
	}
	if e.srv.Stats().AssertionsFederated != 1 {
		t.Errorf("stats = %+v", e.srv.Stats())
	}
}

func TestDeviceCodeGrant(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 5, func(c *Config) { c.DeviceCodePendingPolls = 2 })
	start := func(clientID string) response {
		form := url.Values{"client_id": {clientID}, "scope": {"https://graph.microsoft.com/.default openid offline_access profile"}}
		return e.do(http.MethodPost, e.srv.URL()+"/"+e.tenant.ID+"/oauth2/v2.0/devicecode",
			map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, strings.NewReader(form.Encode()))
	}
	if r := start("unknown-app"); r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "AADSTS700016") {
		t.Errorf("unknown client: %d %s", r.status, r.body)
	}
	r := start(testClientID)
	if r.status != http.StatusOK {
		t.Fatalf("devicecode: %d %s", r.status, r.body)
	}
	dc := r.json(t)
	for _, k := range []string{"device_code", "user_code", "verification_uri", "interval", "expires_in", "message"} {
		if dc[k] == nil || dc[k] == "" {
			t.Errorf("devicecode response lacks %s: %v", k, dc)
		}
	}
	poll := url.Values{"grant_type": {"device_code"}, "client_id": {testClientID}, "device_code": {dc["device_code"].(string)},
		"scope": {"https://graph.microsoft.com/.default openid offline_access profile"}}
	for i := 0; i < 2; i++ {
		if r := e.postToken(poll); r.status != http.StatusBadRequest || r.json(t)["error"] != "authorization_pending" {
			t.Fatalf("poll %d: %d %s, want authorization_pending", i+1, r.status, r.body)
		}
	}
	r = e.postToken(poll)
	if r.status != http.StatusOK {
		t.Fatalf("approved poll: %d %s", r.status, r.body)
	}
	tok := r.json(t)
	for _, k := range []string{"access_token", "id_token", "client_info"} {
		if tok[k] == nil {
			t.Errorf("token response lacks %s", k)
		}
	}
	var claims map[string]any
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok["access_token"].(string), ".")[1])
	if err := json.Unmarshal(payload, &claims); err != nil || claims["scp"] != "User.Read.All Domain.Read.All" || claims["roles"] != nil {
		t.Errorf("delegated token claims = %v, %v", claims, err)
	}
	if g := e.graph(tok["access_token"].(string), e.srv.GraphURL()+"/users?$top=2", nil); g.status != http.StatusOK {
		t.Errorf("graph with the delegated token: %d %s", g.status, g.body)
	}
	if r := e.postToken(poll); r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "AADSTS70000") {
		t.Errorf("a redeemed code: %d %s", r.status, r.body)
	}
	// An unused code expires.
	dc2 := start(testClientID).json(t)
	e.clock.Advance(deviceCodeLifetime + time.Second)
	poll.Set("device_code", dc2["device_code"].(string))
	e.srv.cfg.DeviceCodePendingPolls = 0
	if r := e.postToken(poll); r.status != http.StatusBadRequest || r.json(t)["error"] != "expired_token" {
		t.Errorf("expired code: %d %s", r.status, r.body)
	}
}

func TestManagedIdentityEndpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 5, func(c *Config) { c.ManagedIdentityHeader = "hdr" })
	get := func(q, hdr string) response {
		return e.do(http.MethodGet, e.srv.URL()+"/msi/token?"+q, map[string]string{"X-IDENTITY-HEADER": hdr}, nil)
	}
	ok := "api-version=2019-08-01&resource=https%3A%2F%2Fgraph.microsoft.com"
	r := get(ok, "hdr")
	if r.status != http.StatusOK || r.json(t)["access_token"] == nil || r.json(t)["expires_on"] == nil {
		t.Fatalf("system-assigned: %d %s", r.status, r.body)
	}
	if g := e.graph(r.json(t)["access_token"].(string), e.srv.GraphURL()+"/domains", nil); g.status != http.StatusOK {
		t.Errorf("graph with the managed identity token: %d %s", g.status, g.body)
	}
	for name, c := range map[string]struct {
		q, hdr string
		status int
	}{
		"wrong header":       {ok, "nope", http.StatusUnauthorized},
		"old api version":    {"api-version=2017-09-01&resource=x", "hdr", http.StatusBadRequest},
		"unknown identity":   {ok + "&client_id=someone", "hdr", http.StatusBadRequest},
		"user-assigned (ok)": {ok + "&client_id=" + testClientID, "hdr", http.StatusOK},
	} {
		if r := get(c.q, c.hdr); r.status != c.status {
			t.Errorf("%s: %d %s, want %d", name, r.status, r.body, c.status)
		}
	}
	off := newEnv(t, 1, nil)
	if r := off.do(http.MethodGet, off.srv.URL()+"/msi/token?"+ok, nil, nil); r.status != http.StatusNotFound {
		t.Errorf("disabled endpoint: %d", r.status)
	}
}
