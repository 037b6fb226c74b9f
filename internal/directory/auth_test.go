package directory

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/msaudit/msaudit/internal/tenantsim"
	"github.com/msaudit/msaudit/internal/testpki"
)

// pfx uses the legacy (3DES) encryption, the one azidentity's PKCS#12
// reader (golang.org/x/crypto/pkcs12) understands.
func pfx(t *testing.T, c testpki.Cert, password string) []byte {
	t.Helper()
	b, err := pkcs12.LegacyDES.Encode(c.Key, c.Cert, nil, password)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// modernPFX uses AES-256 and SHA-256, what OpenSSL 3 writes by default.
func modernPFX(t *testing.T, c testpki.Cert, password string) []byte {
	t.Helper()
	b, err := pkcs12.Modern2023.Encode(c.Key, c.Cert, nil, password)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// enumerate reads every user and checks the set against the tenant.
func enumerate(t *testing.T, env simEnv, c *Client) {
	t.Helper()
	got, _ := collectUsers(t, c, UserQuery{PageSize: 7})
	assertUsers(t, got, env.tenant.Users)
}

func TestCertificateAuthPEMAndPFX(t *testing.T) {
	t.Parallel()
	registered := testpki.New(t, "msaudit-test")
	env := startSim(t, 30, tenantsim.Config{ClientCertificates: []*x509.Certificate{registered.Cert}})
	const password = "pfx-pass~word"
	for _, tc := range []struct {
		name     string
		data     []byte
		password string
	}{
		{"pem", registered.PEM(t), ""},
		{"pfx with password", pfx(t, registered, password), password},
		{"pfx without password", pfx(t, registered, ""), ""},
		{"pfx with AES (OpenSSL 3 default)", modernPFX(t, registered, password), password},
	} {
		// In turn: each compares the one simulator's counters before and
		// after its own sign-in.
		t.Run(tc.name, func(t *testing.T) {
			before := env.server.Stats()
			opts := env.options(t)
			opts.ClientSecret = ""
			opts.Auth, opts.Certificate, opts.CertificatePassword = AuthCertificate, tc.data, tc.password
			c, err := Connect(t.Context(), opts)
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
			if g := c.grant; !g.Known || g.Delegated || !g.Has("User.Read.All") {
				t.Errorf("grant = %+v, want app roles with User.Read.All", g)
			}
			enumerate(t, env, c)
			after := env.server.Stats()
			if after.AssertionsCertificate <= before.AssertionsCertificate {
				t.Error("the simulator verified no certificate assertion")
			}
			if after.AssertionsWithChain <= before.AssertionsWithChain {
				t.Error("the assertion carried no x5c chain (SendCertificateChain)")
			}
		})
	}
}

func TestCertificateAuthRefusals(t *testing.T) {
	t.Parallel()
	registered := testpki.New(t, "registered")
	env := startSim(t, 5, tenantsim.Config{ClientCertificates: []*x509.Certificate{registered.Cert}})
	const password = "right-pass"
	cases := []struct {
		name, password, want string
		data                 []byte
		unauthorized         bool
	}{
		{"unregistered certificate", "", "AADSTS700027", testpki.New(t, "other").PEM(t), true},
		{"wrong pfx password", "wrong-pass", "read certificate", pfx(t, registered, password), false},
		{"wrong AES pfx password", "wrong-pass", "password is wrong", modernPFX(t, registered, password), false},
		{"pfx without its password", "", "--certificate-password-file", pfx(t, registered, password), false},
		{"garbage", "", "read certificate", []byte("not a certificate"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := env.options(t)
			opts.ClientSecret = ""
			opts.Auth, opts.Certificate, opts.CertificatePassword = AuthCertificate, tc.data, tc.password
			_, err := Connect(t.Context(), opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Connect error = %v, want one containing %q", err, tc.want)
			}
			if tc.password != "" && strings.Contains(err.Error(), tc.password) {
				t.Errorf("error shows the password: %v", err)
			}
			if tc.unauthorized != errors.Is(err, ErrUnauthorized) {
				t.Errorf("errors.Is(err, ErrUnauthorized) = %v, want %v", !tc.unauthorized, tc.unauthorized)
			}
		})
	}
}

func TestDeviceCodeAuth(t *testing.T) {
	t.Parallel()
	env := startSim(t, 40, tenantsim.Config{DeviceCodePendingPolls: 2})
	var prompt bytes.Buffer
	opts := env.options(t)
	opts.ClientSecret = ""
	opts.Auth, opts.Prompt = AuthDeviceCode, &prompt
	c, err := Connect(t.Context(), opts)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	out := prompt.String()
	if !strings.Contains(out, env.server.URL()+"/devicelogin") || !strings.Contains(out, "code: ") {
		t.Errorf("prompt lacks the URL or the code:\n%s", out)
	}
	if g := c.grant; !g.Known || !g.Delegated || !g.Has("User.Read.All") {
		t.Errorf("grant = %+v, want delegated scopes with User.Read.All", g)
	}
	enumerate(t, env, c)
	// Every Graph page asks the credential again; MSAL must answer from its
	// cache (the id_token's account), not prompt once more.
	if n := strings.Count(prompt.String(), "code: "); n != 1 {
		t.Errorf("prompted %d times, want once:\n%s", n, prompt.String())
	}
}

func TestWorkloadIdentityAuth(t *testing.T) {
	const fed = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL29pZGMuZXhhbXBsZSIsInN1YiI6InN5c3RlbTpzZXJ2aWNlYWNjb3VudDphdWRpdDplbnF1ZXVlIn0.c2ln"
	env := startSim(t, 25, tenantsim.Config{FederatedToken: fed})
	dir := t.TempDir()
	good := filepath.Join(dir, "token")
	if err := os.WriteFile(good, []byte(fed), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("from flag", func(t *testing.T) {
		opts := env.options(t)
		opts.ClientSecret = ""
		opts.Auth, opts.FederatedTokenFile = AuthWorkloadIdentity, good
		c, err := Connect(t.Context(), opts)
		if err != nil {
			t.Fatalf("Connect: %v", err)
		}
		enumerate(t, env, c)
		if env.server.Stats().AssertionsFederated == 0 {
			t.Error("the simulator accepted no federated token")
		}
	})
	t.Run("from AZURE_FEDERATED_TOKEN_FILE", func(t *testing.T) {
		t.Setenv("AZURE_FEDERATED_TOKEN_FILE", good)
		opts := env.options(t)
		opts.ClientSecret, opts.Auth = "", AuthWorkloadIdentity
		if _, err := Connect(t.Context(), opts); err != nil {
			t.Fatalf("Connect: %v", err)
		}
	})
	t.Run("wrong token", func(t *testing.T) {
		bad := filepath.Join(dir, "bad")
		if err := os.WriteFile(bad, []byte("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln"), 0o600); err != nil {
			t.Fatal(err)
		}
		opts := env.options(t)
		opts.ClientSecret = ""
		opts.Auth, opts.FederatedTokenFile = AuthWorkloadIdentity, bad
		_, err := Connect(t.Context(), opts)
		if err == nil || !strings.Contains(err.Error(), "AADSTS700211") || !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("Connect error = %v, want AADSTS700211 unauthorized", err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		t.Setenv("AZURE_FEDERATED_TOKEN_FILE", "")
		opts := env.options(t)
		opts.ClientSecret, opts.Auth = "", AuthWorkloadIdentity
		_, err := Connect(t.Context(), opts)
		if err == nil || !strings.Contains(err.Error(), "AZURE_FEDERATED_TOKEN_FILE") {
			t.Fatalf("Connect error = %v, want one naming AZURE_FEDERATED_TOKEN_FILE", err)
		}
	})
}

// simToken gets an app token from the simulator's token endpoint, for the
// fakes of tools that hand out tokens (az).
func simToken(t *testing.T, env simEnv) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {simClientID},
		"client_secret": {simSecret}, "scope": {"https://graph.microsoft.com/.default"}}
	resp, err := env.options(t).HTTPClient.PostForm(env.server.URL()+"/"+env.tenant.ID+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.AccessToken == "" {
		t.Fatalf("token from simulator: %v (status %d)", err, resp.StatusCode)
	}
	return body.AccessToken
}

// TestAzureCLIAuth puts a fake az on PATH that prints what
// 'az account get-access-token -o json' prints and records its arguments.
func TestAzureCLIAuth(t *testing.T) {
	env := startSim(t, 20, tenantsim.Config{})
	dir := t.TempDir()
	exp := time.Now().Add(time.Hour)
	out, _ := json.Marshal(map[string]any{
		"accessToken": simToken(t, env), "expiresOn": exp.Format("2006-01-02 15:04:05.000000"),
		"expires_on": exp.Unix(), "subscription": "00000000-0000-0000-0000-000000000001",
		"tenant": env.tenant.ID, "tokenType": "Bearer",
	})
	args := filepath.Join(dir, "args")
	script := fmt.Sprintf("#!/bin/sh\necho \"$@\" > %s\ncat <<'EOF'\n%s\nEOF\n", args, out)
	if err := os.WriteFile(filepath.Join(dir, "az"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))

	opts := env.options(t)
	opts.ClientSecret, opts.ClientID, opts.Auth = "", "", AuthAzureCLI
	c, err := Connect(t.Context(), opts)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	enumerate(t, env, c)
	got, err := os.ReadFile(args)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"account get-access-token", "--resource https://graph.microsoft.com", "--tenant " + env.tenant.ID} {
		if !strings.Contains(string(got), want) {
			t.Errorf("az called with %q, want %q in it", got, want)
		}
	}
}

func TestAzureCLINotInstalled(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	opts := Options{TenantID: "11111111-2222-3333-4444-555555555555", Auth: AuthAzureCLI}
	_, err := Connect(t.Context(), opts)
	if err == nil || !strings.Contains(err.Error(), "AzureCLICredential") {
		t.Fatalf("Connect error = %v, want the azure cli credential's message", err)
	}
}

// TestManagedIdentityAppService drives azidentity's managed identity code
// through its App Service source (IDENTITY_ENDPOINT, IDENTITY_HEADER), which
// the simulator serves; IMDS cannot be faked without owning 169.254.169.254.
func TestManagedIdentityAppService(t *testing.T) {
	env := startSim(t, 15, tenantsim.Config{ManagedIdentityHeader: "mi-header-secret"})
	t.Setenv("IDENTITY_ENDPOINT", env.server.URL()+"/msi/token")
	t.Setenv("IDENTITY_HEADER", "mi-header-secret")
	t.Run("system-assigned", func(t *testing.T) {
		opts := env.options(t)
		opts.ClientSecret, opts.ClientID, opts.Auth = "", "", AuthManagedIdentity
		c, err := Connect(t.Context(), opts)
		if err != nil {
			t.Fatalf("Connect: %v", err)
		}
		enumerate(t, env, c)
	})
	t.Run("user-assigned", func(t *testing.T) {
		opts := env.options(t)
		opts.ClientSecret, opts.Auth = "", AuthManagedIdentity
		if _, err := Connect(t.Context(), opts); err != nil {
			t.Fatalf("Connect: %v", err)
		}
	})
	t.Run("unknown user-assigned identity", func(t *testing.T) {
		opts := env.options(t)
		opts.ClientSecret, opts.ClientID, opts.Auth = "", "99999999-0000-0000-0000-000000000000", AuthManagedIdentity
		_, err := Connect(t.Context(), opts)
		if err == nil || !strings.Contains(err.Error(), "user-assigned managed identity 99999999") {
			t.Fatalf("Connect error = %v, want one naming the identity", err)
		}
	})
}

// The browser flow opens a browser and waits for a redirect to localhost;
// no test can complete it, so only the wiring is checked.
func TestBrowserCredentialWiring(t *testing.T) {
	t.Parallel()
	cfg, err := Options{TenantID: "t", ClientID: "c", Auth: AuthBrowser, AuthorityHost: "https://127.0.0.1:1/"}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	cred, err := newCredential(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%T", cred) != "*azidentity.InteractiveBrowserCredential" {
		t.Errorf("credential is %T", cred)
	}
	if _, err := (Options{TenantID: "t", Auth: AuthBrowser}).resolve(); err == nil || !strings.Contains(err.Error(), "client ID") {
		t.Errorf("browser auth without a client ID: %v", err)
	}
}

func TestAuthMethodsResolve(t *testing.T) {
	t.Parallel()
	for _, m := range AuthMethods {
		got, err := ParseAuthMethod(strings.ToUpper(string(m)))
		if err != nil || got != m {
			t.Errorf("ParseAuthMethod(%q) = %q, %v", m, got, err)
		}
		_, err = (Options{TenantID: "t", Auth: m}).resolve()
		if m.needsClientID() != (err != nil) {
			t.Errorf("%s without client ID: resolve error %v", m, err)
		}
	}
	if _, err := ParseAuthMethod("password"); err == nil || !strings.Contains(err.Error(), "client-secret") {
		t.Errorf("ParseAuthMethod(password) = %v, want a list of methods", err)
	}
}
