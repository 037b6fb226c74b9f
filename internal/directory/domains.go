package directory

import (
	"context"
	"fmt"

	"github.com/microsoftgraph/msgraph-sdk-go/domains"
)

// Domain is one domain registered in the tenant. All of them are returned;
// which ones a run uses (verified, not *.onmicrosoft.com, or the operator's
// list) is the caller's decision.
type Domain struct {
	Name     string
	Verified bool
	// Initial marks the tenant's original <name>.onmicrosoft.com domain.
	Initial bool
}

// Domains lists every domain of the tenant.
func (c *Client) Domains(ctx context.Context) ([]Domain, error) {
	builder := domains.NewDomainsRequestBuilderInternal(map[string]string{}, c.adapter)
	resp, err := builder.Get(ctx, &domains.DomainsRequestBuilderGetRequestConfiguration{
		QueryParameters: &domains.DomainsRequestBuilderGetQueryParameters{
			Select: []string{"id", "isVerified", "isInitial"},
		},
	})
	var out []Domain
	// A tenant rarely has more than one page of domains, but Graph may page
	// any collection, and silently dropping a domain would drop its users'
	// addresses from the audit.
	for page := 1; ; page++ {
		op := "list domains"
		if page > 1 {
			op = fmt.Sprintf("list domains (page %d)", page)
		}
		if err != nil {
			return nil, wrapGraph(op, err)
		}
		if resp == nil {
			return nil, errEmptyResponse(op)
		}
		for _, d := range resp.GetValue() {
			if d == nil || deref(d.GetId()) == "" {
				continue
			}
			out = append(out, Domain{
				Name:     deref(d.GetId()),
				Verified: deref(d.GetIsVerified()),
				Initial:  deref(d.GetIsInitial()),
			})
		}
		next := deref(resp.GetOdataNextLink())
		if next == "" {
			return out, nil
		}
		nextURL, nerr := c.nextPageURL(next, false)
		if nerr != nil {
			return nil, fmt.Errorf("%s: %w", op, nerr)
		}
		resp, err = builder.WithUrl(nextURL).Get(ctx, nil)
	}
}
