package tenantsim

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestGraphAuthentication(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 20, nil)
	wantGraphError(t, e.graph("", "/users", nil), 401, "InvalidAuthenticationToken")
	wantGraphError(t, e.graph("not-a-token", "/users", nil), 401, "InvalidAuthenticationToken")
	tok := e.token()
	if r := e.graph(tok, "/users", nil); r.status != 200 {
		t.Fatalf("users: %d %s", r.status, r.body)
	}
	e.clock.Advance(3599 * time.Second)
	msg := wantGraphError(t, e.graph(tok, "/users", nil), 401, "InvalidAuthenticationToken")
	if !strings.Contains(msg, "expired") {
		t.Fatalf("expired token message %q", msg)
	}
	if r := e.graph(tok, "/nosuch", nil); r.status != 401 {
		t.Fatalf("unknown path with expired token: %d, want 401 before routing", r.status)
	}
}

func TestGraphPermissions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		roles          []string
		domains, users int
	}{
		{nil, 200, 200}, // DefaultRoles
		{[]string{"User.Read.All"}, 403, 200},
		{[]string{"Domain.ReadWrite.All"}, 200, 403},
		{[]string{"Directory.Read.All"}, 200, 200},
		{[]string{}, 403, 403},
	}
	for _, c := range cases {
		e := newEnv(t, 20, func(cfg *Config) { cfg.Roles = c.roles })
		tok := e.token()
		for path, want := range map[string]int{"/domains": c.domains, "/users": c.users,
			"/users/" + e.tenant.Users[0].ID: c.users, "/domains/contoso.com": c.domains} {
			r := e.graph(tok, path, nil)
			if want == 403 {
				if msg := wantGraphError(t, r, 403, "Authorization_RequestDenied"); msg != "Insufficient privileges to complete the operation." {
					t.Errorf("403 message %q", msg)
				}
			} else if r.status != want {
				t.Errorf("roles %v %s: %d, want %d", c.roles, path, r.status, want)
			}
		}
	}
}

func TestGraphDomains(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 20, nil)
	r := e.graph(e.token(), "/domains", nil)
	vals := r.json(t)["value"].([]any)
	got := map[string]map[string]any{}
	for _, v := range vals {
		d := v.(map[string]any)
		got[d["id"].(string)] = d
	}
	if len(got) != 6 || got["Fabrikam.COM"]["isVerified"] != true || got["unverified.example"]["isVerified"] != false ||
		got["contoso.onmicrosoft.com"]["isInitial"] != true || got["contoso.com"]["isDefault"] != true {
		t.Fatalf("domains %s", r.body)
	}
	if r := e.graph(e.token(), "/domains/FABRIKAM.com", nil); r.status != 200 || r.json(t)["id"] != "Fabrikam.COM" {
		t.Fatalf("get domain: %d %s", r.status, r.body)
	}
	wantGraphError(t, e.graph(e.token(), "/domains/nosuch.example", nil), 404, "Request_ResourceNotFound")
}

func TestGraphPagingReturnsEveryUserOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 523, nil)
	tok := e.token()
	for _, first := range []string{"/users?$top=37&$select=id,userPrincipalName", "/users"} {
		users, pages := e.listAll(tok, first, nil)
		seen := map[string]bool{}
		for _, u := range users {
			id := u["id"].(string)
			if seen[id] {
				t.Fatalf("user %s served twice", id)
			}
			seen[id] = true
		}
		if len(seen) != len(e.tenant.Users) {
			t.Fatalf("%s: %d users, want %d", first, len(seen), len(e.tenant.Users))
		}
		wantPages := (523 + 36) / 37
		if first == "/users" {
			wantPages = (523 + 99) / 100 // default page size
		}
		if len(pages) != wantPages {
			t.Fatalf("%s: %d pages, want %d", first, len(pages), wantPages)
		}
	}
	st := e.srv.Stats()
	if st.UserPages["first"] != 2 || len(st.UserPages) != 1+(15-1)+(6-1) {
		t.Fatalf("UserPages %v", st.UserPages)
	}
	for k, v := range st.UserPages {
		if k != "first" && v != 1 {
			t.Fatalf("page %s served %d times", k, v)
		}
	}
}

func TestGraphSelect(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 30, nil)
	tok := e.token()
	r := e.graph(tok, "/users?$top=5&$select=userPrincipalName,proxyAddresses,MAIL", nil)
	page := r.json(t)
	if !strings.HasSuffix(page["@odata.context"].(string), "#users(id,mail,userPrincipalName,proxyAddresses)") {
		t.Errorf("context %v", page["@odata.context"])
	}
	for _, v := range page["value"].([]any) {
		u := v.(map[string]any)
		keys := make([]string, 0, len(u))
		for k := range u {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, []string{"id", "mail", "proxyAddresses", "userPrincipalName"}) {
			t.Fatalf("selected keys %v", keys)
		}
	}
	// Without $select Graph leaves out proxyAddresses and userType.
	u := e.graph(tok, "/users?$top=1", nil).json(t)["value"].([]any)[0].(map[string]any)
	if _, ok := u["proxyAddresses"]; ok || u["userPrincipalName"] == nil || u["id"] == nil {
		t.Fatalf("default projection %v", u)
	}
	wantGraphError(t, e.graph(tok, "/users?$select=nosuch", nil), 400, "BadRequest")
}

func TestGraphQueryValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 30, nil)
	tok := e.token()
	for _, q := range []string{"$top=1000", "$top=0", "$top=x", "$count=maybe"} {
		wantGraphError(t, e.graph(tok, "/users?"+q, nil), 400, "BadRequest")
	}
	wantGraphError(t, e.graph(tok, "/users?$orderby=displayName", nil), 400, "Request_UnsupportedQuery")
	wantGraphError(t, e.graph(tok, "/users?$count=true", nil), 400, "Request_UnsupportedQuery")
	wantGraphError(t, e.graph(tok, "/users?$skiptoken=garbage", nil), 400, "Directory_ExpiredPageToken")
	wantGraphError(t, e.graph(tok, "/groups", nil), 400, "BadRequest")
}

func TestGraphFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 800, nil)
	tok := e.token()
	count := func(pred func(u User) bool) int {
		n := 0
		for _, u := range e.tenant.Users {
			if pred(u) {
				n++
			}
		}
		return n
	}
	lower := strings.ToLower
	advanced := map[string]string{"ConsistencyLevel": "eventual"}
	cases := []struct {
		filter string
		header map[string]string
		count  bool
		want   int
	}{
		{"startsWith(displayName,'a')", nil, false, count(func(u User) bool { return strings.HasPrefix(lower(u.DisplayName), "a") })},
		{"startswith(userPrincipalName,'ADELE')", nil, false, count(func(u User) bool { return strings.HasPrefix(lower(u.UPN), "adele") })},
		{"userType eq 'Guest'", nil, false, count(func(u User) bool { return u.UserType == "Guest" })},
		{"userType eq 'member'", nil, false, count(func(u User) bool { return u.UserType == "Member" })},
		{"accountEnabled eq false", nil, false, count(func(u User) bool { return !u.AccountEnabled })},
		{"accountEnabled eq true and (userType eq 'Member' and startsWith(displayName,'L'))", nil, false, count(func(u User) bool {
			return u.AccountEnabled && u.UserType == "Member" && strings.HasPrefix(u.DisplayName, "L")
		})},
		{"endsWith(mail,'@FABRIKAM.com')", advanced, true, count(func(u User) bool { return strings.HasSuffix(lower(u.Mail), "@fabrikam.com") })},
		{"endsWith(userPrincipalName,'@sales.contoso.com') and userType eq 'Member'", advanced, true, count(func(u User) bool {
			return strings.HasSuffix(lower(u.UPN), "@sales.contoso.com") && u.UserType == "Member"
		})},
		{"userPrincipalName eq 'kim#lee@CONTOSO.com'", nil, false, 1},
	}
	for _, c := range cases {
		t.Run(c.filter, func(t *testing.T) {
			if c.want == 0 || c.want == len(e.tenant.Users) {
				t.Fatalf("filter %q selects %d users; the fixture should make it selective", c.filter, c.want)
			}
			q := url.Values{"$filter": {c.filter}, "$top": {"50"}}
			if c.count {
				q.Set("$count", "true")
			}
			users, pages := e.listAll(tok, "/users?"+q.Encode(), c.header)
			if len(users) != c.want {
				t.Fatalf("%d users, want %d", len(users), c.want)
			}
			if c.count && pages[0]["@odata.count"] != float64(c.want) {
				t.Fatalf("@odata.count %v, want %d", pages[0]["@odata.count"], c.want)
			}
		})
	}
}

func TestGraphAdvancedQueryRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 800, func(c *Config) { c.PageSize = 20 })
	tok := e.token()
	f := url.QueryEscape("endsWith(mail,'@contoso.com')")
	hdr := map[string]string{"ConsistencyLevel": "eventual"}
	wantGraphError(t, e.graph(tok, "/users?$filter="+f, nil), 400, "Request_UnsupportedQuery")
	wantGraphError(t, e.graph(tok, "/users?$count=true&$filter="+f, nil), 400, "Request_UnsupportedQuery")
	msg := wantGraphError(t, e.graph(tok, "/users?$filter="+f, hdr), 400, "Request_UnsupportedQuery")
	if !strings.Contains(msg, "$count=true") || !strings.Contains(msg, "ConsistencyLevel:eventual") {
		t.Fatalf("message %q does not say what is missing", msg)
	}
	// A page iterator that drops the header on nextLinks fails on page two.
	r := e.graph(tok, "/users?$count=true&$filter="+f, hdr)
	next := r.json(t)["@odata.nextLink"].(string)
	wantGraphError(t, e.graph(tok, next, nil), 400, "Request_UnsupportedQuery")
	if r := e.graph(tok, next, hdr); r.status != 200 {
		t.Fatalf("page two with header: %d %s", r.status, r.body)
	}
}

func TestGraphMalformedFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 20, nil)
	tok := e.token()
	for _, f := range []string{
		"startsWith(displayName,'a'", "startsWith(displayName,a)", "startsWith(displayName,'a) ",
		"displayName ne 'a'", "userType eq 'Guest' or userType eq 'Member'", "not(accountEnabled eq true)",
		"contains(displayName,'a')", "endsWith(displayName,'a')", "accountEnabled eq 'true'", "userType eq true",
		"jobTitle eq 'x'", "startsWith(displayName,'a') and", "userType eq 'Guest' userType",
	} {
		msg := wantGraphError(t, e.graph(tok, "/users?$filter="+url.QueryEscape(f), map[string]string{"ConsistencyLevel": "eventual"}), 400, "BadRequest")
		if !strings.HasPrefix(msg, "Invalid filter clause") {
			t.Errorf("%q: message %q", f, msg)
		}
	}
}

func TestGraphGetUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 100, nil)
	tok := e.token()
	var hash, dollar User
	for _, u := range e.tenant.Users {
		switch {
		case strings.HasPrefix(u.UPN, "$"):
			dollar = u
		case strings.Contains(u.UPN, "#") && u.UserType == "Member":
			hash = u
		}
	}
	paths := map[string]string{
		"/users/" + e.tenant.Users[3].ID:                                    e.tenant.Users[3].ID,
		"/users/" + strings.ToUpper(e.tenant.Users[3].ID):                   e.tenant.Users[3].ID,
		"/users/" + url.PathEscape(strings.ToUpper(hash.UPN)):               hash.ID,
		"/users('" + url.PathEscape(dollar.UPN) + "')":                      dollar.ID,
		"/users(%27" + url.PathEscape(strings.ToLower(dollar.UPN)) + "%27)": dollar.ID,
	}
	for p, id := range paths {
		r := e.graph(tok, p+"?$select=id,userPrincipalName", nil)
		if r.status != 200 || r.json(t)["id"] != id {
			t.Errorf("%s: %d %s", p, r.status, r.body)
		}
	}
	msg := wantGraphError(t, e.graph(tok, "/users/nobody@contoso.com", nil), 404, "Request_ResourceNotFound")
	if msg != "Resource 'nobody@contoso.com' does not exist or one of its queried reference-property objects are not present." {
		t.Errorf("404 message %q", msg)
	}
	// Graph reads /users/$... as a system segment; the ('...') form is required.
	wantGraphError(t, e.graph(tok, "/users/"+url.PathEscape(dollar.UPN), nil), 400, "BadRequest")
	wantGraphError(t, e.graph(tok, "/users/"+hash.ID+"/memberOf", nil), 400, "BadRequest")
}

func TestGraphThrottleEvery(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 250, func(c *Config) { c.GraphThrottleEvery = 2; c.PageSize = 25 })
	tok := e.token()
	next, throttled, seen := "/users", 0, map[string]bool{}
	for next != "" {
		r := e.graph(tok, next, nil)
		if r.status == http.StatusTooManyRequests {
			wantGraphError(t, r, 429, "TooManyRequests")
			if r.header.Get("Retry-After") != "1" {
				t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
			}
			throttled++
			if r = e.graph(tok, next, nil); r.status != http.StatusOK {
				t.Fatalf("the retry of a throttled page: %d %s", r.status, r.body)
			}
		}
		page := r.json(t)
		for _, v := range page["value"].([]any) {
			seen[v.(map[string]any)["id"].(string)] = true
		}
		next, _ = page["@odata.nextLink"].(string)
	}
	if throttled < 4 || len(seen) != 250 {
		t.Fatalf("throttled %d times, saw %d users", throttled, len(seen))
	}
	for k, v := range e.srv.Stats().UserPages {
		if v != 1 {
			t.Fatalf("page %s counted %d times", k, v)
		}
	}
}
