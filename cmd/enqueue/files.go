package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/msaudit/msaudit/internal/addresses"
)

type ioWriter = io.Writer

// readListFile opens name and parses it with parse, naming the file in errors.
func readListFile(name string, parse func(io.Reader) ([]string, error)) ([]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out, err := parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// readIdentities reads a users file: UPNs or object IDs, one a line, blank
// lines and '#' comment lines ignored (a UPN may itself contain '#').
func readIdentities(r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), addresses.MaxLine)
	var out []string
	seen := make(map[string]bool)
	n := 1
	for ; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if why := addresses.BadText(line); why != "" {
			return nil, fmt.Errorf("line %d: %s", n, why)
		}
		if strings.ContainsAny(line, " \t,;") {
			return nil, fmt.Errorf("line %d: %q is not a UPN or object ID", n, line)
		}
		if k := strings.ToLower(line); !seen[k] {
			seen[k] = true
			out = append(out, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, addresses.ScanErr(err, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no users listed")
	}
	return out, nil
}

// readCertificate reads --certificate-file and the PFX password from
// --certificate-password-file (else $AZURE_CLIENT_CERTIFICATE_PASSWORD, the
// Azure SDKs' variable). Errors name the files, never the password.
func readCertificate(certFile, passwordFile string) ([]byte, string, error) {
	if certFile == "" {
		return nil, "", fmt.Errorf("certificate auth needs --certificate-file (or AZURE_CLIENT_CERTIFICATE_PATH)")
	}
	cert, err := os.ReadFile(certFile)
	if err != nil {
		return nil, "", fmt.Errorf("--certificate-file: %w", err)
	}
	password := os.Getenv("AZURE_CLIENT_CERTIFICATE_PASSWORD")
	if passwordFile != "" {
		b, err := os.ReadFile(passwordFile)
		if err != nil {
			return nil, "", fmt.Errorf("--certificate-password-file: %w", err)
		}
		// Only the line break an editor adds is dropped: a password may
		// legitimately begin or end with spaces.
		password = strings.TrimRight(string(b), "\r\n")
	}
	return cert, password, nil
}

// secret returns the client secret from the file or the environment.
func (o *submitOptions) secret() (string, error) {
	if o.clientSecret != "" {
		return o.clientSecret, nil
	}
	if o.ClientSecretFile != "" {
		b, err := os.ReadFile(o.ClientSecretFile)
		if err != nil {
			return "", fmt.Errorf("--client-secret-file: %w", err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", fmt.Errorf("--client-secret-file %s is empty", o.ClientSecretFile)
		}
		return s, nil
	}
	if s := os.Getenv("AZURE_CLIENT_SECRET"); s != "" {
		return s, nil
	}
	return "", errors.New("client-secret auth needs the secret in AZURE_CLIENT_SECRET or --client-secret-file")
}
