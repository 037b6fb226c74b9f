package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/msaudit/msaudit/internal/envflag"
	"github.com/msaudit/msaudit/internal/tenantsim"
	"github.com/msaudit/msaudit/internal/testpki"
)

const (
	testClientID = "3a7c9e1f-5b2d-4c6e-8f0a-1b3c5d7e9f21"
	testSecret   = "cmd-test-secret~value"
	testFedToken = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YXVkaXQ6ZW5xdWV1ZSJ9.c2ln"
)

// clearAuthEnv makes a test independent of the developer's environment.
func clearAuthEnv(t *testing.T) {
	for _, k := range []string{"AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_CLIENT_CERTIFICATE_PASSWORD",
		"AZURE_FEDERATED_TOKEN_FILE"} {
		t.Setenv(k, "")
	}
}

func baseOptions() submitOptions {
	return submitOptions{TenantID: "contoso.onmicrosoft.com", Environment: "Global", ClientID: testClientID, Addresses: "all",
		BatchSize: 50, Output: "text", Retention: 24 * time.Hour}
}

// flagOptions are the options of a 'submit' given no flags, with env as its
// environment (as envflag applies it when the command runs), and the tenant
// and client of baseOptions.
func flagOptions(t *testing.T, env map[string]string) submitOptions {
	t.Helper()
	var o submitOptions
	cmd := &cobra.Command{Use: "submit"}
	addSubmitFlags(cmd, &app{}, &o)
	if err := envflag.Apply(cmd.Flags(), func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	b := baseOptions()
	if o.TenantID == "" {
		o.TenantID = b.TenantID
	}
	if o.ClientID == "" {
		o.ClientID = b.ClientID
	}
	return o
}

func TestSubmitValidateAuth(t *testing.T) {
	clearAuthEnv(t)
	cases := []struct {
		name     string
		env      map[string]string
		set      func(o *submitOptions)
		wantAuth string
		wantErr  string
	}{
		{"secret file picks client-secret", nil, func(o *submitOptions) { o.ClientSecretFile = "s" }, "client-secret", ""},
		{"certificate file picks certificate", nil, func(o *submitOptions) { o.CertificateFile = "c.pem" }, "certificate", ""},
		{"token file picks workload-identity", nil, func(o *submitOptions) { o.FederatedTokenFile = "tok" }, "workload-identity", ""},
		{"secret env picks client-secret", map[string]string{"AZURE_CLIENT_SECRET": "x"}, nil, "client-secret", ""},
		{"certificate env", map[string]string{"AZURE_CLIENT_CERTIFICATE_PATH": "c.pem"}, nil, "certificate", ""},
		{"token env", map[string]string{"AZURE_FEDERATED_TOKEN_FILE": "tok"}, nil, "workload-identity", ""},
		{"a flag beats an injected env", map[string]string{"AZURE_FEDERATED_TOKEN_FILE": "tok"},
			func(o *submitOptions) { o.ClientSecretFile = "s" }, "client-secret", ""},
		{"nothing given", nil, nil, "", "no credential given"},
		{"two credentials", nil, func(o *submitOptions) { o.ClientSecretFile, o.CertificateFile = "s", "c" }, "", "say which to use with --auth"},
		{"secret on the command line", nil, func(o *submitOptions) { o.ClientSecretArg = "hunter2-value" }, "", "--client-secret is refused"},
		{"unknown method", nil, func(o *submitOptions) { o.Auth = "password" }, "", "valid methods are client-secret, certificate"},
		{"explicit device code", nil, func(o *submitOptions) { o.Auth = "Device-Code" }, "device-code", ""},
		{"device code needs a client", nil, func(o *submitOptions) { o.Auth, o.ClientID = "device-code", "" }, "", "--client-id is required"},
		{"managed identity without client", nil, func(o *submitOptions) { o.Auth, o.ClientID = "managed-identity", "" }, "managed-identity", ""},
		{"azure cli without client", nil, func(o *submitOptions) { o.Auth, o.ClientID = "azure-cli", "" }, "azure-cli", ""},
		{"certificate file with another method", nil, func(o *submitOptions) { o.Auth, o.CertificateFile = "device-code", "c" }, "", "--certificate-file is for --auth certificate"},
		{"bad user permission", nil, func(o *submitOptions) { o.Auth, o.UserPermission = "device-code", "User.Read" }, "", "--user-permission"},
		{"user permission as domain permission", nil, func(o *submitOptions) { o.Auth, o.DomainPermission = "device-code", "User.Read.All" }, "", "--domain-permission"},
		{"advanced query with users file", nil, func(o *submitOptions) { o.Auth, o.UsersFile, o.AdvancedQuery = "device-code", "u", true }, "", "--advanced-query"},
		{"missing users file", nil, func(o *submitOptions) { o.Auth, o.UsersFile = "device-code", "/nonexistent/users.txt" }, "", "--users-file: stat /nonexistent/users.txt"},
		{"missing addresses file", nil, func(o *submitOptions) { o.AddressesFile = "/nonexistent/addresses.txt" }, "", "--addresses-file: stat /nonexistent/addresses.txt"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			o := flagOptions(t, c.env)
			if c.set != nil {
				c.set(&o)
			}
			err := o.Validate()
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("Validate() = %v, want an error containing %q", err, c.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2-value") {
					t.Errorf("the error repeats the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate(): %v", err)
			}
			if o.Auth != c.wantAuth {
				t.Errorf("Auth = %q, want %q", o.Auth, c.wantAuth)
			}
		})
	}
}

func TestSubmitPermissionDefaults(t *testing.T) {
	clearAuthEnv(t)
	o := baseOptions()
	o.clientSecret = testSecret
	o.UserPermission = "directory.read.all"
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if o.DomainPermission != "Domain.Read.All" || o.UserPermission != "Directory.Read.All" {
		t.Errorf("permissions = %q, %q", o.DomainPermission, o.UserPermission)
	}
}

type cmdSim struct {
	tenant *tenantsim.Tenant
	srv    *tenantsim.Server
	client *http.Client
}

func startCmdSim(t *testing.T, users int, cfg tenantsim.Config) cmdSim {
	t.Helper()
	tenant := tenantsim.Generate(11, users)
	cfg.ClientID, cfg.ClientSecret = testClientID, testSecret
	srv, err := tenantsim.NewServer(tenant, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CertPool()}}}
	return cmdSim{tenant: tenant, srv: srv, client: hc}
}

func (s cmdSim) options() submitOptions {
	o := baseOptions()
	o.TenantID, o.GraphURL, o.AuthorityHost, o.DryRun, o.httpClient = s.tenant.ID, s.srv.GraphURL(), s.srv.URL()+"/", true, s.client
	return o
}

func writeTestFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDryRunWithEachMethod runs the submit path (connect, permission check,
// domains, users) as a dry run with each method the simulator can answer,
// and checks the counts against the ground truth.
func TestDryRunWithEachMethod(t *testing.T) {
	clearAuthEnv(t)
	cert := testpki.New(t, "enqueue-test")
	sim := startCmdSim(t, 120, tenantsim.Config{ClientCertificates: []*x509.Certificate{cert.Cert}, FederatedToken: testFedToken})
	want := len(sim.tenant.GroundTruth().Addresses)
	certFile, tokenFile := writeTestFile(t, "app.pem", cert.PEM(t)), writeTestFile(t, "token", []byte(testFedToken))
	secretFile := writeTestFile(t, "secret", []byte(testSecret+"\n"))
	cases := []struct {
		name string
		set  func(o *submitOptions)
		auth string
	}{
		{"client secret file", func(o *submitOptions) { o.ClientSecretFile = secretFile }, "client-secret"},
		{"certificate", func(o *submitOptions) { o.CertificateFile = certFile }, "certificate"},
		{"workload identity", func(o *submitOptions) { o.FederatedTokenFile = tokenFile }, "workload-identity"},
		{"device code", func(o *submitOptions) { o.Auth = "device-code" }, "device-code"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := sim.options()
			c.set(&o)
			if err := o.Validate(); err != nil {
				t.Fatal(err)
			}
			core, logs := observer.New(zap.DebugLevel)
			var stderr bytes.Buffer
			sum, err := runSubmit(t.Context(), nil, zap.New(core), &o, &stderr)
			if err != nil {
				t.Fatalf("runSubmit: %v", err)
			}
			if int(sum.Addresses) != want {
				t.Errorf("dry run counted %d addresses, ground truth has %d", sum.Addresses, want)
			}
			if picked := logs.FilterMessage("authentication method picked").All(); c.auth != "device-code" &&
				(len(picked) != 1 || picked[0].ContextMap()["auth"] != c.auth) {
				t.Errorf("the picked method was not logged as %s: %v", c.auth, picked)
			}
			if c.auth == "device-code" && !strings.Contains(stderr.String(), "/devicelogin") {
				t.Errorf("no device code prompt on stderr: %q", stderr.String())
			}
			for _, e := range logs.All() {
				if line := e.Message + " " + strings.Join(fieldStrings(e.ContextMap()), " "); strings.Contains(line, testSecret) {
					t.Errorf("a log line shows the secret: %s", line)
				}
			}
		})
	}
}

func fieldStrings(m map[string]any) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+strings.TrimSpace(strings.ReplaceAll(strings.ReplaceAll(toString(v), "\n", " "), "\t", " ")))
	}
	return out
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := jsonMarshal(v)
	return string(b)
}

// TestDryRunStopsOnMissingPermission: the permission check runs in dry runs
// too, and names the missing permission and the consent steps.
func TestDryRunStopsOnMissingPermission(t *testing.T) {
	clearAuthEnv(t)
	sim := startCmdSim(t, 10, tenantsim.Config{Roles: []string{"Domain.Read.All", "User.Read.All"}})
	o := sim.options()
	o.clientSecret, o.UserPermission = testSecret, "User.ReadWrite.All"
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	_, err := runSubmit(t.Context(), nil, zap.NewNop(), &o, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "permission User.ReadWrite.All") || !strings.Contains(err.Error(), "Grant admin consent") {
		t.Fatalf("runSubmit = %v, want the missing permission and how to consent", err)
	}
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
