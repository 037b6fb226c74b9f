package tenantsim

import (
	"strings"
)

// Hostile users carry what directory values can hold and a report must
// survive: markup in display names, and addresses a spreadsheet would read
// as formulas. Each has a consumer account, so that every report lists it.
var hostileUsers = []User{
	{ID: "00000000-0000-4000-8000-00000000bad1", UPN: "script.user@contoso.com", DisplayName: `<script>document.title='pwned'</script>Scripted`,
		Mail: "=cmd|calc!A0@contoso.com", UserType: "Member", AccountEnabled: true,
		ProxyAddresses: []string{"SMTP:=cmd|calc!A0@contoso.com", "smtp:script.user@contoso.com"}},
	{ID: "00000000-0000-4000-8000-00000000bad2", UPN: "img.user@contoso.com", DisplayName: `<img src=x onerror="document.title='pwned'">Imaged`,
		Mail: "+1+1@contoso.com", UserType: "Member", AccountEnabled: true,
		ProxyAddresses: []string{"SMTP:+1+1@contoso.com", "smtp:img.user@contoso.com"}},
	{ID: "00000000-0000-4000-8000-00000000bad3", UPN: "minus.user@fabrikam.com", DisplayName: `=HYPERLINK("http://example.invalid","click")`,
		Mail: "-2+3@fabrikam.com", UserType: "Member", AccountEnabled: true,
		ProxyAddresses: []string{"SMTP:-2+3@fabrikam.com", "smtp:minus.user@fabrikam.com", "smtp:@sum(1)@fabrikam.com"}},
}

// AddHostileUsers appends the hostile users to t, each of whose in-scope
// addresses has a consumer account. Call it before NewServer.
func (t *Tenant) AddHostileUsers() {
	if t.forced == nil {
		t.forced = make(map[string]bool)
	}
	scope := t.scopeDomains()
	for _, u := range hostileUsers {
		u.ProxyAddresses = append([]string(nil), u.ProxyAddresses...)
		t.Users = append(t.Users, u)
		for _, a := range append([]string{u.UPN, u.Mail}, u.ProxyAddresses...) {
			if len(a) > 5 && strings.EqualFold(a[:5], "smtp:") {
				a = a[5:]
			}
			if a = strings.ToLower(a); inDomains(scope, a) {
				t.forced[a] = true
			}
		}
	}
}
