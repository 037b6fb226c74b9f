// Package testpki makes throwaway self-signed certificates for tests: the
// kind an app registration holds for certificate credentials.
package testpki

import (
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"testing"
)

// Cert is a self-signed RSA certificate and its key.
type Cert struct {
	Cert *x509.Certificate
	Key  *rsa.PrivateKey
}

// New returns a certificate for cn, valid from an hour ago for a day.
func New(tb testing.TB, cn string) Cert {
	tb.Helper()
	return issue(tb, nil, &x509.Certificate{Subject: pkix.Name{CommonName: cn}, KeyUsage: x509.KeyUsageDigitalSignature})
}

// CertPEM is the certificate, PEM-encoded.
func (c Cert) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Cert.Raw})
}

// KeyPEM is the private key, PKCS #8, PEM-encoded.
func (c Cert) KeyPEM(tb testing.TB) []byte {
	tb.Helper()
	pk, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})
}

// PEM is the certificate followed by its key, as one credential file.
func (c Cert) PEM(tb testing.TB) []byte {
	tb.Helper()
	return append(c.CertPEM(), c.KeyPEM(tb)...)
}
