package directory

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/msaudit/msaudit/internal/addresses"
	"github.com/msaudit/msaudit/internal/tenantsim"
)

const (
	simClientID = "6f1c2a57-0c55-4c9e-9b3e-3d1b2d7c1a01"
	simSecret   = "sim-secret~Qx7.value"
)

type simEnv struct {
	tenant *tenantsim.Tenant
	server *tenantsim.Server
}

// startSim serves a generated tenant of n users over HTTPS on loopback.
func startSim(t *testing.T, n int, cfg tenantsim.Config) simEnv {
	t.Helper()
	tenant := tenantsim.Generate(42, n)
	cfg.ClientID, cfg.ClientSecret = simClientID, simSecret
	srv, err := tenantsim.NewServer(tenant, cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return simEnv{tenant: tenant, server: srv}
}

func (e simEnv) options(t *testing.T) Options {
	return Options{
		Cloud:         cloudGlobal,
		GraphURL:      e.server.GraphURL(),
		AuthorityHost: e.server.URL() + "/",
		TenantID:      e.tenant.ID,
		ClientID:      simClientID,
		ClientSecret:  simSecret,
		HTTPClient: &http.Client{
			Timeout:   30 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.server.CertPool()}},
		},
		Logger: zaptest.NewLogger(t),
	}
}

func (e simEnv) connect(t *testing.T) *Client {
	t.Helper()
	c, err := Connect(t.Context(), e.options(t))
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	return c
}

// collectUsers reads q to the end and fails the test on duplicates.
func collectUsers(t *testing.T, c *Client, q UserQuery) (map[string]addresses.User, int) {
	t.Helper()
	got := make(map[string]addresses.User)
	pages := 0
	err := c.Users(t.Context(), q, func(page []addresses.User) error {
		pages++
		for _, u := range page {
			if _, dup := got[u.ID]; dup {
				t.Errorf("user %s returned twice", u.ID)
			}
			got[u.ID] = u
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Users(%+v): %v", q, err)
	}
	return got, pages
}

func wantUser(u tenantsim.User) addresses.User {
	return addresses.User{ID: u.ID, UPN: u.UPN, Mail: u.Mail, UserType: u.UserType, ProxyAddresses: u.ProxyAddresses}
}

func assertUsers(t *testing.T, got map[string]addresses.User, want []tenantsim.User) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d users, want %d", len(got), len(want))
	}
	for _, w := range want {
		g, ok := got[w.ID]
		if !ok {
			t.Errorf("user %s (%s) missing", w.ID, w.UPN)
			continue
		}
		if exp := wantUser(w); g.UPN != exp.UPN || g.Mail != exp.Mail || g.UserType != exp.UserType ||
			!slices.Equal(g.ProxyAddresses, exp.ProxyAddresses) {
			t.Errorf("user %s = %+v, want %+v", w.ID, g, exp)
		}
	}
}

func TestSimConnectAndDomains(t *testing.T) {
	t.Parallel()
	env := startSim(t, 20, tenantsim.Config{})
	core, logs := observer.New(zap.DebugLevel)
	opts := env.options(t)
	opts.Logger = zap.New(core)
	c, err := Connect(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Domains(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if logs.Len() == 0 {
		t.Error("Connect logged nothing")
	}
	for _, e := range logs.All() {
		line := e.Message
		for k, v := range e.ContextMap() {
			line += " " + k + "=" + fmt.Sprint(v)
		}
		if strings.Contains(line, simSecret) || strings.Contains(line, "Bearer") {
			t.Errorf("log entry leaks a credential: %s", line)
		}
	}
	var want []Domain
	for _, d := range env.tenant.Domains {
		want = append(want, Domain{Name: d.Name, Verified: d.Verified, Initial: d.Initial})
	}
	if !slices.Equal(got, want) {
		t.Errorf("Domains = %+v, want %+v", got, want)
	}
}

func TestSimConnectRejectsBadCredentials(t *testing.T) {
	t.Parallel()
	env := startSim(t, 0, tenantsim.Config{})
	tests := []struct {
		name   string
		mutate func(*Options)
		want   string
	}{
		{"wrong secret", func(o *Options) { o.ClientSecret = "wrong-secret-abc123" }, "AADSTS7000215"},
		{"unknown client", func(o *Options) { o.ClientID = "00000000-0000-0000-0000-000000000001" }, "AADSTS700016"},
		{"unknown tenant", func(o *Options) { o.TenantID = "11111111-2222-3333-4444-555555555555" }, "AADSTS90002"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := env.options(t)
			tt.mutate(&o)
			_, err := Connect(t.Context(), o)
			if err == nil {
				t.Fatal("Connect succeeded")
			}
			msg := err.Error()
			t.Logf("error: %s", msg)
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q lacks %s", msg, tt.want)
			}
			if strings.Contains(msg, o.ClientSecret) {
				t.Errorf("error %q contains the secret", msg)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error %q spans lines", msg)
			}
			if !errors.Is(err, ErrUnauthorized) {
				t.Errorf("error does not match ErrUnauthorized")
			}
		})
	}
}

func TestSimUsersEveryUserOncePageByPage(t *testing.T) {
	t.Parallel()
	env := startSim(t, 1000, tenantsim.Config{})
	c := env.connect(t)
	got := make(map[string]addresses.User)
	pages := 0
	err := c.Users(t.Context(), UserQuery{PageSize: 150}, func(page []addresses.User) error {
		pages++
		// Streaming: page k reaches us before page k+1 is requested.
		var served int64
		for _, n := range env.server.Stats().UserPages {
			served += n
		}
		if served != int64(pages) {
			t.Errorf("page %d handed over after %d pages were served", pages, served)
		}
		if len(page) > 150 {
			t.Errorf("page %d has %d users, more than $top", pages, len(page))
		}
		for _, u := range page {
			if _, dup := got[u.ID]; dup {
				t.Errorf("user %s returned twice", u.ID)
			}
			got[u.ID] = u
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if pages != 7 {
		t.Errorf("%d pages, want 7", pages)
	}
	assertUsers(t, got, env.tenant.Users)
}

func TestSimUsersStopsOnCallbackError(t *testing.T) {
	t.Parallel()
	env := startSim(t, 300, tenantsim.Config{})
	c := env.connect(t)
	stop := errors.New("stop")
	calls := 0
	err := c.Users(t.Context(), UserQuery{PageSize: 100}, func([]addresses.User) error {
		calls++
		return stop
	})
	if err != stop || calls != 1 {
		t.Errorf("Users = %v after %d calls, want the callback's error after 1", err, calls)
	}
}

func TestSimUsersSurviveThrottling(t *testing.T) {
	t.Parallel()
	env := startSim(t, 400, tenantsim.Config{GraphThrottleEvery: 3})
	c := env.connect(t)
	got, _ := collectUsers(t, c, UserQuery{PageSize: 100})
	assertUsers(t, got, env.tenant.Users)
	st := env.server.Stats()
	var served int64
	for page, n := range st.UserPages {
		served += n
		if n != 1 {
			t.Errorf("page %q served %d times", page, n)
		}
	}
	if st.GraphRequests <= served {
		t.Errorf("%d Graph requests for %d pages: nothing was throttled", st.GraphRequests, served)
	}
}

func TestSimUsersDefaultPageSize(t *testing.T) {
	t.Parallel()
	env := startSim(t, 1000, tenantsim.Config{})
	c := env.connect(t)
	got, pages := collectUsers(t, c, UserQuery{})
	if pages != 2 {
		t.Errorf("%d pages for 1000 users, want 2 ($top=999)", pages)
	}
	assertUsers(t, got, env.tenant.Users)
}

func TestSimUsersFilter(t *testing.T) {
	t.Parallel()
	env := startSim(t, 500, tenantsim.Config{})
	c := env.connect(t)
	got, _ := collectUsers(t, c, UserQuery{Filter: "startsWith(displayName,'a')", PageSize: 20})
	var want []tenantsim.User
	for _, u := range env.tenant.Users {
		if strings.HasPrefix(strings.ToLower(u.DisplayName), "a") {
			want = append(want, u)
		}
	}
	if len(want) == 0 || len(want) == len(env.tenant.Users) {
		t.Fatalf("filter selects %d of %d users: a useless test", len(want), len(env.tenant.Users))
	}
	assertUsers(t, got, want)
}

func TestSimUsersAdvancedFilter(t *testing.T) {
	t.Parallel()
	env := startSim(t, 500, tenantsim.Config{})
	c := env.connect(t)
	const filter = "endsWith(userPrincipalName,'@contoso.com')"
	var want []tenantsim.User
	for _, u := range env.tenant.Users {
		if strings.HasSuffix(strings.ToLower(u.UPN), "@contoso.com") {
			want = append(want, u)
		}
	}
	// The simulator, like Graph, rejects any page of an advanced query that
	// lacks ConsistencyLevel: eventual or $count=true.
	got, pages := collectUsers(t, c, UserQuery{Filter: filter, Advanced: true, PageSize: 25})
	if pages < 3 {
		t.Errorf("only %d pages: the later-page headers are not exercised", pages)
	}
	assertUsers(t, got, want)

	err := c.Users(t.Context(), UserQuery{Filter: filter}, func([]addresses.User) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "Request_UnsupportedQuery") || !strings.Contains(err.Error(), filter) {
		t.Errorf("advanced filter without Advanced: error %v, want Graph's Request_UnsupportedQuery naming the filter", err)
	}
}

func TestSimUser(t *testing.T) {
	t.Parallel()
	env := startSim(t, 200, tenantsim.Config{})
	c := env.connect(t)
	find := func(pred func(tenantsim.User) bool) tenantsim.User {
		for _, u := range env.tenant.Users {
			if pred(u) {
				return u
			}
		}
		t.Fatal("no such user in the generated tenant")
		return tenantsim.User{}
	}
	plain := find(func(u tenantsim.User) bool { return u.UserType == "Member" && !strings.ContainsAny(u.UPN, "#$") })
	hash := find(func(u tenantsim.User) bool { return strings.Contains(u.UPN, "#") && !strings.Contains(u.UPN, "#EXT#") })
	dollar := find(func(u tenantsim.User) bool { return strings.HasPrefix(u.UPN, "$") })
	guest := find(func(u tenantsim.User) bool { return strings.Contains(u.UPN, "#EXT#") })

	tests := []struct {
		name, key string
		want      tenantsim.User
	}{
		{"by id", plain.ID, plain},
		{"by upn", plain.UPN, plain},
		{"by upn other case", strings.ToUpper(plain.UPN), plain},
		{"upn with #", hash.UPN, hash},
		{"upn starting with $", dollar.UPN, dollar},
		{"guest upn with #EXT#", guest.UPN, guest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := c.User(t.Context(), tt.key)
			if err != nil {
				t.Fatalf("User(%q): %v", tt.key, err)
			}
			if exp := wantUser(tt.want); got.ID != exp.ID || got.UPN != exp.UPN || got.Mail != exp.Mail ||
				got.UserType != exp.UserType || !slices.Equal(got.ProxyAddresses, exp.ProxyAddresses) {
				t.Errorf("User(%q) = %+v, want %+v", tt.key, got, exp)
			}
		})
	}

	for _, key := range []string{"nobody@contoso.com", "00000000-0000-0000-0000-000000000000", "$nobody@contoso.com"} {
		_, err := c.User(t.Context(), key)
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("User(%q) error = %v, want ErrNotFound", key, err)
		} else if !strings.Contains(err.Error(), "Request_ResourceNotFound") {
			t.Errorf("User(%q) error %q lacks Graph's code", key, err)
		}
	}
}

func TestSimForbiddenWithoutUserRole(t *testing.T) {
	t.Parallel()
	env := startSim(t, 20, tenantsim.Config{Roles: []string{"Domain.Read.All"}})
	c := env.connect(t)
	if _, err := c.Domains(t.Context()); err != nil {
		t.Fatalf("Domains with Domain.Read.All: %v", err)
	}
	err := c.Users(t.Context(), UserQuery{}, func([]addresses.User) error { return nil })
	if !errors.Is(err, ErrForbidden) {
		t.Fatalf("Users error = %v, want ErrForbidden", err)
	}
	const want = "list users: graph 403 Authorization_RequestDenied: Insufficient privileges to complete the operation."
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q, want it to start with %q", err, want)
	}
	if _, err := c.User(t.Context(), env.tenant.Users[0].ID); !errors.Is(err, ErrForbidden) {
		t.Errorf("User error = %v, want ErrForbidden", err)
	}
}
