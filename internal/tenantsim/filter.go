package tenantsim

import (
	"fmt"
	"strings"
)

// filterExpr is a parsed $filter: a conjunction of conditions. It covers the
// subset the audit uses, and refuses everything else loudly so that a
// product bug shows up as an error rather than as a silently wider run.
type filterExpr []condition

type condition struct {
	op    string // "startswith", "endswith" or "eq"
	field filterField
	str   string
	b     bool
}

type filterField struct {
	name   string // as Graph spells it
	isBool bool
	str    func(u *User) string
	bool   func(u *User) bool
}

var filterFields = map[string]filterField{
	"id":                {name: "id", str: func(u *User) string { return u.ID }},
	"displayname":       {name: "displayName", str: func(u *User) string { return u.DisplayName }},
	"userprincipalname": {name: "userPrincipalName", str: func(u *User) string { return u.UPN }},
	"mail":              {name: "mail", str: func(u *User) string { return u.Mail }},
	"usertype":          {name: "userType", str: func(u *User) string { return u.UserType }},
	"accountenabled":    {name: "accountEnabled", isBool: true, bool: func(u *User) bool { return u.AccountEnabled }},
}

// Which properties each function accepts on users, as far as modelled.
var filterFuncFields = map[string]map[string]bool{
	"startswith": {"displayName": true, "userPrincipalName": true, "mail": true},
	"endswith":   {"userPrincipalName": true, "mail": true},
}

func (f filterExpr) match(u *User) bool {
	for _, c := range f {
		if !c.match(u) {
			return false
		}
	}
	return true
}

// advanced reports whether Graph would treat the filter as an advanced
// query, which needs ConsistencyLevel: eventual and $count=true.
func (f filterExpr) advanced() bool {
	for _, c := range f {
		if c.op == "endswith" {
			return true
		}
	}
	return false
}

func (c condition) match(u *User) bool {
	if c.field.isBool {
		return c.field.bool(u) == c.b
	}
	v := c.field.str(u)
	switch c.op {
	case "startswith":
		return len(v) >= len(c.str) && strings.EqualFold(v[:len(c.str)], c.str)
	case "endswith":
		return len(v) >= len(c.str) && strings.EqualFold(v[len(v)-len(c.str):], c.str)
	}
	// A null mail never equals anything.
	return v != "" && strings.EqualFold(v, c.str)
}

// parseFilter parses the supported $filter grammar:
//
//	expr := term { "and" term }
//	term := "(" expr ")" | func "(" property "," string ")" | property "eq" (string | true | false)
func parseFilter(src string) (filterExpr, error) {
	toks, err := lexFilter(src)
	if err != nil {
		return nil, err
	}
	p := &filterParser{toks: toks}
	expr, err := p.expr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		if w := strings.ToLower(t.text); w == "or" || w == "not" {
			return nil, fmt.Errorf("the '%s' operator is not supported by the simulator (only 'and')", w)
		}
		return nil, fmt.Errorf("syntax error at position %d: unexpected '%s'", t.pos, t.text)
	}
	return expr, nil
}

type tokKind int

const (
	tokEOF tokKind = iota
	tokIdent
	tokString
	tokPunct
)

type token struct {
	kind tokKind
	text string // unquoted for strings
	pos  int
}

func lexFilter(s string) ([]token, error) {
	var out []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case c == '(' || c == ')' || c == ',':
			out = append(out, token{tokPunct, string(c), i})
			i++
		case c == '\'':
			var sb strings.Builder
			j := i + 1
			for {
				if j >= len(s) {
					return nil, fmt.Errorf("unterminated string literal at position %d", i)
				}
				if s[j] == '\'' {
					// OData escapes a quote inside a literal by doubling it.
					if j+1 < len(s) && s[j+1] == '\'' {
						sb.WriteByte('\'')
						j += 2
						continue
					}
					break
				}
				sb.WriteByte(s[j])
				j++
			}
			out = append(out, token{tokString, sb.String(), i})
			i = j + 1
		case isIdentByte(c):
			j := i
			for j < len(s) && isIdentByte(s[j]) {
				j++
			}
			out = append(out, token{tokIdent, s[i:j], i})
			i = j
		default:
			return nil, fmt.Errorf("syntax error at position %d: unexpected '%c'", i, c)
		}
	}
	return append(out, token{kind: tokEOF, text: "end of input", pos: len(s)}), nil
}

func isIdentByte(c byte) bool {
	return c == '_' || c == '.' || c == '/' || c == '@' || c == '-' ||
		(c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

type filterParser struct {
	toks []token
	i    int
}

func (p *filterParser) peek() token { return p.toks[p.i] }

func (p *filterParser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

func (p *filterParser) expect(punct string) error {
	if t := p.next(); t.kind != tokPunct || t.text != punct {
		return fmt.Errorf("syntax error at position %d: expected '%s', found '%s'", t.pos, punct, t.text)
	}
	return nil
}

func (p *filterParser) expr() (filterExpr, error) {
	var out filterExpr
	for {
		e, err := p.term()
		if err != nil {
			return nil, err
		}
		out = append(out, e...)
		if t := p.peek(); t.kind != tokIdent || !strings.EqualFold(t.text, "and") {
			return out, nil
		}
		p.next()
	}
}

func (p *filterParser) term() (filterExpr, error) {
	t := p.next()
	if t.kind == tokPunct && t.text == "(" {
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		return e, p.expect(")")
	}
	if t.kind != tokIdent {
		return nil, fmt.Errorf("syntax error at position %d: expected a property or function, found '%s'", t.pos, t.text)
	}
	if nt := p.peek(); nt.kind == tokPunct && nt.text == "(" {
		c, err := p.call(t)
		return filterExpr{c}, err
	}
	c, err := p.comparison(t)
	return filterExpr{c}, err
}

func (p *filterParser) call(fn token) (condition, error) {
	name := strings.ToLower(fn.text)
	allowed, ok := filterFuncFields[name]
	if !ok {
		return condition{}, fmt.Errorf("unsupported function '%s' at position %d (supported: startsWith, endsWith)", fn.text, fn.pos)
	}
	p.next() // "("
	pt := p.next()
	f, ok := filterFields[strings.ToLower(pt.text)]
	if pt.kind != tokIdent || !ok || !allowed[f.name] {
		return condition{}, fmt.Errorf("unsupported property '%s' for function '%s' at position %d", pt.text, fn.text, pt.pos)
	}
	if err := p.expect(","); err != nil {
		return condition{}, err
	}
	lit := p.next()
	if lit.kind != tokString {
		return condition{}, fmt.Errorf("function '%s' needs a quoted string at position %d, found '%s'", fn.text, lit.pos, lit.text)
	}
	if err := p.expect(")"); err != nil {
		return condition{}, err
	}
	return condition{op: name, field: f, str: lit.text}, nil
}

func (p *filterParser) comparison(prop token) (condition, error) {
	f, ok := filterFields[strings.ToLower(prop.text)]
	if !ok {
		return condition{}, fmt.Errorf("unsupported property '%s' at position %d", prop.text, prop.pos)
	}
	op := p.next()
	if op.kind != tokIdent || !strings.EqualFold(op.text, "eq") {
		return condition{}, fmt.Errorf("unsupported operator '%s' at position %d (only 'eq' is supported)", op.text, op.pos)
	}
	v := p.next()
	switch {
	case f.isBool && v.kind == tokIdent && (v.text == "true" || v.text == "false"):
		return condition{op: "eq", field: f, b: v.text == "true"}, nil
	case !f.isBool && v.kind == tokString:
		return condition{op: "eq", field: f, str: v.text}, nil
	case f.isBool:
		return condition{}, fmt.Errorf("property '%s' needs true or false at position %d, found '%s'", f.name, v.pos, v.text)
	}
	return condition{}, fmt.Errorf("property '%s' needs a quoted string at position %d, found '%s'", f.name, v.pos, v.text)
}
