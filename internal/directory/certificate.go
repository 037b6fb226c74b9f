package directory

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"software.sslmate.com/src/go-pkcs12"
)

// parseCertificate reads a PEM file (certificate(s) and private key) or a
// PFX. azidentity's reader only knows the legacy PFX encryption (3DES/RC2),
// while OpenSSL 3 and current Windows export AES-encrypted PFX by default; so
// a PFX it refuses is read again with go-pkcs12, which knows both. The chain
// is returned leaf first, as SendCertificateChain expects.
func parseCertificate(data []byte, password string) ([]*x509.Certificate, crypto.PrivateKey, error) {
	certs, key, err := azidentity.ParseCertificates(data, []byte(password))
	if err == nil {
		return certs, key, nil
	}
	if bytes.Contains(data, []byte("-----BEGIN")) {
		return nil, nil, err
	}
	key, leaf, chain, err2 := pkcs12.DecodeChain(data, password)
	if err2 != nil {
		if errors.Is(err2, pkcs12.ErrIncorrectPassword) {
			return nil, nil, errors.New("the PFX password is wrong")
		}
		return nil, nil, fmt.Errorf("neither PEM nor a readable PFX: %w", err2)
	}
	return append([]*x509.Certificate{leaf}, chain...), key, nil
}
