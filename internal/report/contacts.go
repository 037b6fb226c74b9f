package report

import (
	"io"
	"strings"

	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/internal/spill"
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

// eachContact groups the present rows by user and calls fn with each
// contact, sorted by display name (ignoring case), then UPN, then user ID;
// the rows are sorted by sorters cfg makes, so that only one contact is in
// memory at a time beyond the sorter's budget.
func eachContact(rows Source, cfg spill.Config, fn func(Contact) error) error {
	sorted := cfg.New()
	defer sorted.Close()
	var key, val []byte
	err := rows(func(part []Row) error {
		for _, r := range part {
			if r.Status != runstore.StatePresent {
				continue
			}
			mail := r.Mail
			if mail == "" {
				mail = r.UPN
			}
			if mail == "" {
				mail = r.Address
			}
			key = spill.AppendKey(key[:0], strings.ToLower(r.DisplayName))
			key = spill.AppendKey(key, r.UPN)
			key = spill.AppendKey(key, r.UserID+mail)
			key = spill.AppendKey(key, r.Address)
			val = spill.AppendField(spill.AppendField(spill.AppendField(val[:0], r.UserID), r.DisplayName), mail)
			if err := sorted.Add(key, val); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	var c *Contact
	err = sorted.Each(func(key, val []byte) error {
		_, rest := spill.SplitKey(key) // the display name lower-cased; the value has it as written
		upn, rest := spill.SplitKey(rest)
		_, rest = spill.SplitKey(rest)
		addr, _ := spill.SplitKey(rest)
		userID, v := spill.NextField(val)
		name, v := spill.NextField(v)
		mail, _ := spill.NextField(v)
		// A user's rows are adjacent; an address of no one is a contact
		// of its own.
		if c != nil && (userID != c.UserID || userID == "") {
			if err := fn(*c); err != nil {
				return err
			}
			c = nil
		}
		if c == nil {
			c = &Contact{UserID: userID, DisplayName: name, UPN: upn, Mail: mail}
		}
		c.Addresses = append(c.Addresses, addr)
		return nil
	})
	if err != nil || c == nil {
		return err
	}
	return fn(*c)
}

// writeContacts writes the contacts CSV, the addresses of a user joined by
// "; ".
func writeContacts(w io.Writer, rows Source, cfg spill.Config) error {
	cw, err := newCSV(w, contactsHeader)
	if err != nil {
		return err
	}
	err = eachContact(rows, cfg, func(c Contact) error {
		return cw.write(c.UserID, c.DisplayName, c.UPN, c.Mail, strings.Join(c.Addresses, "; "))
	})
	if err != nil {
		return err
	}
	return cw.close()
}
