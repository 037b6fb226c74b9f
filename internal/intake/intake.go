// Package intake decides what a run checks: it resolves the run's domain set
// (the tenant's verified non-onmicrosoft domains, or the operator's --domain
// list, each of which must exist and be verified), resolves a --users-file,
// tells which --filter needs Graph's advanced query mode, and turns the
// tenant's users — or an address list — into the candidate
// stream the submit pipeline consumes. Everything that can be refused is
// refused before the first candidate is emitted, so a bad input leaves
// nothing in Redis.
//
// It reaches Graph only through package directory and is linked only into
// the enqueuer.
package intake

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/msaudit/msaudit/internal/addresses"
	"github.com/msaudit/msaudit/internal/directory"
	"github.com/msaudit/msaudit/internal/submit"
	"github.com/msaudit/msaudit/tasks"
)

// Directory is the part of *directory.Client intake uses.
type Directory interface {
	Domains(ctx context.Context) ([]directory.Domain, error)
	Users(ctx context.Context, q directory.UserQuery, fn func([]addresses.User) error) error
	User(ctx context.Context, idOrUPN string) (addresses.User, error)
}

// Domains returns the run's domain set. requested is the operator's --domain
// list (empty: all verified domains except *.onmicrosoft.com).
func Domains(ctx context.Context, dir Directory, requested []string) (addresses.DomainSet, error) {
	all, err := dir.Domains(ctx)
	if err != nil {
		return nil, err
	}
	byName := make(map[string]directory.Domain, len(all))
	for _, d := range all {
		byName[strings.ToLower(d.Name)] = d
	}
	if len(requested) == 0 {
		var names []string
		for n, d := range byName {
			if d.Verified && !strings.HasSuffix(n, ".onmicrosoft.com") {
				names = append(names, n)
			}
		}
		if len(names) == 0 {
			return nil, errors.New("the tenant has no verified domain other than *.onmicrosoft.com: nothing to audit")
		}
		return addresses.NewDomainSet(names...), nil
	}
	var unknown, unverified []string
	for _, r := range requested {
		n := strings.ToLower(strings.TrimSpace(r))
		d, ok := byName[n]
		switch {
		case !ok:
			unknown = append(unknown, n)
		case !d.Verified:
			unverified = append(unverified, n)
		}
	}
	var problems []string
	if len(unknown) > 0 {
		problems = append(problems, "not in the tenant: "+strings.Join(unknown, ", "))
	}
	if len(unverified) > 0 {
		problems = append(problems, "not verified: "+strings.Join(unverified, ", "))
	}
	if len(problems) > 0 {
		return nil, &ListError{Problem: strings.Join(problems, "; ")}
	}
	return addresses.NewDomainSet(requested...), nil
}

// ListError is an operator's list (domains, users) naming what the tenant
// does not have: the list is wrong, not the connection. The caller says
// which list.
type ListError struct{ Problem string }

func (e *ListError) Error() string { return e.Problem }

// DomainNames lists a domain set, sorted.
func DomainNames(s addresses.DomainSet) []string {
	out := make([]string, 0, len(s))
	for n := range s {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// ResolveUsers looks up every identity (UPN or object ID) and reports all
// unknown ones together.
func ResolveUsers(ctx context.Context, dir Directory, ids []string) ([]addresses.User, error) {
	users := make([]addresses.User, 0, len(ids))
	var unknown []string
	for _, id := range ids {
		u, err := dir.User(ctx, id)
		if errors.Is(err, directory.ErrNotFound) {
			unknown = append(unknown, id)
			continue
		}
		if err != nil {
			return nil, err
		}
		users = append(users, u)
	}
	if len(unknown) > 0 {
		return nil, &ListError{Problem: fmt.Sprintf("%d users not found in the tenant: %s", len(unknown), strings.Join(unknown, ", "))}
	}
	return users, nil
}

// candidates expands one page of users.
func candidates(page []addresses.User, doms addresses.DomainSet, mode addresses.Mode) (int, []submit.Candidate) {
	members := 0
	var out []submit.Candidate
	for _, u := range page {
		if u.IsGuest() {
			continue
		}
		members++
		for _, a := range addresses.Expand(u, doms, mode) {
			out = append(out, submit.Candidate{Address: a, Owner: tasks.Owner{UserID: u.ID, UPN: u.UPN},
				DisplayName: u.DisplayName, Mail: u.Mail})
		}
	}
	return members, out
}

// TenantSource streams the tenant's users (all, or those matching q.Filter),
// reading each page from Graph while the one before is queued
// (submit.ReadAhead).
func TenantSource(dir Directory, q directory.UserQuery, doms addresses.DomainSet, mode addresses.Mode) submit.Source {
	return submit.ReadAhead(func(ctx context.Context, emit submit.Emit) error {
		return dir.Users(ctx, q, func(page []addresses.User) error {
			return emit(candidates(page, doms, mode))
		})
	})
}

// UsersSource emits already resolved users.
func UsersSource(users []addresses.User, doms addresses.DomainSet, mode addresses.Mode) submit.Source {
	return func(ctx context.Context, emit submit.Emit) error {
		const page = 500
		for i := 0; i < len(users); i += page {
			if err := emit(candidates(users[i:min(i+page, len(users))], doms, mode)); err != nil {
				return err
			}
		}
		return nil
	}
}

// AddressSource emits an operator's address list (no users).
func AddressSource(addrs []string) submit.Source {
	return func(ctx context.Context, emit submit.Emit) error {
		const page = 1000
		for i := 0; i < len(addrs); i += page {
			part := addrs[i:min(i+page, len(addrs))]
			cands := make([]submit.Candidate, len(part))
			for j, a := range part {
				cands[j] = submit.Candidate{Address: a}
			}
			if err := emit(0, cands); err != nil {
				return err
			}
		}
		return nil
	}
}
