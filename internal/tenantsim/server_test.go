package tenantsim

import (
	"crypto/x509"
	"encoding/pem"
	"net"
	"strings"
	"testing"
)

func TestNewServerValidates(t *testing.T) {
	t.Parallel()
	tn := Generate(1, 5)
	ok := Config{ClientID: "c", ClientSecret: "s"}
	cases := map[string]func() (*Tenant, Config){
		"nil tenant":     func() (*Tenant, Config) { return nil, ok },
		"no secret":      func() (*Tenant, Config) { c := ok; c.ClientSecret = ""; return tn, c },
		"page size":      func() (*Tenant, Config) { c := ok; c.PageSize = 1000; return tn, c },
		"throttle every": func() (*Tenant, Config) { c := ok; c.GraphThrottleEvery = -1; return tn, c },
		"fault sum":      func() (*Tenant, Config) { c := ok; c.Realm.Faults = Faults{Code4: 0.7, BadJSON: 0.7}; return tn, c },
	}
	for name, mk := range cases {
		tt, cfg := mk()
		if _, err := NewServer(tt, cfg, nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestServerLifecycle(t *testing.T) {
	t.Parallel()
	s, err := NewServer(Generate(1, 5), Config{ClientID: "c", ClientSecret: "s"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close before Start: %v", err)
	}
	s, _ = NewServer(Generate(1, 5), Config{ClientID: "c", ClientSecret: "s"}, nil)
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err == nil {
		t.Error("second Start succeeded")
	}
	if !strings.HasPrefix(s.URL(), "https://127.0.0.1:") || s.GraphURL() != s.URL()+"/v1.0" {
		t.Errorf("URL %q GraphURL %q", s.URL(), s.GraphURL())
	}
	block, _ := pem.Decode(s.CAPEM())
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !ca.IsCA {
		t.Fatalf("CA PEM: %v", err)
	}
	e := &testEnv{t: t, srv: s, client: httpsClient(s), tenant: s.tenant}
	if r := e.do("GET", s.URL()+"/_sim/stats", nil, nil); r.status != 200 {
		t.Fatalf("stats over TLS: %d", r.status)
	}
	// The leaf must also verify for the other loopback names.
	leaf, err := x509.ParseCertificate(s.certs.leaf.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"localhost", "::1"} {
		chains, err := leaf.Verify(x509.VerifyOptions{Roots: s.CertPool(), DNSName: name})
		if err != nil || len(chains) == 0 {
			t.Errorf("leaf does not verify for %s: %v", name, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := net.Dial("tcp", strings.TrimPrefix(s.URL(), "https://")); err == nil {
		t.Error("listener still open after Close")
	}
}
