// Package addresses turns directory users into the set of e-mail addresses a
// run checks, following the address rule (docs/design.md): the UPN, the mail attribute
// and (unless primary-only) every SMTP proxy address, kept only when its domain
// is in the run's domain set, compared case-insensitively and reported
// lower-cased. It also validates operator-supplied address lists.
//
// It knows nothing of Graph, Redis or the realm service: callers hand it plain
// User values and get plain strings back.
package addresses
