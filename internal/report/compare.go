package report

import (
	"sort"

	"github.com/msaudit/msaudit/internal/runstore"
)

// Entry is one user-address pair of a comparison.
type Entry struct {
	Address     string `json:"address"`
	UserID      string `json:"user_id"`
	UPN         string `json:"upn"`
	DisplayName string `json:"display_name"`
}

// Comparison is the progress of a campaign between an earlier run (Old) and
// a later one, typically its re-check (New).
type Comparison struct {
	Old string `json:"old_run"`
	New string `json:"new_run"`
	// Resolved: a consumer account in Old, none in New (renamed).
	Resolved []Entry `json:"resolved"`
	// StillPresent: a consumer account in both.
	StillPresent []Entry `json:"still_present"`
	// NewlyPresent: a consumer account in New, not in Old (absent there,
	// not answered, or not checked).
	NewlyPresent []Entry `json:"newly_present"`
	// Unconfirmed: a consumer account in Old, no answer in New
	// (dead-lettered, pending or not checked): neither resolved nor not.
	Unconfirmed []Entry `json:"unconfirmed"`
}

// Compare classifies every address found present in either run. Entries
// are per user-address pair, the users as the run that decided the class
// lists them, sorted by address then user ID.
func Compare(oldID string, old []Row, newID string, cur []Row) *Comparison {
	c := &Comparison{Old: oldID, New: newID, Resolved: []Entry{}, StillPresent: []Entry{}, NewlyPresent: []Entry{}, Unconfirmed: []Entry{}}
	before := make(map[string]runstore.AddressStatus, len(old))
	for _, r := range old {
		before[r.Address] = r.Status
	}
	after := make(map[string]runstore.AddressStatus, len(cur))
	for _, r := range cur {
		after[r.Address] = r.Status
		var list *[]Entry
		switch was := before[r.Address] == runstore.StatePresent; {
		case was && r.Status == runstore.StateAbsent:
			list = &c.Resolved
		case was && r.Status == runstore.StatePresent:
			list = &c.StillPresent
		case !was && r.Status == runstore.StatePresent:
			list = &c.NewlyPresent
		case was:
			list = &c.Unconfirmed
		default:
			continue
		}
		*list = append(*list, entry(r))
	}
	for _, r := range old {
		if _, rechecked := after[r.Address]; !rechecked && r.Status == runstore.StatePresent {
			c.Unconfirmed = append(c.Unconfirmed, entry(r))
		}
	}
	for _, l := range [][]Entry{c.Resolved, c.StillPresent, c.NewlyPresent, c.Unconfirmed} {
		sort.Slice(l, func(i, j int) bool {
			if l[i].Address != l[j].Address {
				return l[i].Address < l[j].Address
			}
			return l[i].UserID < l[j].UserID
		})
	}
	return c
}

// Addresses counts the distinct addresses of entries.
func Addresses(entries []Entry) int {
	n := 0
	for i, e := range entries {
		if i == 0 || entries[i-1].Address != e.Address {
			n++
		}
	}
	return n
}

func entry(r Row) Entry {
	return Entry{Address: r.Address, UserID: r.UserID, UPN: r.UPN, DisplayName: r.DisplayName}
}
