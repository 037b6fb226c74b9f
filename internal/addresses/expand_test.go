package addresses

import (
	"reflect"
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	t.Parallel()
	doms := NewDomainSet("Contoso.com", "fabrikam.com")
	tests := []struct {
		name string
		user User
		mode Mode
		want []string
	}{
		{"upn only", User{UPN: "Ann@Contoso.com"}, All, []string{"ann@contoso.com"}},
		{"upn, mail and proxies in order", User{
			UPN: "ann@contoso.com", Mail: "Ann.Lee@Fabrikam.com",
			ProxyAddresses: []string{"SMTP:ann.lee@fabrikam.com", "smtp:al@contoso.com", "smtp:AL2@CONTOSO.COM"},
		}, All, []string{"ann@contoso.com", "ann.lee@fabrikam.com", "al@contoso.com", "al2@contoso.com"}},
		{"primary mode drops proxies", User{
			UPN: "ann@contoso.com", Mail: "ann.lee@fabrikam.com", ProxyAddresses: []string{"smtp:al@contoso.com"},
		}, Primary, []string{"ann@contoso.com", "ann.lee@fabrikam.com"}},
		{"non-smtp proxies never count", User{
			UPN:            "bob@contoso.com",
			ProxyAddresses: []string{"SIP:bob@contoso.com.x", "SIP:sip@contoso.com", "X500:/o=Org/cn=bob", "SPO:spo@contoso.com", "smtp:", "eum:eum@contoso.com"},
		}, All, []string{"bob@contoso.com"}},
		{"upn outside the domain set is dropped", User{UPN: "bob@contoso.onmicrosoft.com", Mail: "bob@contoso.com"}, All, []string{"bob@contoso.com"}},
		{"unverified domains dropped", User{UPN: "c@contoso.com", ProxyAddresses: []string{"smtp:c@unverified.example", "smtp:c@sub.contoso.com"}}, All, []string{"c@contoso.com"}},
		{"null mail", User{UPN: "d@contoso.com", Mail: ""}, All, []string{"d@contoso.com"}},
		{"case-insensitive duplicates collapse", User{UPN: "E@Contoso.com", Mail: "e@contoso.COM", ProxyAddresses: []string{"SMTP:E@CONTOSO.COM"}}, All, []string{"e@contoso.com"}},
		{"guest by #EXT#", User{UPN: "x_partner.com#EXT#@contoso.com", Mail: "x@contoso.com"}, All, nil},
		{"guest by userType", User{UPN: "g@contoso.com", UserType: "Guest"}, All, nil},
		{"member userType kept", User{UPN: "m@contoso.com", UserType: "Member"}, All, []string{"m@contoso.com"}},
		{"no domain part", User{UPN: "nodomain", Mail: "m@contoso.com"}, All, []string{"m@contoso.com"}},
		{"whitespace trimmed", User{UPN: " s@contoso.com "}, All, []string{"s@contoso.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Expand(tt.user, doms, tt.mode)
			if len(got) == 0 && len(tt.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Expand = %q, want %q", got, tt.want)
			}
		})
	}
}

// String spells m as --addresses does, for the messages below.
func (m Mode) String() string {
	if m == Primary {
		return "primary"
	}
	return "all"
}

func TestParseMode(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Mode{"all": All, "ALL": All, "primary": Primary, "Primary": Primary} {
		if m, ok := ParseMode(in); !ok || m != want {
			t.Errorf("ParseMode(%q) = %v, %v", in, m, ok)
		}
	}
	if _, ok := ParseMode("some"); ok {
		t.Error("ParseMode accepted an unknown mode")
	}
}

func TestReadList(t *testing.T) {
	t.Parallel()
	in := "# dead letters of run X\nA@Contoso.com\n\n  b@fabrikam.com   # throttled: MicrosoftAccount 2\na@contoso.com\n"
	got, err := ReadList(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a@contoso.com", "b@fabrikam.com"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ReadList = %q, want %q", got, want)
	}
}

func TestReadListRejectsEveryBadLine(t *testing.T) {
	t.Parallel()
	in := "ok@contoso.com\nnot-an-address\na@b@c.com\nx@nodot\nsp ace@contoso.com\n@contoso.com\nx@.com\n"
	got, err := ReadList(strings.NewReader(in))
	if err == nil || got != nil {
		t.Fatalf("ReadList = %q, %v; want an error and nothing", got, err)
	}
	for _, line := range []string{"line 2", "line 3", "line 4", "line 5", "line 6", "line 7"} {
		if !strings.Contains(err.Error(), line) {
			t.Errorf("error does not name %s: %v", line, err)
		}
	}
	if strings.Contains(err.Error(), "line 1:") {
		t.Errorf("error names a good line: %v", err)
	}
}

func TestReadListRefusesWhatIsNoText(t *testing.T) {
	t.Parallel()
	for name, in := range map[string]string{
		"not UTF-8":     "a@contoso.com\ncaf\xe9@contoso.com\n",
		"control bytes": "a\x00b@contoso.com\n",
		"too long":      "a@contoso.com\n" + strings.Repeat("x", MaxLine+1) + "\n",
	} {
		if got, err := ReadList(strings.NewReader(in)); err == nil {
			t.Errorf("%s: read %q without error", name, got)
		}
	}
}
