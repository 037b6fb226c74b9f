package addresses

import "testing"

func BenchmarkExpand(b *testing.B) {
	doms := NewDomainSet("contoso.com", "fabrikam.com", "sales.contoso.com")
	u := User{ID: "1", UPN: "Ann.Lee@Contoso.com", Mail: "ann.lee@contoso.com", ProxyAddresses: []string{
		"SMTP:ann.lee@contoso.com", "smtp:al@fabrikam.com", "smtp:ann@sales.contoso.com", "SIP:ann.lee@contoso.com",
		"X500:/o=Contoso/ou=Exchange/cn=Recipients/cn=ann", "smtp:ann@contoso.onmicrosoft.com"}}
	for b.Loop() {
		if len(Expand(u, doms, All)) != 3 {
			b.Fatal("unexpected expansion")
		}
	}
}
