package tenantsim

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestGenerateIsDeterministic(t *testing.T) {
	t.Parallel()
	a, b := Generate(42, 500), Generate(42, 500)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same (seed, users) produced different tenants")
	}
	if c := Generate(43, 500); c.ID == a.ID || c.Users[0].ID == a.Users[0].ID {
		t.Fatal("a different seed produced the same IDs")
	}
	if Generate(42, 50).ID != a.ID {
		t.Fatal("tenant ID depends on the user count")
	}
	if n := len(Generate(1, 0).Users); n != 0 {
		t.Fatalf("Generate(1, 0) has %d users", n)
	}
}

func TestGenerateShapes(t *testing.T) {
	t.Parallel()
	tn := Generate(testSeed, 2000)
	ids := map[string]bool{}
	var extGuests, plainGuests, hashUPNs, dollarUPNs, nullMail, disabled, withA int
	for _, u := range tn.Users {
		if ids[u.ID] || len(u.ID) != 36 {
			t.Fatalf("bad or duplicate ID %q", u.ID)
		}
		ids[u.ID] = true
		switch {
		case u.UserType == "Guest" && strings.Contains(u.UPN, "#EXT#"):
			extGuests++
		case u.UserType == "Guest":
			plainGuests++
		case strings.Contains(u.UPN, "#"):
			hashUPNs++
		}
		if strings.HasPrefix(u.UPN, "$") {
			dollarUPNs++
		}
		if u.Mail == "" {
			nullMail++
		}
		if !u.AccountEnabled {
			disabled++
		}
		if strings.HasPrefix(strings.ToLower(u.DisplayName), "a") {
			withA++
		}
	}
	for name, got := range map[string]int{"#EXT# guests": extGuests, "plain-UPN guests": plainGuests,
		"'#' member UPNs": hashUPNs, "'$' UPNs": dollarUPNs, "null mail": nullMail, "disabled": disabled,
		"display names starting with a": withA} {
		if got == 0 {
			t.Errorf("no %s", name)
		}
	}
	if g := extGuests + plainGuests; g < 20 || g > 70 {
		t.Errorf("%d guests of 2000, want about 2%%", g)
	}
	if withA == len(tn.Users) {
		t.Error("startsWith(displayName,'a') would select everyone")
	}
}

func TestGroundTruth(t *testing.T) {
	t.Parallel()
	tn := Generate(testSeed, 2000)
	gt := tn.GroundTruth()
	if gt.TenantID != tn.ID {
		t.Fatalf("tenant ID %q, want %q", gt.TenantID, tn.ID)
	}
	if want := []string{"contoso.com", "fabrikam.com", "sales.contoso.com"}; !slices.Equal(gt.Domains, want) {
		t.Fatalf("domains %v, want %v", gt.Domains, want)
	}
	byAddr := map[string]TruthAddress{}
	consumers := 0
	for i, a := range gt.Addresses {
		if i > 0 && gt.Addresses[i-1].Address >= a.Address {
			t.Fatalf("addresses not sorted and unique at %q", a.Address)
		}
		if a.Address != strings.ToLower(a.Address) {
			t.Fatalf("address %q not lower-cased", a.Address)
		}
		if !inDomains(map[string]struct{}{"contoso.com": {}, "fabrikam.com": {}, "sales.contoso.com": {}}, a.Address) {
			t.Fatalf("out-of-scope address %q in truth", a.Address)
		}
		if len(a.Owners) == 0 || !slices.IsSortedFunc(a.Owners, func(x, y TruthOwner) int { return strings.Compare(x.UserID, y.UserID) }) {
			t.Fatalf("owners of %q empty or unsorted: %+v", a.Address, a.Owners)
		}
		if a.ConsumerAccount {
			consumers++
		}
		byAddr[a.Address] = a
	}
	if frac := float64(consumers) / float64(len(gt.Addresses)); frac < 0.07 || frac > 0.13 {
		t.Errorf("consumer fraction %.3f, want about 0.10", frac)
	}

	// Shared addresses, in both flavours: the same alias in two cases, and one
	// user's mail being another's alias.
	for _, addr := range []string{"info@contoso.com", "sales@fabrikam.com"} {
		if a := byAddr[addr]; len(a.Owners) != 2 || a.Owners[0].Primary || a.Owners[1].Primary {
			t.Errorf("%s owners %+v, want two alias owners", addr, a.Owners)
		}
	}
	hd := byAddr["helpdesk@sales.contoso.com"]
	if len(hd.Owners) != 2 || hd.Owners[0].Primary == hd.Owners[1].Primary {
		t.Errorf("helpdesk owners %+v, want one primary and one alias", hd.Owners)
	}

	isMember := map[string]bool{}
	mixedCase := false
	for _, u := range tn.Users {
		upn := strings.ToLower(u.UPN)
		if u.UserType == "Guest" {
			if _, ok := byAddr[upn]; ok {
				t.Errorf("guest UPN %q in truth", u.UPN)
			}
			if _, ok := byAddr[strings.ToLower(u.Mail)]; ok {
				t.Errorf("guest mail %q in truth", u.Mail)
			}
			continue
		}
		isMember[u.ID] = true
		if u.UPN != upn && !strings.HasSuffix(upn, ".onmicrosoft.com") {
			mixedCase = true
		}
		if a, ok := byAddr[upn]; !strings.HasSuffix(upn, ".onmicrosoft.com") && (!ok || !hasPrimaryOwner(a, u.ID)) {
			t.Errorf("member UPN %q missing from truth or not primary", u.UPN)
		}
		for _, p := range u.ProxyAddresses {
			prefix, addr, _ := strings.Cut(p, ":")
			addr = strings.ToLower(addr)
			_, ok := byAddr[addr]
			switch {
			case strings.EqualFold(prefix, "smtp") && strings.Contains(addr, ".onmicrosoft.com"), strings.HasSuffix(addr, "@"+domUnverified):
				if ok {
					t.Errorf("out-of-scope alias %q in truth", addr)
				}
			case strings.EqualFold(prefix, "smtp"):
				if !ok {
					t.Errorf("in-scope alias %q of %s missing", addr, u.UPN)
				}
			case strings.EqualFold(prefix, "sip") && strings.Contains(addr, ".sip@"):
				if ok {
					t.Errorf("SIP address %q in truth", addr)
				}
			}
		}
	}
	if !mixedCase {
		t.Error("no mixed-case UPNs generated")
	}
	for _, a := range gt.Addresses {
		for _, o := range a.Owners {
			if !isMember[o.UserID] {
				t.Fatalf("owner %s of %s is not a member", o.UPN, a.Address)
			}
		}
	}
}

func hasPrimaryOwner(a TruthAddress, id string) bool {
	for _, o := range a.Owners {
		if o.UserID == id && o.Primary {
			return true
		}
	}
	return false
}

func BenchmarkGenerate200k(b *testing.B) {
	for b.Loop() {
		Generate(1, 200_000)
	}
}

func BenchmarkGroundTruth200k(b *testing.B) {
	tn := Generate(1, 200_000)
	for b.Loop() {
		tn.GroundTruth()
	}
}

// TestVerifyBringsADomainIntoScope: verifying the registered but unverified
// domain adds the aliases users have there to the ground truth, and
// nothing else changes.
func TestVerifyBringsADomainIntoScope(t *testing.T) {
	t.Parallel()
	before := Generate(3, 200).GroundTruth()
	tn := Generate(3, 200)
	if err := tn.Verify("UNVERIFIED.example"); err != nil {
		t.Fatal(err)
	}
	after := tn.GroundTruth()
	old := map[string]bool{}
	for _, a := range before.Addresses {
		old[a.Address] = a.ConsumerAccount
	}
	added := 0
	for _, a := range after.Addresses {
		consumer, ok := old[a.Address]
		switch {
		case !ok && strings.HasSuffix(a.Address, "@"+domUnverified):
			added++
		case !ok:
			t.Errorf("new address %s outside the verified domain", a.Address)
		case consumer != a.ConsumerAccount:
			t.Errorf("%s changed its consumer account", a.Address)
		}
	}
	if added == 0 || len(after.Addresses) != len(before.Addresses)+added {
		t.Errorf("%d addresses before, %d after, %d at the new domain", len(before.Addresses), len(after.Addresses), added)
	}
	if err := tn.Verify("nowhere.example"); err == nil {
		t.Error("verified a domain the tenant does not have")
	}
}
