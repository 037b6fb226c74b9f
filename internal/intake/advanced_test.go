package intake

import "testing"

func TestIsAdvancedFilter(t *testing.T) {
	t.Parallel()
	cases := []struct {
		filter string
		want   bool
	}{
		{"", false},
		{"startsWith(displayName,'a')", false},
		{"userType eq 'Member'", false},
		{"endsWith(mail,'@contoso.com')", true},
		{"EndsWith(userPrincipalName, '@contoso.com')", true},
		{"userType ne 'Guest'", true},
		{"not(startsWith(displayName,'a'))", true},
		{"NOT (accountEnabled eq true)", true},
		{"assignedLicenses/$count eq 0", true},
		{"mail eq null", true},
		{"startsWith(displayName,'not(')", false},
		{"displayName eq 'x ne y'", false},
		{"displayName eq 'it''s endsWith(' and userType ne 'Guest'", true},
		{"department eq 'Finance'", false},
		{"onPremisesSyncEnabled eq true", false},
	}
	for _, c := range cases {
		if got := IsAdvancedFilter(c.filter); got != c.want {
			t.Errorf("IsAdvancedFilter(%q) = %v, want %v", c.filter, got, c.want)
		}
	}
}
