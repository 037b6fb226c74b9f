package tenantsim

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The app roles that allow each read, as Graph's permission reference lists
// them.
var (
	domainRoles = []string{"Domain.Read.All", "Domain.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
	userRoles   = []string{"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)

// graphState is the mutable part of the Graph simulation.
type graphState struct {
	mu           sync.Mutex
	pageRequests int64
	pagesServed  int64
	failAfter    int64           // > 0: users pages after this many served answer 500
	throttled    map[string]bool // pages answered 429 whose retry must succeed
	userPages    map[string]int64
}

func (g *graphState) init() {
	g.throttled = make(map[string]bool)
	g.userPages = make(map[string]int64)
}

func (g *graphState) snapshot(st *Stats) {
	g.mu.Lock()
	defer g.mu.Unlock()
	st.UserPages = make(map[string]int64, len(g.userPages))
	for k, v := range g.userPages {
		st.UserPages[k] = v
	}
}

// shouldThrottle counts a users page request and decides whether it gets a
// 429. The retry of a throttled page always passes, so that even every=1
// makes progress.
func (g *graphState) shouldThrottle(key string, every int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pageRequests++
	if g.throttled[key] {
		delete(g.throttled, key)
		return false
	}
	if every > 0 && g.pageRequests%int64(every) == 0 {
		g.throttled[key] = true
		return true
	}
	return false
}

func (g *graphState) served(key string) {
	g.mu.Lock()
	g.userPages[key]++
	g.pagesServed++
	g.mu.Unlock()
}

// broken reports whether the users pages are failing permanently (see
// Config.GraphFailAfterPages).
func (g *graphState) broken() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.failAfter > 0 && g.pagesServed >= g.failAfter
}

func (g *graphState) setFailAfter(n int64) {
	g.mu.Lock()
	g.failAfter = n
	g.mu.Unlock()
}

func (s *Server) serveGraph(w http.ResponseWriter, r *http.Request) {
	s.graphRequests.Add(1)
	h := w.Header()
	h.Set("request-id", newRequestID())
	if c := r.Header.Get("client-request-id"); c != "" {
		h.Set("client-request-id", c)
	}
	tok, gerr := s.authenticate(r)
	if gerr != nil {
		h.Set("WWW-Authenticate", `Bearer realm="", authorization_uri="`+s.URL()+`/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"`)
		s.writeGraphError(w, r, gerr)
		return
	}
	if r.Method != http.MethodGet {
		s.writeGraphError(w, r, &graphErr{http.StatusMethodNotAllowed, "Request_BadRequest",
			"Specified HTTP method is not allowed for the request target."})
		return
	}
	rest := strings.TrimPrefix(r.URL.EscapedPath(), "/v1.0")
	switch {
	case rest == "/domains":
		gerr = s.listDomains(w, tok)
	case strings.HasPrefix(rest, "/domains/"):
		gerr = s.getDomain(w, tok, rest[len("/domains/"):])
	case rest == "/users" || rest == "/users/":
		gerr = s.listUsers(w, r, tok)
	case strings.HasPrefix(rest, "/users/") || strings.HasPrefix(rest, "/users("):
		gerr = s.getUser(w, r, tok, rest[len("/users"):])
	default:
		seg, _, _ := strings.Cut(strings.TrimPrefix(rest, "/"), "/")
		gerr = badRequest("BadRequest", "Resource not found for the segment '"+seg+"'.")
	}
	if gerr != nil {
		s.writeGraphError(w, r, gerr)
	}
}

func (s *Server) authenticate(r *http.Request) (tokenInfo, *graphErr) {
	unauth := func(msg string) *graphErr {
		return &graphErr{http.StatusUnauthorized, "InvalidAuthenticationToken", msg}
	}
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return tokenInfo{}, unauth("Access token is empty.")
	}
	ti, ok := s.tokens.lookup(tok)
	if !ok {
		return tokenInfo{}, unauth("Access token validation failure. Invalid audience.")
	}
	if !s.now().Before(ti.expires) {
		return tokenInfo{}, unauth("Lifetime validation failed, the token is expired.")
	}
	return ti, nil
}

func requireRole(ti tokenInfo, allowed []string) *graphErr {
	for _, have := range ti.roles {
		for _, want := range allowed {
			if have == want {
				return nil
			}
		}
	}
	return &graphErr{http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."}
}

func (s *Server) writeGraphError(w http.ResponseWriter, r *http.Request, e *graphErr) {
	writeJSON(w, e.status, map[string]any{"error": map[string]any{
		"code":    e.code,
		"message": e.msg,
		"innerError": map[string]string{
			"date":              s.now().UTC().Format(time.RFC3339),
			"request-id":        w.Header().Get("request-id"),
			"client-request-id": r.Header.Get("client-request-id"),
		},
	}})
}

func domainJSON(d Domain) map[string]any {
	services := []string{}
	if d.Verified {
		services = []string{"Email", "OfficeCommunicationsOnline"}
	}
	// A subdomain of another registered domain is not a root domain.
	root := !strings.HasSuffix(strings.ToLower(d.Name), "."+domContoso)
	return map[string]any{
		"authenticationType":               "Managed",
		"availabilityStatus":               nil,
		"id":                               d.Name,
		"isAdminManaged":                   true,
		"isDefault":                        d.Default,
		"isInitial":                        d.Initial,
		"isRoot":                           root,
		"isVerified":                       d.Verified,
		"passwordNotificationWindowInDays": 14,
		"passwordValidityPeriodInDays":     2147483647,
		"supportedServices":                services,
		"state":                            nil,
	}
}

func (s *Server) listDomains(w http.ResponseWriter, ti tokenInfo) *graphErr {
	if err := requireRole(ti, domainRoles); err != nil {
		return err
	}
	vals := make([]map[string]any, 0, len(s.tenant.Domains))
	for _, d := range s.tenant.Domains {
		vals = append(vals, domainJSON(d))
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.context": s.GraphURL() + "/$metadata#domains",
		"value":          vals,
	})
	return nil
}

func (s *Server) getDomain(w http.ResponseWriter, ti tokenInfo, escaped string) *graphErr {
	if err := requireRole(ti, domainRoles); err != nil {
		return err
	}
	name, err := url.PathUnescape(escaped)
	if err != nil {
		return badRequest("BadRequest", "Invalid domain segment '"+escaped+"'.")
	}
	for _, d := range s.tenant.Domains {
		if strings.EqualFold(d.Name, name) {
			m := domainJSON(d)
			m["@odata.context"] = s.GraphURL() + "/$metadata#domains/$entity"
			writeJSON(w, http.StatusOK, m)
			return nil
		}
	}
	return notFound(name)
}

func notFound(key string) *graphErr {
	return &graphErr{http.StatusNotFound, "Request_ResourceNotFound",
		"Resource '" + key + "' does not exist or one of its queried reference-property objects are not present."}
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, ti tokenInfo) *graphErr {
	if err := requireRole(ti, userRoles); err != nil {
		return err
	}
	q, gerr := s.parseUsersQuery(r)
	if gerr != nil {
		return gerr
	}
	if s.graph.broken() {
		// 500 is not retried by the Graph SDK: a permanent failure.
		return &graphErr{http.StatusInternalServerError, "UnknownError", "The service failed (simulated outage)."}
	}
	if s.graph.shouldThrottle(q.key, s.cfg.GraphThrottleEvery) {
		w.Header().Set("Retry-After", "1")
		return &graphErr{http.StatusTooManyRequests, "TooManyRequests", "Too many requests."}
	}
	users := s.tenant.Users
	if q.count && !q.fromToken {
		for i := range users {
			if q.filter == nil || q.filter.match(&users[i]) {
				q.total++
			}
		}
	}
	vals := make([]byte, 0, q.top*256)
	n, i := 0, q.pos
	for ; i < len(users) && n < q.top; i++ {
		if q.filter == nil || q.filter.match(&users[i]) {
			if n > 0 {
				vals = append(vals, ',')
			}
			vals = appendUser(vals, &users[i], q.sel.mask)
			n++
		}
	}
	// Looking ahead to the next match means the last page never comes with
	// a nextLink to an empty page.
	for ; i < len(users); i++ {
		if q.filter == nil || q.filter.match(&users[i]) {
			break
		}
	}

	ctx := s.GraphURL() + "/$metadata#users"
	if q.sel.canon != "" {
		ctx += "(" + q.sel.canon + ")"
	}
	b := make([]byte, 0, len(vals)+512)
	b = append(b, `{"@odata.context":`...)
	b = appendJSONString(b, ctx)
	if q.count {
		b = append(b, `,"@odata.count":`...)
		b = strconv.AppendInt(b, int64(q.total), 10)
	}
	if i < len(users) {
		b = append(b, `,"@odata.nextLink":`...)
		b = appendJSONString(b, s.GraphURL()+"/users?$skiptoken="+q.nextToken(i))
	}
	b = append(b, `,"value":[`...)
	b = append(b, vals...)
	b = append(b, "]}"...)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
	s.graph.served(q.key)
	return nil
}

// getUser serves /users/{id|upn} and /users('{upn}'); path is what follows
// "/users", still escaped.
func (s *Server) getUser(w http.ResponseWriter, r *http.Request, ti tokenInfo, path string) *graphErr {
	if err := requireRole(ti, userRoles); err != nil {
		return err
	}
	key, gerr := userKey(path)
	if gerr != nil {
		return gerr
	}
	idx, ok := s.byID[strings.ToLower(key)]
	if !ok {
		idx, ok = s.byUPN[strings.ToLower(key)]
	}
	if !ok {
		return notFound(key)
	}
	sel, gerr := parseSelect(r.URL.Query().Get("$select"))
	if gerr != nil {
		return gerr
	}
	ctx := s.GraphURL() + "/$metadata#users/$entity"
	if sel.canon != "" {
		ctx = s.GraphURL() + "/$metadata#users(" + sel.canon + ")/$entity"
	}
	b := append([]byte(`{"@odata.context":`), appendJSONString(nil, ctx)...)
	body := appendUser(nil, &s.tenant.Users[idx], sel.mask)
	b = append(b, ',')
	b = append(b, body[1:]...)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
	return nil
}

func userKey(path string) (string, *graphErr) {
	if strings.HasPrefix(path, "(") {
		raw, err := url.PathUnescape(path)
		if err != nil || len(raw) < 4 || !strings.HasPrefix(raw, "('") || !strings.HasSuffix(raw, "')") {
			return "", badRequest("BadRequest", "Bad request. Invalid key segment 'users"+path+"'; expected users('{id or userPrincipalName}').")
		}
		return strings.ReplaceAll(raw[2:len(raw)-2], "''", "'"), nil
	}
	seg := strings.TrimPrefix(path, "/")
	if i := strings.IndexByte(seg, '/'); i >= 0 {
		sub, _ := url.PathUnescape(seg[i+1:])
		return "", badRequest("BadRequest", "Resource not found for the segment '"+sub+"'.")
	}
	key, err := url.PathUnescape(seg)
	if err != nil {
		return "", badRequest("BadRequest", "Invalid escaping in segment '"+seg+"'.")
	}
	if strings.HasPrefix(key, "$") {
		// Graph parses a leading '$' as a system segment; its docs tell
		// callers to use /users('$...') instead.
		return "", badRequest("BadRequest", "Resource not found for the segment '"+key+"'.")
	}
	return key, nil
}
