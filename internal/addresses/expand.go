package addresses

import (
	"strings"
)

// User is the part of a directory user that address expansion needs, and
// the display name that goes with the report.
type User struct {
	ID             string
	UPN            string
	DisplayName    string
	Mail           string
	UserType       string
	ProxyAddresses []string
}

// IsGuest reports whether u is a B2B guest, who is never audited: Graph marks
// guests with userType Guest, and their UPN carries #EXT#.
func (u User) IsGuest() bool {
	return strings.EqualFold(u.UserType, "Guest") || strings.Contains(strings.ToUpper(u.UPN), "#EXT#")
}

// Mode selects which attributes of a user are candidates.
type Mode int

const (
	// All takes the UPN, mail and every SMTP proxy address.
	All Mode = iota
	// Primary takes the UPN and mail only.
	Primary
)

// ParseMode maps the --addresses flag value to a Mode.
func ParseMode(s string) (Mode, bool) {
	switch strings.ToLower(s) {
	case "all":
		return All, true
	case "primary":
		return Primary, true
	}
	return All, false
}

// DomainSet is a set of lower-cased domain names.
type DomainSet map[string]struct{}

// NewDomainSet builds a set from names in any case.
func NewDomainSet(names ...string) DomainSet {
	s := make(DomainSet, len(names))
	for _, n := range names {
		s[strings.ToLower(strings.TrimSpace(n))] = struct{}{}
	}
	return s
}

// Contains reports whether the lower-cased address addr is at a domain of s.
func (s DomainSet) Contains(addr string) bool {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return false
	}
	_, ok := s[addr[at+1:]]
	return ok
}

// Expand returns the distinct lower-cased candidate addresses of u that lie
// in domains, in a stable order (UPN, mail, then proxies as listed). Guests
// yield nothing.
func Expand(u User, domains DomainSet, mode Mode) []string {
	if u.IsGuest() {
		return nil
	}
	out := make([]string, 0, 2+len(u.ProxyAddresses))
	add := func(a string) {
		a = strings.ToLower(strings.TrimSpace(a))
		if a == "" || !domains.Contains(a) {
			return
		}
		for _, have := range out {
			if have == a {
				return
			}
		}
		out = append(out, a)
	}
	add(u.UPN)
	add(u.Mail)
	if mode == All {
		for _, p := range u.ProxyAddresses {
			if len(p) > 5 && strings.EqualFold(p[:5], "smtp:") {
				add(p[5:])
			}
		}
	}
	return out
}
