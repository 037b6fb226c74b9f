package directory

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// The permissions an operator may name, least privileged first.
var (
	DomainPermissions = []string{"Domain.Read.All", "Domain.ReadWrite.All"}
	UserPermissions   = []string{"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)

// satisfiedBy lists, for each permission an operator may name, the
// permissions that include it: a ReadWrite permission includes its Read
// permission, and the Directory permissions include users and domains.
var satisfiedBy = map[string][]string{
	"Domain.Read.All":         {"Domain.Read.All", "Domain.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"},
	"Domain.ReadWrite.All":    {"Domain.ReadWrite.All", "Directory.ReadWrite.All"},
	"User.Read.All":           {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"},
	"User.ReadWrite.All":      {"User.ReadWrite.All", "Directory.ReadWrite.All"},
	"Directory.Read.All":      {"Directory.Read.All", "Directory.ReadWrite.All"},
	"Directory.ReadWrite.All": {"Directory.ReadWrite.All"},
}

// ErrPermissionMissing: the token lacks a permission the operator named. It
// also matches ErrForbidden, the sentinel of Graph's own refusal.
var ErrPermissionMissing = errors.New("permission missing")

// CanonicalPermission returns the canonical spelling of name if it is one of
// allowed (compared case-insensitively).
func CanonicalPermission(name string, allowed []string) (string, error) {
	for _, p := range allowed {
		if strings.EqualFold(p, strings.TrimSpace(name)) {
			return p, nil
		}
	}
	return "", fmt.Errorf("unknown permission %q: want one of %s", name, strings.Join(allowed, ", "))
}

// Grant is what an access token says its bearer may do.
type Grant struct {
	// Delegated is true for a signed-in user's token (scp claim), false for
	// an application token (roles claim).
	Delegated bool
	// Permissions are the granted Graph permissions.
	Permissions []string
	// Known is false when the token could not be decoded (an opaque token,
	// or a managed identity endpoint's own format): then nothing can be
	// checked in advance and Graph's 403 is the only answer.
	Known bool
}

// Has reports whether the grant includes perm, directly or through a broader
// permission.
func (g Grant) Has(perm string) bool {
	for _, p := range satisfiedBy[perm] {
		if slices.ContainsFunc(g.Permissions, func(q string) bool { return strings.EqualFold(p, q) }) {
			return true
		}
	}
	return false
}

// grantFromToken decodes an access token's payload without verifying it:
// the token is about to be sent to Graph, which does verify it, so this is
// only an early, readable diagnosis (azidentity exposes no claims:
// docs/dependencies.md).
func grantFromToken(token string) Grant {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return Grant{}
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return Grant{}
	}
	var claims struct {
		Roles []string `json:"roles"`
		Scp   string   `json:"scp"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return Grant{}
	}
	if claims.Scp != "" {
		return Grant{Delegated: true, Permissions: strings.Fields(claims.Scp), Known: true}
	}
	// Entra ID omits roles when none is granted, so an app token without
	// the claim has no permission at all.
	return Grant{Permissions: claims.Roles, Known: true}
}

// PermissionError names the permissions a run needs and the token lacks, with
// the steps that grant them.
type PermissionError struct {
	Missing   []string
	Delegated bool
	Granted   []string
	ClientID  string
	// FromGraph is true when Graph refused a call (403) rather than the
	// token's claims showing the gap.
	FromGraph bool
	cause     error
}

func (e *PermissionError) Error() string {
	kind := "application"
	if e.Delegated {
		kind = "delegated"
	}
	var b strings.Builder
	if e.FromGraph {
		fmt.Fprintf(&b, "microsoft graph refused access (403): the app needs the %s permission %s", kind, strings.Join(e.Missing, " and "))
		if e.cause != nil {
			fmt.Fprintf(&b, " (%v)", e.cause)
		}
	} else {
		granted := "none"
		if len(e.Granted) > 0 {
			granted = strings.Join(e.Granted, ", ")
		}
		fmt.Fprintf(&b, "missing microsoft graph %s permission %s (the token grants: %s)", kind, strings.Join(e.Missing, " and "), granted)
	}
	app := "the app"
	if e.ClientID != "" {
		app = "app " + e.ClientID
	}
	fmt.Fprintf(&b, ". To grant it: Microsoft Entra admin center → Identity → Applications → App registrations → %s → API permissions → "+
		"Add a permission → Microsoft Graph → %s permissions → %s, then \"Grant admin consent for <your tenant>\" (needs a Privileged Role Administrator or Global Administrator)",
		app, kindTitle(e.Delegated), strings.Join(e.Missing, ", "))
	return b.String()
}

func kindTitle(delegated bool) string {
	if delegated {
		return "Delegated"
	}
	return "Application"
}

// Is lets callers branch on either sentinel.
func (e *PermissionError) Is(target error) bool {
	return target == ErrPermissionMissing || target == ErrForbidden
}

func (e *PermissionError) Unwrap() error { return e.cause }

// CheckPermissions stops a run early when the token lacks domainPerm or
// userPerm (names from DomainPermissions and UserPermissions). A token whose
// claims cannot be read passes: Graph's 403, mapped by ExplainForbidden, is
// then the answer.
func (c *Client) CheckPermissions(domainPerm, userPerm string) error {
	if !c.grant.Known {
		c.log.Warn("cannot read the permissions granted in the access token; relying on graph's answers")
		return nil
	}
	var missing []string
	for _, p := range []string{domainPerm, userPerm} {
		if p != "" && !c.grant.Has(p) {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return &PermissionError{Missing: missing, Delegated: c.grant.Delegated, Granted: c.grant.Permissions, ClientID: c.clientID}
}

// ExplainForbidden turns a 403 from Graph into a PermissionError naming perm;
// any other error is returned unchanged.
func (c *Client) ExplainForbidden(err error, perm string) error {
	if err == nil || !errors.Is(err, ErrForbidden) || errors.Is(err, ErrPermissionMissing) {
		return err
	}
	return &PermissionError{Missing: []string{perm}, Delegated: c.grant.Delegated, ClientID: c.clientID, FromGraph: true, cause: err}
}
