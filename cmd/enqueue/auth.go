// Authentication options of submit: which method, and where its credential
// comes from (files and the environment, never arguments).

package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"go.uber.org/zap"

	"github.com/msaudit/msaudit/internal/directory"
)

// authMethods are the --auth values, directory.AuthMethods as strings.
var authMethods = func() []string {
	out := make([]string, len(directory.AuthMethods))
	for i, m := range directory.AuthMethods {
		out[i] = string(m)
	}
	return out
}()

// validateAuth checks --auth and its inputs, or picks the method from what
// is supplied: an explicit file flag first, then the environment, so that a
// variable injected into every pod (AZURE_FEDERATED_TOKEN_FILE under AKS
// workload identity) does not override what the operator typed.
func (o *submitOptions) validateAuth() error {
	if o.ClientSecretArg != "" {
		return errors.New("--client-secret is refused: a secret on the command line is visible in the process list and shell history; " +
			"put it in AZURE_CLIENT_SECRET or a file named by --client-secret-file")
	}
	if o.Auth == "" {
		if err := o.pickAuth(); err != nil {
			return err
		}
	}
	m, err := directory.ParseAuthMethod(o.Auth)
	if err != nil {
		return fmt.Errorf("--auth: %w", err)
	}
	o.Auth = string(m)
	o.dropOtherEnvCredentials(m)
	if o.CertificateFile != "" && m != directory.AuthCertificate {
		return fmt.Errorf("--certificate-file is for --auth certificate, not %s", m)
	}
	if o.CertificatePasswordFile != "" && o.CertificateFile == "" {
		return errors.New("--certificate-password-file needs --certificate-file")
	}
	if o.FederatedTokenFile != "" && m != directory.AuthWorkloadIdentity {
		return fmt.Errorf("--federated-token-file is for --auth workload-identity, not %s", m)
	}
	if o.ClientSecretFile != "" && m != directory.AuthClientSecret {
		return fmt.Errorf("--client-secret-file is for --auth client-secret, not %s", m)
	}
	switch m {
	case directory.AuthManagedIdentity, directory.AuthAzureCLI:
		// --client-id is optional: a user-assigned identity, or unused.
	default:
		if o.ClientID == "" {
			return fmt.Errorf("--client-id is required for --auth %s (or AZURE_CLIENT_ID)", m)
		}
	}
	return nil
}

// credentialFlags are the flags that name a credential, with the method each
// implies.
var credentialFlags = []struct{ flag, method string }{
	{"client-secret-file", "client-secret"},
	{"certificate-file", "certificate"},
	{"federated-token-file", "workload-identity"},
}

// credentialFile is the option field of a credential flag.
func (o *submitOptions) credentialFile(flag string) *string {
	switch flag {
	case "client-secret-file":
		return &o.ClientSecretFile
	case "certificate-file":
		return &o.CertificateFile
	default:
		return &o.FederatedTokenFile
	}
}

func (o *submitOptions) isFromEnv(flag string) bool { return o.fromEnv != nil && o.fromEnv(flag) }

// pickAuth chooses the method from the credential flags typed on the command
// line, else from a client secret supplied, else from a credential file named
// by the environment (AZURE_CLIENT_CERTIFICATE_PATH, AZURE_FEDERATED_TOKEN_FILE).
func (o *submitOptions) pickAuth() error {
	var given []string
	for _, c := range credentialFlags {
		if *o.credentialFile(c.flag) != "" && !o.isFromEnv(c.flag) {
			given = append(given, "--"+c.flag)
			o.Auth, o.authPicked = c.method, "--"+c.flag+" was given"
		}
	}
	if len(given) > 1 {
		return fmt.Errorf("%s: more than one credential given; say which to use with --auth", strings.Join(given, " and "))
	}
	if o.Auth != "" {
		return nil
	}
	if o.clientSecret != "" {
		o.Auth, o.authPicked = "client-secret", "a client secret was supplied"
		return nil
	}
	if os.Getenv("AZURE_CLIENT_SECRET") != "" {
		o.Auth, o.authPicked = "client-secret", "AZURE_CLIENT_SECRET is set"
		return nil
	}
	for _, c := range credentialFlags {
		if *o.credentialFile(c.flag) != "" {
			o.Auth, o.authPicked = c.method, "the environment names a file for --"+c.flag
			return nil
		}
	}
	return errors.New("no credential given: set AZURE_CLIENT_SECRET or --client-secret-file, or --certificate-file, or " +
		"--federated-token-file, or choose --auth device-code, browser, managed-identity or azure-cli")
}

// dropOtherEnvCredentials forgets credential files that came from the
// environment for another method than m: a variable injected into every pod
// (AZURE_FEDERATED_TOKEN_FILE under AKS workload identity) must not make a
// chosen client-secret or certificate sign-in fail.
func (o *submitOptions) dropOtherEnvCredentials(m directory.AuthMethod) {
	for _, c := range credentialFlags {
		if o.isFromEnv(c.flag) && c.method != string(m) {
			*o.credentialFile(c.flag) = ""
		}
	}
}

// directoryOptions reads the chosen method's credential (from a file or the
// environment, never from an argument) into directory.Options.
func (o *submitOptions) directoryOptions(log *zap.Logger) (directory.Options, error) {
	cloud, _ := directory.CloudByName(o.Environment)
	d := directory.Options{
		Cloud: cloud, GraphURL: o.GraphURL, AuthorityHost: o.AuthorityHost,
		TenantID: o.TenantID, ClientID: o.ClientID, Auth: directory.AuthMethod(o.Auth),
		HTTPClient: o.httpClient, Logger: log, Prompt: o.prompt,
	}
	if o.authPicked != "" {
		log.Info("authentication method picked", zap.String("auth", o.Auth), zap.String("because", o.authPicked))
	}
	var err error
	switch d.Auth {
	case directory.AuthClientSecret:
		d.ClientSecret, err = o.secret()
	case directory.AuthCertificate:
		d.Certificate, d.CertificatePassword, err = readCertificate(o.CertificateFile, o.CertificatePasswordFile)
	case directory.AuthWorkloadIdentity:
		d.FederatedTokenFile = o.FederatedTokenFile
	case directory.AuthAzureCLI:
		if o.AuthorityHost != "" || o.Environment != "Global" {
			log.Warn("the azure cli signs in to the cloud 'az cloud set' selected; --environment and --authority-host do not change it")
		}
	}
	return d, err
}
