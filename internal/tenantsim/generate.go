package tenantsim

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Tenant is a simulated Entra ID directory.
type Tenant struct {
	ID      string
	Name    string
	Domains []Domain
	Users   []User

	// seed salts the consumer-account hash, so that the same address can be
	// a consumer account in one simulated tenant and not in another.
	seed int64
	// forced are addresses with a consumer account whatever the hash says
	// (the hostile users').
	forced map[string]bool
}

// Domain is a domain registered in the tenant.
type Domain struct {
	Name                       string
	Verified, Initial, Default bool
}

// User is a directory user as Graph returns it. Mail "" stands for null.
type User struct {
	ID, UPN, DisplayName, Mail string
	UserType                   string
	AccountEnabled             bool
	ProxyAddresses             []string
}

// The domain names are fixed so that tests and documentation can name them;
// the seed varies everything else. Fabrikam is stored in mixed case because
// Graph returns domain IDs as they were registered, and the product must
// compare them case-insensitively.
const (
	domContoso      = "contoso.com"
	domFabrikam     = "Fabrikam.COM"
	domSales        = "sales.contoso.com"
	domUnverified   = "unverified.example"
	domInitial      = "contoso.onmicrosoft.com"
	domMailInitial  = "contoso.mail.onmicrosoft.com"
	minSpecialUsers = 12
)

func fixedDomains() []Domain {
	return []Domain{
		{Name: domContoso, Verified: true, Default: true},
		{Name: domFabrikam, Verified: true},
		{Name: domSales, Verified: true},
		{Name: domUnverified},
		{Name: domInitial, Verified: true, Initial: true},
		{Name: domMailInitial, Verified: true},
	}
}

var firstNames = []string{
	"Adele", "Alex", "Allan", "Bianca", "Brian", "Cameron", "Christie", "Debra",
	"Diego", "Emily", "Enrico", "Fatima", "Grady", "Hana", "Henrietta", "Irvin",
	"Isaiah", "Johanna", "Joni", "Kenji", "Lee", "Lidia", "Lynne", "Megan",
	"Miriam", "Nestor", "Nora", "Olga", "Omar", "Patti", "Pradeep", "Quinn",
	"Raul", "Rosa", "Sakura", "Sven", "Tomas", "Uma", "Valentina", "Wanda",
	"Xavier", "Yara", "Zoltan", "Élodie", "Øystein",
}

var lastNames = []string{
	"Vance", "Wilber", "Deyoung", "Pell", "Johnson", "White", "Cline", "Berger",
	"Siciliani", "Braun", "Nakamura", "Haddad", "Archie", "Kowalski", "Cole",
	"Bowen", "Hightower", "Lang", "Sherman", "Tanaka", "Gu", "Holloway", "Robbins",
	"Bowen", "Zelenko", "Ito", "Osei", "Petrova", "Farouk", "Fernandez", "Gupta",
	"Rivera", "Smith", "Lindqvist", "Novak", "Mwangi", "Ozturk", "Dubois", "Young",
}

// asciiFold drops the diacritics of the few non-ASCII names so that local
// parts stay plain ASCII while display names keep their accents.
var asciiFold = strings.NewReplacer("É", "E", "é", "e", "Ø", "O", "ø", "o")

// Generate builds a tenant with the given number of users. The result depends
// only on (seed, users). Tenants of fewer than 12 users lack the special
// cases (shared addresses, '#' and '$' UPNs).
func Generate(seed int64, users int) *Tenant {
	if users < 0 {
		users = 0
	}
	// The tenant ID comes from its own stream so that it does not change
	// with the user count.
	idRNG := rand.New(rand.NewPCG(uint64(seed), 0x7e4a7e1d))
	t := &Tenant{
		ID:      guid(idRNG),
		Name:    "Contoso",
		Domains: fixedDomains(),
		Users:   make([]User, users),
		seed:    seed,
	}
	r := rand.New(rand.NewPCG(uint64(seed), 0x05e75))
	for i := range t.Users {
		t.Users[i] = genUser(r, i)
	}
	if users >= minSpecialUsers {
		addSpecialCases(r, t.Users)
	}
	return t
}

func genUser(r *rand.Rand, i int) User {
	first := firstNames[r.IntN(len(firstNames))]
	last := lastNames[r.IntN(len(lastNames))]
	n := strconv.Itoa(i)
	u := User{
		ID:             guid(r),
		DisplayName:    first + " " + last,
		UserType:       "Member",
		AccountEnabled: r.IntN(100) >= 5,
	}
	local := asciiFold.Replace(first) + "." + asciiFold.Replace(last) + n
	roll := r.IntN(1000)
	switch {
	case roll < 3:
		// A guest whose UPN looks like a member's: only userType tells.
		u.UserType = "Guest"
		u.UPN = mixCase(r, local+".g") + "@" + pickCase(r, domContoso)
		u.Mail = u.UPN
		u.ProxyAddresses = []string{"SMTP:" + u.UPN}
		return u
	case roll < 20:
		u.UserType = "Guest"
		ext := strings.ToLower(local) + "@partner" + strconv.Itoa(r.IntN(50)) + ".com"
		u.DisplayName += " (Partner)"
		u.UPN = strings.Replace(ext, "@", "_", 1) + "#EXT#@" + domInitial
		u.Mail = ext
		u.ProxyAddresses = []string{"SMTP:" + ext}
		return u
	}
	switch d := r.IntN(100); {
	case d < 50:
		u.UPN = mixCase(r, local) + "@" + pickCase(r, domContoso)
	case d < 70:
		u.UPN = mixCase(r, local) + "@" + pickCase(r, domFabrikam)
	case d < 85:
		u.UPN = mixCase(r, local) + "@" + pickCase(r, domSales)
	default:
		u.UPN = local + "@" + domInitial
	}
	onInitial := strings.HasSuffix(u.UPN, "@"+domInitial)
	switch m := r.IntN(100); {
	case m < 10:
		// No mailbox: mail stays null and there are no proxy addresses.
		return u
	case m < 40 && !onInitial:
		u.Mail = otherCase(u.UPN)
	default:
		u.Mail = mixCase(r, asciiFold.Replace(first)[:1]+asciiFold.Replace(last)+n) + "@" + pickMailDomain(r)
	}
	px := make([]string, 0, 8)
	px = append(px, "SMTP:"+u.Mail)
	if !strings.EqualFold(u.Mail, u.UPN) {
		px = append(px, "smtp:"+u.UPN)
	}
	if !onInitial {
		px = append(px, "smtp:"+strings.ToLower(local)+"@"+domInitial)
	}
	if r.IntN(100) < 30 {
		px = append(px, "smtp:"+strings.ToLower(local)+"@"+domMailInitial)
	}
	if r.IntN(100) < 50 {
		px = append(px, "smtp:"+asciiFold.Replace(first)+n+"@Sales.Contoso.com")
	}
	if r.IntN(100) < 40 {
		// Left over from a merger: the old company's address, any case.
		px = append(px, "smtp:"+local+"@"+pickCase(r, domFabrikam))
	}
	if r.IntN(100) < 5 {
		px = append(px, "smtp:"+strings.ToLower(local)+"@"+domUnverified)
	}
	if r.IntN(100) < 30 {
		// A legacy Skype address: at a verified domain, but never SMTP, so
		// never a candidate.
		px = append(px, "SIP:"+strings.ToLower(local)+".sip@"+domContoso)
	}
	if r.IntN(100) < 20 {
		px = append(px, "X500:/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn="+
			strings.ReplaceAll(u.ID[:13], "-", "")+"-"+strings.ToLower(local))
	}
	if r.IntN(100) < 10 {
		px = append(px, "SPO:SPO_"+u.ID+"@SPO_"+guid(r))
	}
	u.ProxyAddresses = px
	return u
}

// addSpecialCases overwrites a few members at seed-chosen positions with the
// shapes that break naive code: UPNs needing URL escaping, an address on two
// users (once as mail, once as alias), and the same alias in two cases.
func addSpecialCases(r *rand.Rand, users []User) {
	n := len(users)
	taken := make(map[int]bool)
	pick := func() *User {
		for {
			i := r.IntN(n)
			if !taken[i] {
				taken[i] = true
				u := &users[i]
				if u.UserType == "Guest" || u.Mail == "" {
					*u = memberWithMail(r, i)
				}
				return u
			}
		}
	}
	setUPN := func(u *User, upn string) {
		u.UPN, u.Mail = upn, upn
		u.ProxyAddresses = []string{"SMTP:" + upn}
	}
	setUPN(pick(), "Kim#Lee@"+domContoso)
	setUPN(pick(), "team#ops@"+domFabrikam)
	setUPN(pick(), "$AdminSvc@Contoso.com")

	addAlias := func(u *User, addr string) { u.ProxyAddresses = append(u.ProxyAddresses, "smtp:"+addr) }
	addAlias(pick(), "info@contoso.com")
	addAlias(pick(), "Info@Contoso.com")
	addAlias(pick(), "sales@fabrikam.com")
	addAlias(pick(), "SALES@Fabrikam.COM")

	hd := pick()
	hd.Mail = "Helpdesk@Sales.Contoso.com"
	hd.ProxyAddresses[0] = "SMTP:" + hd.Mail
	addAlias(pick(), "helpdesk@sales.contoso.com")

	// Large tenants get proportionally more shared mailboxes.
	for k := 0; k < n/2000 && len(taken)+2 < n; k++ {
		addr := "team" + strconv.Itoa(k) + "@contoso.com"
		addAlias(pick(), addr)
		addAlias(pick(), strings.ToUpper(addr))
	}
}

func memberWithMail(r *rand.Rand, i int) User {
	for {
		u := genUser(r, i)
		if u.UserType == "Member" && u.Mail != "" {
			return u
		}
	}
}

func pickMailDomain(r *rand.Rand) string {
	switch d := r.IntN(100); {
	case d < 55:
		return pickCase(r, domContoso)
	case d < 80:
		return pickCase(r, domFabrikam)
	case d < 95:
		return domSales
	default:
		return domUnverified
	}
}

// pickCase returns the domain in one of the spellings seen in real
// directories, where the case of a UPN suffix is whatever an admin typed.
func pickCase(r *rand.Rand, d string) string {
	switch r.IntN(4) {
	case 0:
		return strings.ToUpper(d)
	case 1:
		return strings.ToUpper(d[:1]) + d[1:]
	case 2:
		return d
	}
	return strings.ToLower(d)
}

func mixCase(r *rand.Rand, s string) string {
	switch r.IntN(3) {
	case 0:
		return strings.ToLower(s)
	case 1:
		return strings.ToUpper(s)
	}
	return s
}

// otherCase returns s in a case that differs from s whenever s has letters.
func otherCase(s string) string {
	if l := strings.ToLower(s); l != s {
		return l
	}
	return strings.ToUpper(s)
}

const hexDigits = "0123456789abcdef"

// guid draws a version-4-shaped GUID from r.
func guid(r *rand.Rand) string { return formatGUID(r.Uint64(), r.Uint64()) }

// newRequestID is a random GUID for x-ms-request-id and the like; it need
// not be reproducible, only cheap at thousands of requests per second.
func newRequestID() string { return formatGUID(rand.Uint64(), rand.Uint64()) }

// formatGUID is written by hand because Generate calls it hundreds of
// thousands of times.
func formatGUID(hi, lo uint64) string {
	var b [16]byte
	for i := 0; i < 8; i++ {
		b[i] = byte(hi >> (8 * i))
		b[8+i] = byte(lo >> (8 * i))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	j := 0
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[j] = '-'
			j++
		}
		out[j], out[j+1] = hexDigits[c>>4], hexDigits[c&0x0f]
		j += 2
	}
	return string(out[:])
}

// Verify marks a registered domain verified, as an administrator does once
// its DNS record is in place: its addresses come into an audit's scope.
// Call it before NewServer.
func (t *Tenant) Verify(domain string) error {
	for i := range t.Domains {
		if strings.EqualFold(t.Domains[i].Name, domain) {
			t.Domains[i].Verified = true
			return nil
		}
	}
	return fmt.Errorf("domain %q is not registered in the tenant", domain)
}
