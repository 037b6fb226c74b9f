package tenantsim

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// graphErr is an OData error to send back.
type graphErr struct {
	status    int
	code, msg string
}

func badRequest(code, msg string) *graphErr {
	return &graphErr{status: http.StatusBadRequest, code: code, msg: msg}
}

const advancedQueryHint = "Refer to https://aka.ms/graph-docs/advanced-queries for more information"

// userProp is one user property Graph can return, in the order Graph emits
// them.
type userProp struct {
	name  string
	write func(b []byte, u *User) []byte
}

var userProps = []userProp{
	{"id", func(b []byte, u *User) []byte { return appendJSONString(b, u.ID) }},
	{"businessPhones", func(b []byte, _ *User) []byte { return append(b, "[]"...) }},
	{"displayName", func(b []byte, u *User) []byte { return appendJSONString(b, u.DisplayName) }},
	{"givenName", func(b []byte, u *User) []byte { g, _ := splitName(u.DisplayName); return appendNullable(b, g) }},
	{"jobTitle", appendNull},
	{"mail", func(b []byte, u *User) []byte { return appendNullable(b, u.Mail) }},
	{"mobilePhone", appendNull},
	{"officeLocation", appendNull},
	{"preferredLanguage", appendNull},
	{"surname", func(b []byte, u *User) []byte { _, s := splitName(u.DisplayName); return appendNullable(b, s) }},
	{"userPrincipalName", func(b []byte, u *User) []byte { return appendJSONString(b, u.UPN) }},
	{"accountEnabled", func(b []byte, u *User) []byte { return strconv.AppendBool(b, u.AccountEnabled) }},
	{"userType", func(b []byte, u *User) []byte { return appendJSONString(b, u.UserType) }},
	{"proxyAddresses", func(b []byte, u *User) []byte {
		b = append(b, '[')
		for i, p := range u.ProxyAddresses {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, p)
		}
		return append(b, ']')
	}},
}

// defaultUserMask is what Graph returns without $select: notably neither
// proxyAddresses nor userType, so a client that forgets $select finds out.
const defaultUserMask = 1<<11 - 1

func appendNull(b []byte, _ *User) []byte { return append(b, "null"...) }

func appendNullable(b []byte, s string) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	return appendJSONString(b, s)
}

func splitName(display string) (given, surname string) {
	given, surname, _ = strings.Cut(display, " ")
	return given, surname
}

// selection is a parsed $select: the property mask and its canonical
// spelling ("" for the default set).
type selection struct {
	mask  uint32
	canon string
}

func parseSelect(raw string) (selection, *graphErr) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return selection{mask: defaultUserMask}, nil
	}
	var mask uint32 = 1 // id always comes back
	for _, name := range strings.Split(raw, ",") {
		name = strings.TrimSpace(name)
		if name == "*" {
			mask = 1<<len(userProps) - 1
			continue
		}
		i := propIndex(name)
		if i < 0 {
			return selection{}, badRequest("BadRequest",
				"Could not find a property named '"+name+"' on type 'microsoft.graph.user'.")
		}
		mask |= 1 << i
	}
	var names []string
	for i, p := range userProps {
		if mask&(1<<i) != 0 {
			names = append(names, p.name)
		}
	}
	return selection{mask: mask, canon: strings.Join(names, ",")}, nil
}

func propIndex(name string) int {
	for i, p := range userProps {
		if strings.EqualFold(p.name, name) {
			return i
		}
	}
	return -1
}

func appendUser(b []byte, u *User, mask uint32) []byte {
	b = append(b, '{')
	first := true
	for i, p := range userProps {
		if mask&(1<<i) == 0 {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, p.name...)
		b = append(b, '"', ':')
		b = p.write(b, u)
	}
	return append(b, '}')
}

// usersQuery is a /users list request after parsing, whether it came from
// query options or from a $skiptoken.
type usersQuery struct {
	sel       selection
	top       int
	filterSrc string
	filter    filterExpr
	count     bool
	total     int  // valid when fromToken && count
	fromToken bool // total was carried over from the first page
	pos       int  // index in Tenant.Users to resume from
	key       string
}

// skipToken is what a $skiptoken encodes. It carries the whole query so that
// a nextLink is self-sufficient, as Graph's are.
type skipToken struct {
	P int    `json:"p"`
	T int    `json:"t"`
	S string `json:"s,omitempty"`
	F string `json:"f,omitempty"`
	C bool   `json:"c,omitempty"`
	N int    `json:"n,omitempty"`
}

func (t skipToken) encode() string {
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

var usersOptions = map[string]bool{"$select": true, "$top": true, "$filter": true, "$count": true, "$skiptoken": true}

func (s *Server) parseUsersQuery(r *http.Request) (usersQuery, *graphErr) {
	opts := make(map[string]string)
	for k, vs := range r.URL.Query() {
		name := strings.ToLower(k)
		if !strings.HasPrefix(name, "$") {
			// Graph v1.0 accepts system query options without the dollar.
			if !usersOptions["$"+name] {
				continue
			}
			name = "$" + name
		}
		if !usersOptions[name] {
			return usersQuery{}, badRequest("Request_UnsupportedQuery",
				"The query option '"+k+"' is not supported by the simulator on /users.")
		}
		if _, dup := opts[name]; dup || len(vs) > 1 {
			return usersQuery{}, badRequest("BadRequest",
				"Query option '"+name+"' was specified more than once, but it must be specified at most once.")
		}
		opts[name] = vs[0]
	}
	q := usersQuery{top: s.cfg.PageSize, key: "first"}
	if tok, ok := opts["$skiptoken"]; ok {
		if err := q.fromSkipToken(tok); err != nil {
			return q, err
		}
	} else {
		var err *graphErr
		if q.sel, err = parseSelect(opts["$select"]); err != nil {
			return q, err
		}
		if v, ok := opts["$top"]; ok {
			n, perr := strconv.Atoi(strings.TrimSpace(v))
			if perr != nil || n < 1 || n > maxPageSize {
				return q, badRequest("BadRequest", "Invalid page size specified: '"+v+"'. Must be between 1 and 999 inclusive.")
			}
			q.top = n
		}
		if v, ok := opts["$count"]; ok {
			switch strings.ToLower(strings.TrimSpace(v)) {
			case "true":
				q.count = true
			case "false":
			default:
				return q, badRequest("BadRequest", "Invalid value '"+v+"' for $count: expected true or false.")
			}
		}
		q.filterSrc = opts["$filter"]
	}
	if strings.TrimSpace(q.filterSrc) != "" {
		f, err := parseFilter(q.filterSrc)
		if err != nil {
			return q, badRequest("BadRequest", "Invalid filter clause: "+err.Error())
		}
		q.filter = f
	}
	// Graph checks these on every page, nextLinks included: a client whose
	// page iterator drops the header fails on page two.
	eventual := strings.EqualFold(strings.TrimSpace(r.Header.Get("ConsistencyLevel")), "eventual")
	if q.filter.advanced() && !(eventual && q.count) {
		return q, badRequest("Request_UnsupportedQuery",
			"Operator 'endsWith' is not supported because the required parameters might be missing. Try adding $count=true query parameter and ConsistencyLevel:eventual header. "+advancedQueryHint)
	}
	if q.count && !eventual {
		return q, badRequest("Request_UnsupportedQuery",
			"The $count query option requires the ConsistencyLevel:eventual header. "+advancedQueryHint)
	}
	return q, nil
}

func (q *usersQuery) fromSkipToken(tok string) *graphErr {
	bad := badRequest("Directory_ExpiredPageToken",
		"The specified page token value has expired and can no longer be included in your request.")
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return bad
	}
	var st skipToken
	if json.Unmarshal(b, &st) != nil || st.P < 0 || st.T < 1 || st.T > maxPageSize {
		return bad
	}
	sel, gerr := parseSelect(st.S)
	if gerr != nil {
		return bad
	}
	q.sel, q.top, q.filterSrc, q.count, q.total, q.pos = sel, st.T, st.F, st.C, st.N, st.P
	q.fromToken, q.key = true, tok
	return nil
}

func (q *usersQuery) nextToken(pos int) string {
	return skipToken{P: pos, T: q.top, S: q.sel.canon, F: q.filterSrc, C: q.count, N: q.total}.encode()
}

// appendJSONString appends s as a JSON string. Hand-rolled because the users
// pages are the hot path when a 200,000-user tenant is enumerated.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
