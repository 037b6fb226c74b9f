package tenantsim

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

const jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertionSkew is the clock skew Entra ID tolerates on nbf and exp.
const assertionSkew = 5 * time.Minute

// authenticateAssertion checks a client_assertion: either the configured
// federated token (workload identity hands the token file's content over as
// is) or a JWT signed with one of the app's certificates, as MSAL builds it
// for certificate credentials. It answers the error itself when it fails.
func (s *Server) authenticateAssertion(w http.ResponseWriter, tr *tokenRequest) bool {
	if t := tr.get("client_assertion_type"); t != jwtBearer {
		s.aadError(w, http.StatusBadRequest, "invalid_request", 700024, fmt.Sprintf(
			"Client assertion type %q is not supported; use '%s'.", t, jwtBearer))
		return false
	}
	assertion := tr.get("client_assertion")
	if fed := s.cfg.FederatedToken; fed != "" && subtle.ConstantTimeCompare([]byte(assertion), []byte(fed)) == 1 {
		s.assertionsFederated.Add(1)
		return true
	}
	fail := func(aadsts int, text string) bool {
		s.aadError(w, http.StatusUnauthorized, "invalid_client", aadsts, text)
		return false
	}
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		if s.cfg.FederatedToken != "" {
			return fail(700211, "No matching federated identity record found for presented assertion.")
		}
		return fail(700025, "Client assertion is not a valid JWT.")
	}
	var hdr struct {
		Alg     string   `json:"alg"`
		X5t     string   `json:"x5t"`
		X5tS256 string   `json:"x5t#S256"`
		X5c     []string `json:"x5c"`
	}
	var claims struct {
		Aud string `json:"aud"`
		Iss string `json:"iss"`
		Sub string `json:"sub"`
		Exp int64  `json:"exp"`
		Nbf int64  `json:"nbf"`
	}
	if decodeSegment(parts[0], &hdr) != nil || decodeSegment(parts[1], &claims) != nil {
		if s.cfg.FederatedToken != "" {
			return fail(700211, "No matching federated identity record found for presented assertion.")
		}
		return fail(700025, "Client assertion is not a valid JWT.")
	}
	cert := s.certificateFor(hdr.X5t, hdr.X5tS256)
	if cert == nil {
		if s.cfg.FederatedToken != "" && hdr.X5t == "" && hdr.X5tS256 == "" {
			return fail(700211, "No matching federated identity record found for presented assertion issuer.")
		}
		return fail(700027, fmt.Sprintf(
			"The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '%s%s']",
			hdr.X5t, hdr.X5tS256))
	}
	if len(hdr.X5c) > 0 {
		// Subject-name/issuer authentication reads the chain; its leaf
		// must be the certificate the thumbprint names.
		leaf, err := base64.StdEncoding.DecodeString(hdr.X5c[0])
		if err != nil || !bytes.Equal(leaf, cert.Raw) {
			return fail(700027, "The x5c header's leaf certificate does not match the assertion's thumbprint.")
		}
		s.assertionsWithChain.Add(1)
	}
	if err := verifyJWTSignature(cert, hdr.Alg, parts); err != nil {
		return fail(700027, "Client assertion failed signature validation. "+err.Error())
	}
	if claims.Iss != tr.clientID || claims.Sub != tr.clientID {
		return fail(700021, "Client assertion application identifier doesn't match 'client_id' parameter.")
	}
	if want := s.URL() + "/" + tr.tenantSeg + "/oauth2/v2.0/token"; claims.Aud != want {
		return fail(700020, fmt.Sprintf("Client assertion audience claim does not match Realm issuer: got %q, want %q.", claims.Aud, want))
	}
	now := s.now()
	if claims.Exp == 0 || now.After(time.Unix(claims.Exp, 0).Add(assertionSkew)) || now.Add(assertionSkew).Before(time.Unix(claims.Nbf, 0)) {
		return fail(700024, "Client assertion is not within its valid time range.")
	}
	s.assertionsCertificate.Add(1)
	return true
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// certificateFor finds the registered certificate a thumbprint names. MSAL
// sends standard (not URL) base64; both are accepted.
func (s *Server) certificateFor(x5t, x5tS256 string) *x509.Certificate {
	for _, c := range s.cfg.ClientCertificates {
		s1, s256 := sha1.Sum(c.Raw), sha256.Sum256(c.Raw)
		if x5t != "" && thumbprintEqual(x5t, s1[:]) {
			return c
		}
		if x5tS256 != "" && thumbprintEqual(x5tS256, s256[:]) {
			return c
		}
	}
	return nil
}

func thumbprintEqual(encoded string, sum []byte) bool {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawURLEncoding, base64.URLEncoding} {
		if b, err := enc.DecodeString(encoded); err == nil && bytes.Equal(b, sum) {
			return true
		}
	}
	return false
}

func verifyJWTSignature(cert *x509.Certificate, alg string, parts []string) error {
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("only RSA certificates are simulated, got %T", cert.PublicKey)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return fmt.Errorf("signature encoding: %w", err)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	switch alg {
	case "RS256":
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig)
	case "PS256":
		return rsa.VerifyPSS(pub, crypto.SHA256, sum[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
	default:
		return fmt.Errorf("algorithm %q is not accepted", alg)
	}
}
