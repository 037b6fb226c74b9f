package tenantsim

import (
	"slices"
	"strings"
)

// GroundTruth is what a correct "all addresses" run over the whole tenant
// must find.
type GroundTruth struct {
	TenantID  string         `json:"tenant_id"`
	Domains   []string       `json:"domains"`   // verified, non-onmicrosoft, lower-cased
	Addresses []TruthAddress `json:"addresses"` // sorted by address
}

// TruthAddress is one address the product must check.
type TruthAddress struct {
	Address         string       `json:"address"` // lower-cased
	ConsumerAccount bool         `json:"consumer_account"`
	Owners          []TruthOwner `json:"owners"` // sorted by user_id
}

// TruthOwner is a member user carrying an address.
type TruthOwner struct {
	UserID string `json:"user_id"`
	UPN    string `json:"upn"`
	// Primary is true when the address is this user's UPN or mail rather
	// than only an alias.
	Primary bool `json:"primary"`
}

// GroundTruth derives the truth from the tenant's current contents, applying
// the audit's address rule independently of the product's code.
func (t *Tenant) GroundTruth() GroundTruth {
	scope := t.scopeDomains()
	gt := GroundTruth{TenantID: t.ID, Domains: make([]string, 0, len(scope))}
	for d := range scope {
		gt.Domains = append(gt.Domains, d)
	}
	slices.Sort(gt.Domains)

	index := make(map[string]int, len(t.Users)*3)
	t.eachCandidate(scope, func(u *User, addr string, primary bool) {
		i, ok := index[addr]
		if !ok {
			i = len(gt.Addresses)
			index[addr] = i
			gt.Addresses = append(gt.Addresses, TruthAddress{
				Address:         addr,
				ConsumerAccount: t.isConsumer(addr),
			})
		}
		ta := &gt.Addresses[i]
		// Users are visited one at a time, so a repeat of this user can only
		// be the last owner appended.
		if n := len(ta.Owners); n > 0 && ta.Owners[n-1].UserID == u.ID {
			ta.Owners[n-1].Primary = ta.Owners[n-1].Primary || primary
			return
		}
		ta.Owners = append(ta.Owners, TruthOwner{UserID: u.ID, UPN: u.UPN, Primary: primary})
	})
	slices.SortFunc(gt.Addresses, func(a, b TruthAddress) int { return strings.Compare(a.Address, b.Address) })
	for i := range gt.Addresses {
		if o := gt.Addresses[i].Owners; len(o) > 1 {
			slices.SortFunc(o, func(a, b TruthOwner) int { return strings.Compare(a.UserID, b.UserID) })
		}
	}
	return gt
}

// eachCandidate calls fn for every lower-cased candidate address of every
// member user that lies in scope, in user order; primary tells a UPN or mail
// from an alias. An address may come more than once.
func (t *Tenant) eachCandidate(scope map[string]struct{}, fn func(u *User, addr string, primary bool)) {
	add := func(u *User, addr string, primary bool) {
		addr = strings.ToLower(strings.TrimSpace(addr))
		if inDomains(scope, addr) {
			fn(u, addr, primary)
		}
	}
	for i := range t.Users {
		u := &t.Users[i]
		if isGuest(u) {
			continue
		}
		add(u, u.UPN, true)
		if u.Mail != "" {
			add(u, u.Mail, true)
		}
		for _, p := range u.ProxyAddresses {
			if len(p) > 5 && strings.EqualFold(p[:5], "smtp:") {
				add(u, p[5:], false)
			}
		}
	}
}

// consumerSet is the set of in-scope addresses with a consumer account: all
// the realm service needs, at a fraction of GroundTruth's cost.
func (t *Tenant) consumerSet() map[string]struct{} {
	set := make(map[string]struct{}, len(t.Users)/4)
	t.eachCandidate(t.scopeDomains(), func(_ *User, addr string, _ bool) {
		if t.isConsumer(addr) {
			set[addr] = struct{}{}
		}
	})
	return set
}

func isGuest(u *User) bool {
	return strings.EqualFold(u.UserType, "Guest") || strings.Contains(strings.ToUpper(u.UPN), "#EXT#")
}

// scopeDomains is the default domain set of a run: verified domains outside
// onmicrosoft.com, lower-cased.
func (t *Tenant) scopeDomains() map[string]struct{} {
	s := make(map[string]struct{}, len(t.Domains))
	for _, d := range t.Domains {
		name := strings.ToLower(d.Name)
		if d.Verified && !strings.HasSuffix(name, ".onmicrosoft.com") {
			s[name] = struct{}{}
		}
	}
	return s
}

// verifiedDomains is every verified domain, lower-cased: the realm service
// knows all of them, onmicrosoft.com included.
func (t *Tenant) verifiedDomains() map[string]struct{} {
	s := make(map[string]struct{}, len(t.Domains))
	for _, d := range t.Domains {
		if d.Verified {
			s[strings.ToLower(d.Name)] = struct{}{}
		}
	}
	return s
}

func inDomains(set map[string]struct{}, addr string) bool {
	_, ok := set[domainOf(addr)]
	return ok
}

func domainOf(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return ""
	}
	return addr[at+1:]
}

// isConsumer decides, for a lower-cased address, whether a consumer account
// exists: about 10% of addresses, from a hash so that the answer does not
// depend on generation order.
func (t *Tenant) isConsumer(addr string) bool {
	if t.forced[addr] {
		return true
	}
	// FNV-1a over the seed's bytes then the address, inlined because it runs
	// for every candidate of every user.
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < 8; i++ {
		h = (h ^ uint64(byte(uint64(t.seed)>>(8*i)))) * prime
	}
	for i := 0; i < len(addr); i++ {
		h = (h ^ uint64(addr[i])) * prime
	}
	return h%1000 < 100
}
