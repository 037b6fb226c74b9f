package directory

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/msaudit/msaudit/internal/addresses"
	"github.com/msaudit/msaudit/internal/tenantsim"
)

func fakeJWT(claims map[string]any) string {
	b, _ := json.Marshal(claims)
	return "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString(b) + ".c2ln"
}

func TestGrantFromToken(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		token string
		want  Grant
	}{
		{"app roles", fakeJWT(map[string]any{"roles": []string{"User.Read.All", "Domain.Read.All"}}),
			Grant{Permissions: []string{"User.Read.All", "Domain.Read.All"}, Known: true}},
		{"delegated scopes", fakeJWT(map[string]any{"scp": "User.Read.All Domain.Read.All openid"}),
			Grant{Delegated: true, Permissions: []string{"User.Read.All", "Domain.Read.All", "openid"}, Known: true}},
		{"app without roles", fakeJWT(map[string]any{"appid": "x"}), Grant{Known: true}},
		{"opaque", "not-a-jwt", Grant{}},
		{"bad payload", "a.!!!.c", Grant{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got := grantFromToken(c.token)
			if got.Delegated != c.want.Delegated || got.Known != c.want.Known ||
				strings.Join(got.Permissions, ",") != strings.Join(c.want.Permissions, ",") {
				t.Errorf("grantFromToken = %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestGrantHas(t *testing.T) {
	t.Parallel()
	cases := []struct {
		granted []string
		need    string
		want    bool
	}{
		{[]string{"User.Read.All"}, "User.Read.All", true},
		{[]string{"user.read.all"}, "User.Read.All", true},
		{[]string{"User.ReadWrite.All"}, "User.Read.All", true},
		{[]string{"Directory.Read.All"}, "User.Read.All", true},
		{[]string{"Directory.ReadWrite.All"}, "User.ReadWrite.All", true},
		{[]string{"Directory.Read.All"}, "Domain.Read.All", true},
		{[]string{"Domain.ReadWrite.All"}, "Domain.Read.All", true},
		{[]string{"User.Read.All"}, "User.ReadWrite.All", false},
		{[]string{"Directory.Read.All"}, "User.ReadWrite.All", false},
		{[]string{"Domain.Read.All"}, "Domain.ReadWrite.All", false},
		{[]string{"User.Read"}, "User.Read.All", false},
		{nil, "Domain.Read.All", false},
	}
	for _, c := range cases {
		if got := (Grant{Permissions: c.granted, Known: true}).Has(c.need); got != c.want {
			t.Errorf("%v has %s = %v, want %v", c.granted, c.need, got, c.want)
		}
	}
}

func TestCanonicalPermission(t *testing.T) {
	t.Parallel()
	if p, err := CanonicalPermission("directory.read.all", UserPermissions); err != nil || p != "Directory.Read.All" {
		t.Errorf("CanonicalPermission = %q, %v", p, err)
	}
	if _, err := CanonicalPermission("Directory.Read.All", DomainPermissions); err == nil ||
		!strings.Contains(err.Error(), "Domain.Read.All, Domain.ReadWrite.All") {
		t.Errorf("a user permission as domain permission: %v", err)
	}
}

func TestCheckPermissionsAgainstSim(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		roles      []string
		domainPerm string
		userPerm   string
		missing    string // empty: allowed
	}{
		{"least privilege", []string{"User.Read.All", "Domain.Read.All"}, "Domain.Read.All", "User.Read.All", ""},
		{"directory covers both", []string{"Directory.Read.All"}, "Domain.Read.All", "User.Read.All", ""},
		{"no user permission", []string{"Domain.Read.All"}, "Domain.Read.All", "User.Read.All", "User.Read.All"},
		{"read is not readwrite", []string{"User.Read.All", "Domain.Read.All"}, "Domain.Read.All", "User.ReadWrite.All", "User.ReadWrite.All"},
		{"nothing granted", []string{}, "Domain.Read.All", "User.Read.All", "Domain.Read.All and User.Read.All"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := startSim(t, 3, tenantsim.Config{Roles: c.roles})
			cl := env.connect(t)
			err := cl.CheckPermissions(c.domainPerm, c.userPerm)
			if c.missing == "" {
				if err != nil {
					t.Fatalf("CheckPermissions: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("CheckPermissions passed")
			}
			msg := err.Error()
			for _, want := range []string{"permission " + c.missing, "Grant admin consent", "API permissions", simClientID} {
				if !strings.Contains(msg, want) {
					t.Errorf("error lacks %q:\n%s", want, msg)
				}
			}
			if !errors.Is(err, ErrPermissionMissing) || !errors.Is(err, ErrForbidden) {
				t.Errorf("error matches neither sentinel: %v", err)
			}
		})
	}
}

func TestExplainForbiddenFromGraph(t *testing.T) {
	t.Parallel()
	env := startSim(t, 3, tenantsim.Config{Roles: []string{"Domain.Read.All"}})
	c := env.connect(t)
	err := c.Users(t.Context(), UserQuery{}, func([]addresses.User) error { return nil })
	err = c.ExplainForbidden(err, "User.Read.All")
	var pe *PermissionError
	if !errors.As(err, &pe) || !pe.FromGraph {
		t.Fatalf("ExplainForbidden = %v, want a PermissionError from Graph", err)
	}
	for _, want := range []string{"403", "User.Read.All", "Authorization_RequestDenied", "Grant admin consent"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if other := errors.New("boom"); c.ExplainForbidden(other, "User.Read.All") != other {
		t.Error("a non-403 error was rewritten")
	}
}
