// Package testpki makes throwaway self-signed certificates for tests: the
// kind an app registration holds for certificate credentials.
package testpki

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// Cert is a self-signed RSA certificate and its key.
type Cert struct {
	Cert *x509.Certificate
	Key  *rsa.PrivateKey
}

// New returns a certificate for cn, valid from an hour ago for a day.
func New(tb testing.TB, cn string) Cert {
	tb.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return Cert{Cert: cert, Key: key}
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
