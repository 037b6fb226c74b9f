package intake

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/msaudit/msaudit/internal/addresses"
	"github.com/msaudit/msaudit/internal/directory"
	"github.com/msaudit/msaudit/internal/submit"
)

type fakeDir struct {
	domains []directory.Domain
	users   map[string]addresses.User
	pages   [][]addresses.User
}

func (f *fakeDir) Domains(context.Context) ([]directory.Domain, error) { return f.domains, nil }

func (f *fakeDir) Users(_ context.Context, _ directory.UserQuery, fn func([]addresses.User) error) error {
	for _, p := range f.pages {
		if err := fn(p); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeDir) User(_ context.Context, id string) (addresses.User, error) {
	if u, ok := f.users[strings.ToLower(id)]; ok {
		return u, nil
	}
	return addresses.User{}, fmt.Errorf("get user: %w", directory.ErrNotFound)
}

var tenant = &fakeDir{domains: []directory.Domain{
	{Name: "Contoso.com", Verified: true},
	{Name: "fabrikam.com", Verified: true},
	{Name: "unverified.example", Verified: false},
	{Name: "contoso.onmicrosoft.com", Verified: true, Initial: true},
	{Name: "contoso.mail.onmicrosoft.com", Verified: true},
}}

func TestDomainsDefaultIsVerifiedNonOnMicrosoft(t *testing.T) {
	t.Parallel()
	got, err := Domains(t.Context(), tenant, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"contoso.com", "fabrikam.com"}; !reflect.DeepEqual(DomainNames(got), want) {
		t.Errorf("domains = %v, want %v", DomainNames(got), want)
	}
}

func TestDomainsRequested(t *testing.T) {
	t.Parallel()
	got, err := Domains(t.Context(), tenant, []string{"FABRIKAM.com"})
	if err != nil || !reflect.DeepEqual(DomainNames(got), []string{"fabrikam.com"}) {
		t.Fatalf("domains = %v, %v", got, err)
	}
	_, err = Domains(t.Context(), tenant, []string{"contoso.com", "nope.example", "unverified.example"})
	if err == nil || !strings.Contains(err.Error(), "not in the tenant: nope.example") || !strings.Contains(err.Error(), "not verified: unverified.example") {
		t.Fatalf("err = %v, want both bad domains named", err)
	}
}

func TestResolveUsersReportsAllUnknown(t *testing.T) {
	t.Parallel()
	dir := &fakeDir{users: map[string]addresses.User{"a@contoso.com": {ID: "1", UPN: "a@contoso.com"}}}
	_, err := ResolveUsers(t.Context(), dir, []string{"a@contoso.com", "x@contoso.com", "y@contoso.com"})
	if err == nil || !strings.Contains(err.Error(), "2 users not found") || !strings.Contains(err.Error(), "x@contoso.com, y@contoso.com") {
		t.Fatalf("err = %v", err)
	}
	users, err := ResolveUsers(t.Context(), dir, []string{"A@contoso.com"})
	if err != nil || len(users) != 1 {
		t.Fatalf("users = %v, %v", users, err)
	}
}

func TestTenantSourceSkipsGuestsAndCountsMembers(t *testing.T) {
	t.Parallel()
	dir := &fakeDir{pages: [][]addresses.User{
		{{ID: "1", UPN: "a@contoso.com", ProxyAddresses: []string{"smtp:a2@fabrikam.com"}}, {ID: "g", UPN: "g_x.com#EXT#@contoso.com"}},
		{{ID: "2", UPN: "b@contoso.onmicrosoft.com", Mail: "b@contoso.com"}},
	}}
	doms := addresses.NewDomainSet("contoso.com", "fabrikam.com")
	var users int
	var got []string
	err := TenantSource(dir, directory.UserQuery{}, doms, addresses.All)(t.Context(), func(n int, cs []submit.Candidate) error {
		users += n
		for _, c := range cs {
			got = append(got, c.Address+"/"+c.Owner.UserID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a@contoso.com/1", "a2@fabrikam.com/1", "b@contoso.com/2"}; users != 2 || !reflect.DeepEqual(got, want) {
		t.Errorf("users %d, candidates %v, want 2 and %v", users, got, want)
	}
	stop := errors.New("stop")
	if err := TenantSource(dir, directory.UserQuery{}, doms, addresses.All)(t.Context(), func(int, []submit.Candidate) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("emit error not returned: %v", err)
	}
}
