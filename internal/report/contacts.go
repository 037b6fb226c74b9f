package report

import (
	"io"
	"sort"
	"strings"

	"github.com/msaudit/msaudit/internal/runstore"
)

var contactsHeader = []string{"user_id", "display_name", "upn", "mail", "addresses"}

// Contact is one person to write to: a user with at least one consumer
// account, or, in a run over an address list, the address itself.
type Contact struct {
	UserID      string
	DisplayName string
	UPN         string
	// Mail is where to write: the user's mail attribute, else the UPN
	// (a user without a mailbox), else the address of a list run.
	Mail      string
	Addresses []string // the addresses with a consumer account, sorted
}

// Contacts groups the present rows by user, sorted by display name, then
// UPN, then user ID.
func Contacts(rows []Row) []Contact {
	byUser := make(map[string]*Contact)
	var out []*Contact
	for _, r := range rows {
		if r.Status != runstore.StatePresent {
			continue
		}
		key := r.UserID
		if key == "" {
			key = "\x00" + r.Address // no owner: one contact per address
		}
		c := byUser[key]
		if c == nil {
			c = &Contact{UserID: r.UserID, DisplayName: r.DisplayName, UPN: r.UPN, Mail: r.Mail}
			if c.Mail == "" {
				c.Mail = r.UPN
			}
			if c.Mail == "" {
				c.Mail = r.Address
			}
			byUser[key] = c
			out = append(out, c)
		}
		c.Addresses = append(c.Addresses, r.Address)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if x, y := strings.ToLower(a.DisplayName), strings.ToLower(b.DisplayName); x != y {
			return x < y
		}
		if a.UPN != b.UPN {
			return a.UPN < b.UPN
		}
		return a.UserID+a.Mail < b.UserID+b.Mail
	})
	res := make([]Contact, len(out))
	for i, c := range out {
		sort.Strings(c.Addresses)
		res[i] = *c
	}
	return res
}

// writeContacts writes the contacts CSV, the addresses of a user joined by
// "; ".
func writeContacts(w io.Writer, rows []Row) error {
	cw, err := newCSV(w, contactsHeader)
	if err != nil {
		return err
	}
	for _, c := range Contacts(rows) {
		if err := cw.write(c.UserID, c.DisplayName, c.UPN, c.Mail, strings.Join(c.Addresses, "; ")); err != nil {
			return err
		}
	}
	return cw.close()
}
