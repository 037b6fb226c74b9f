package directory

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// AuthMethod is how the enqueuer signs in to the tenant (the --auth values, docs/cli.md).
type AuthMethod string

// The authentication methods. The string values are the --auth flag values.
const (
	AuthClientSecret     AuthMethod = "client-secret"
	AuthCertificate      AuthMethod = "certificate"
	AuthDeviceCode       AuthMethod = "device-code"
	AuthBrowser          AuthMethod = "browser"
	AuthWorkloadIdentity AuthMethod = "workload-identity"
	AuthManagedIdentity  AuthMethod = "managed-identity"
	AuthAzureCLI         AuthMethod = "azure-cli"
)

// AuthMethods lists every method in the order --help shows them.
var AuthMethods = []AuthMethod{AuthClientSecret, AuthCertificate, AuthDeviceCode, AuthBrowser,
	AuthWorkloadIdentity, AuthManagedIdentity, AuthAzureCLI}

// ParseAuthMethod returns the method called name.
func ParseAuthMethod(name string) (AuthMethod, error) {
	for _, m := range AuthMethods {
		if strings.EqualFold(string(m), strings.TrimSpace(name)) {
			return m, nil
		}
	}
	names := make([]string, len(AuthMethods))
	for i, m := range AuthMethods {
		names[i] = string(m)
	}
	return "", fmt.Errorf("unknown authentication method %q: valid methods are %s", name, strings.Join(names, ", "))
}

// needsClientID reports whether the method signs in as an app registration.
// A managed identity may be the host's system-assigned one and the Azure CLI
// signs in as whoever ran 'az login', so neither needs one.
func (m AuthMethod) needsClientID() bool {
	return m != AuthManagedIdentity && m != AuthAzureCLI
}

// newCredential builds the token credential that opts describe. opts must
// already be resolved (see Options.resolve): AuthorityHost is the effective,
// validated login host and Auth is set.
//
// Every method that talks to an authority gets identityClientOptions (the
// authority override and the injected transport) and disables instance
// discovery for a non-Microsoft authority, so that --authority-host works the
// same for all of them.
func newCredential(opts Options) (azcore.TokenCredential, error) {
	co := identityClientOptions(opts)
	noDiscovery := !isKnownAuthority(opts.AuthorityHost)
	switch opts.Auth {
	case AuthClientSecret:
		if opts.ClientSecret == "" {
			return nil, errors.New("client-secret auth: no client secret given")
		}
		cred, err := azidentity.NewClientSecretCredential(opts.TenantID, opts.ClientID, opts.ClientSecret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: noDiscovery})
		if err != nil {
			return nil, fmt.Errorf("client secret credential: %w", redact(err, opts.ClientSecret))
		}
		return cred, nil
	case AuthCertificate:
		if len(opts.Certificate) == 0 {
			return nil, errors.New("certificate auth: no certificate given")
		}
		certs, key, err := parseCertificate(opts.Certificate, opts.CertificatePassword)
		if err != nil {
			// The parser's messages name neither the password nor the key.
			hint := ""
			if opts.CertificatePassword == "" {
				hint = " (a password-protected PFX needs --certificate-password-file)"
			}
			return nil, fmt.Errorf("certificate auth: read certificate: %w%s", redact(err, opts.CertificatePassword), hint)
		}
		// SendCertificateChain (x5c) is what subject-name/issuer
		// authentication needs; with a pinned thumbprint it is harmless.
		cred, err := azidentity.NewClientCertificateCredential(opts.TenantID, opts.ClientID, certs, key,
			&azidentity.ClientCertificateCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: noDiscovery,
				SendCertificateChain: true})
		if err != nil {
			return nil, fmt.Errorf("certificate credential: %w", redact(err, opts.CertificatePassword))
		}
		return cred, nil
	case AuthDeviceCode:
		prompt := opts.Prompt
		if prompt == nil {
			prompt = os.Stderr
		}
		cred, err := azidentity.NewDeviceCodeCredential(&azidentity.DeviceCodeCredentialOptions{
			ClientOptions: co, DisableInstanceDiscovery: noDiscovery,
			TenantID: opts.TenantID, ClientID: opts.ClientID,
			UserPrompt: func(_ context.Context, m azidentity.DeviceCodeMessage) error {
				return writeDeviceCodePrompt(prompt, m)
			},
		})
		if err != nil {
			return nil, fmt.Errorf("device code credential: %w", err)
		}
		return cred, nil
	case AuthBrowser:
		cred, err := azidentity.NewInteractiveBrowserCredential(&azidentity.InteractiveBrowserCredentialOptions{
			ClientOptions: co, DisableInstanceDiscovery: noDiscovery,
			TenantID: opts.TenantID, ClientID: opts.ClientID,
		})
		if err != nil {
			return nil, fmt.Errorf("interactive browser credential: %w", err)
		}
		return cred, nil
	case AuthWorkloadIdentity:
		file := opts.FederatedTokenFile
		if file == "" {
			file = os.Getenv("AZURE_FEDERATED_TOKEN_FILE")
		}
		if file == "" {
			return nil, errors.New("workload-identity auth: no federated token file (--federated-token-file or AZURE_FEDERATED_TOKEN_FILE)")
		}
		// Read once here so that a missing file is reported now, not on
		// the first token request; azidentity rereads it on every request
		// because Kubernetes rotates it.
		if _, err := os.Stat(file); err != nil {
			return nil, fmt.Errorf("workload-identity auth: federated token file: %w", err)
		}
		cred, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: co, DisableInstanceDiscovery: noDiscovery,
			TenantID: opts.TenantID, ClientID: opts.ClientID, TokenFilePath: file,
		})
		if err != nil {
			return nil, fmt.Errorf("workload identity credential: %w", err)
		}
		return cred, nil
	case AuthManagedIdentity:
		mo := &azidentity.ManagedIdentityCredentialOptions{}
		// The managed identity endpoint is the host's, never the
		// authority; only the transport is shared.
		mo.Transport = co.Transport
		if opts.ClientID != "" {
			mo.ID = azidentity.ClientID(opts.ClientID) // user-assigned
		}
		cred, err := azidentity.NewManagedIdentityCredential(mo)
		if err != nil {
			return nil, fmt.Errorf("managed identity credential: %w", err)
		}
		return cred, nil
	case AuthAzureCLI:
		// The CLI ignores the authority: it signs in to whatever cloud
		// 'az cloud set' selected (see Options.AuthorityHost).
		cred, err := azidentity.NewAzureCLICredential(&azidentity.AzureCLICredentialOptions{TenantID: opts.TenantID})
		if err != nil {
			return nil, fmt.Errorf("azure cli credential: %w", err)
		}
		return cred, nil
	default:
		_, err := ParseAuthMethod(string(opts.Auth))
		return nil, err
	}
}

// writeDeviceCodePrompt shows the sign-in instructions. Entra ID's message
// already names the URL and the code; both are repeated on their own lines
// for operators who copy them from a narrow terminal.
func writeDeviceCodePrompt(w io.Writer, m azidentity.DeviceCodeMessage) error {
	_, err := fmt.Fprintf(w, "%s\n  URL:  %s\n  code: %s\n", m.Message, m.VerificationURL, m.UserCode)
	return err
}

func identityClientOptions(opts Options) azcore.ClientOptions {
	co := azcore.ClientOptions{
		Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: opts.AuthorityHost},
	}
	if opts.HTTPClient != nil {
		// Without it, azcore uses its own transport trusting the system pool,
		// which is what production wants and what tests must avoid.
		co.Transport = opts.HTTPClient
	}
	return co
}

// isKnownAuthority reports whether host is one of the national clouds' login
// hosts. For any other host MSAL's instance discovery would ask
// login.microsoftonline.com about it first (an internet call a private
// endpoint or a test cannot answer), so discovery is disabled for those.
func isKnownAuthority(host string) bool {
	for _, c := range clouds {
		if strings.EqualFold(strings.TrimSuffix(host, "/"), strings.TrimSuffix(c.AuthorityHost, "/")) {
			return true
		}
	}
	return false
}
