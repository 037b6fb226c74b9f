package tenantsim

import (
	"strings"
	"testing"
)

func TestHostileUsersAndRenamed(t *testing.T) {
	t.Parallel()
	tn := Generate(3, 50)
	tn.AddHostileUsers()
	s, err := NewServer(tn, Config{ClientID: "c", ClientSecret: "s"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	gt := tn.GroundTruth()
	truth := make(map[string]bool)
	for _, a := range gt.Addresses {
		truth[a.Address] = a.ConsumerAccount
	}
	for _, a := range []string{"=cmd|calc!a0@contoso.com", "+1+1@contoso.com", "-2+3@fabrikam.com", "script.user@contoso.com"} {
		if !truth[a] || s.realmCode(a) != 0 {
			t.Errorf("hostile address %s: truth %v, realm code %d; want a consumer account", a, truth[a], s.realmCode(a))
		}
	}
	s.SetRenamed([]string{" +1+1@Contoso.com "})
	for _, tc := range []struct {
		addr string
		code int
	}{{"+1+1@contoso.com", 1}, {"-2+3@fabrikam.com", 0}} {
		if got := s.realmCode(tc.addr); got != tc.code {
			t.Errorf("realm code of %s after the rename = %d, want %d", tc.addr, got, tc.code)
		}
	}
	if got := strings.Join(s.Renamed(), ","); got != "+1+1@contoso.com" {
		t.Errorf("Renamed() = %s", got)
	}
	after := gt.WithRenamed([]string{"+1+1@contoso.com"})
	for _, a := range after.Addresses {
		if a.Address == "+1+1@contoso.com" && a.ConsumerAccount {
			t.Error("WithRenamed left the renamed address a consumer account")
		}
	}
	if !truth["+1+1@contoso.com"] {
		t.Error("WithRenamed changed the original ground truth")
	}
}
