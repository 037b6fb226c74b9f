package directory

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	abstractions "github.com/microsoft/kiota-abstractions-go"
	khttp "github.com/microsoft/kiota-http-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
	"github.com/microsoftgraph/msgraph-sdk-go/users"
	"go.uber.org/zap"

	"github.com/msaudit/msaudit/internal/addresses"
)

// userFields are the attributes address expansion needs, and the display
// name the report shows to say whom to contact; asking for no more makes
// each page of 999 users several times smaller.
var userFields = []string{"id", "userPrincipalName", "displayName", "mail", "proxyAddresses", "userType"}

const (
	defaultPageSize = 999
	maxPageSize     = 999 // Graph's limit for /users
)

// UserQuery selects the users Users reads.
type UserQuery struct {
	// Filter is a Graph $filter expression, passed through unchanged;
	// empty means all users.
	Filter string
	// Advanced marks an advanced query (e.g. endsWith, ne, not): Graph then
	// requires ConsistencyLevel: eventual and $count=true, which Users sends
	// on every page, not only the first.
	Advanced bool
	// PageSize is $top, 1..999; zero means 999.
	PageSize int
}

// Users streams the users matching q page by page: fn receives each page as
// soon as it is read and returns before the next page is requested, so the
// caller holds one page at a time and can enqueue work moments after the
// first page arrives, however large the tenant. An error from fn stops the
// stream and is returned as is. Empty pages are not passed to fn.
//
// Paging is done here rather than with the core PageIterator so that an
// error on a later page goes through the same OData error mapping as the
// first, and so that the advanced-query headers are resent.
func (c *Client) Users(ctx context.Context, q UserQuery, fn func(page []addresses.User) error) error {
	op := "list users"
	if q.Filter != "" {
		op = fmt.Sprintf("list users with filter %q", q.Filter)
	}
	if fn == nil {
		return fmt.Errorf("%s: nil page callback", op)
	}
	size := q.PageSize
	if size == 0 {
		size = defaultPageSize
	}
	if size < 1 || size > maxPageSize {
		return fmt.Errorf("%s: page size %d is outside 1..%d", op, q.PageSize, maxPageSize)
	}
	top := int32(size)
	params := &users.UsersRequestBuilderGetQueryParameters{Select: userFields, Top: &top}
	if q.Filter != "" {
		params.Filter = &q.Filter
	}
	headers := abstractions.NewRequestHeaders()
	if q.Advanced {
		count := true
		params.Count = &count
		headers.Add("ConsistencyLevel", "eventual")
	}

	started := time.Now()
	total := 0
	resp, err := c.usersPage(ctx, c.usersBuilder(), &users.UsersRequestBuilderGetRequestConfiguration{
		Headers:         headers,
		QueryParameters: params,
	})
	for page := 1; ; page++ {
		pageOp := op
		if page > 1 {
			pageOp = fmt.Sprintf("%s (page %d)", op, page)
		}
		if err != nil {
			return wrapGraph(pageOp, err)
		}
		if resp == nil {
			return errEmptyResponse(pageOp)
		}
		batch := make([]addresses.User, 0, len(resp.Value))
		for _, u := range resp.Value {
			if u != nil {
				batch = append(batch, addresses.User(*u))
			}
		}
		total += len(batch)
		c.log.Debug("users page read", zap.Int("page", page), zap.Int("users", len(batch)), zap.Int("users_total", total))
		if len(batch) > 0 {
			if err := fn(batch); err != nil {
				return err
			}
		}
		if resp.NextLink == "" {
			c.log.Info("users listed", zap.Int("pages", page), zap.Int("users", total),
				zap.Duration("took", time.Since(started)))
			return nil
		}
		nextURL, nerr := c.nextPageURL(resp.NextLink, q.Advanced)
		if nerr != nil {
			return fmt.Errorf("%s: %w", pageOp, nerr)
		}
		// With a raw URL the builder ignores query parameters (the link
		// carries them) but still sends the headers.
		resp, err = c.usersPage(ctx, c.usersBuilder().WithUrl(nextURL), &users.UsersRequestBuilderGetRequestConfiguration{
			Headers: headers,
		})
	}
}

// usersPage is a page of users as Graph sends it, for encoding/json.
type usersPage struct {
	Value    []*graphUser `json:"value"`
	NextLink string       `json:"@odata.nextLink"`
}

// graphUser is a user as Graph sends it, with the fields userFields asks
// for; null reads as empty. Its fields are addresses.User's, in order.
type graphUser struct {
	ID             string   `json:"id"`
	UPN            string   `json:"userPrincipalName"`
	DisplayName    string   `json:"displayName"`
	Mail           string   `json:"mail"`
	UserType       string   `json:"userType"`
	ProxyAddresses []string `json:"proxyAddresses"`
}

// usersPage sends the request b and config describe, through the same
// middleware (authentication, retries, redirects) and error mapping as the
// SDK's Get, and decodes the page itself: the SDK's decoding of a user
// builds a table of every User field's deserializer, for each user, which
// made it most of the CPU a large submit spends. A response without a body,
// or not JSON, is nil, as the SDK has it.
func (c *Client) usersPage(ctx context.Context, b *users.UsersRequestBuilder, config *users.UsersRequestBuilderGetRequestConfiguration) (*usersPage, error) {
	info, err := b.ToGetRequestInformation(ctx, config)
	if err != nil {
		return nil, err
	}
	headers := khttp.NewHeadersInspectionOptions()
	headers.InspectResponseHeaders = true
	info.AddRequestOptions([]abstractions.RequestOption{headers})
	body, err := c.adapter.SendPrimitive(ctx, info, "[]byte", abstractions.ErrorMappings{
		"XXX": odataerrors.CreateODataErrorFromDiscriminatorValue,
	})
	if err != nil || body == nil || !isJSON(headers.GetResponseHeaders().Get("Content-Type")) {
		return nil, err
	}
	var page usersPage
	if err := json.Unmarshal(body.([]byte), &page); err != nil {
		return nil, fmt.Errorf("decode the users page: %w", err)
	}
	return &page, nil
}

// isJSON reports whether the last of a response's Content-Type headers is
// JSON: kiota orders its middleware at random, and when the inspection sits
// inside the retries it keeps every attempt's headers.
func isJSON(contentType []string) bool {
	if len(contentType) == 0 {
		return false
	}
	media, _, _ := strings.Cut(contentType[len(contentType)-1], ";")
	return strings.EqualFold(strings.TrimSpace(media), "application/json")
}

// User returns one user by object ID or UPN. An unknown user yields an error
// matching ErrNotFound.
func (c *Client) User(ctx context.Context, idOrUPN string) (addresses.User, error) {
	key := strings.TrimSpace(idOrUPN)
	if key == "" {
		return addresses.User{}, fmt.Errorf("get user: empty user ID or UPN")
	}
	op := fmt.Sprintf("get user %q", key)
	var (
		u   models.Userable
		err error
	)
	if strings.HasPrefix(key, "$") {
		// Graph reads /users/$… as a system segment; such UPNs must be
		// addressed as /users('…'), quotes doubled per OData.
		raw := c.graphURL + "/users('" + url.PathEscape(strings.ReplaceAll(key, "'", "''")) + "')" +
			"?%24select=" + strings.Join(userFields, ",")
		u, err = users.NewUserItemRequestBuilder(raw, c.adapter).Get(ctx, nil)
	} else {
		// The SDK percent-encodes the key, '#' included.
		u, err = c.usersBuilder().ByUserId(key).Get(ctx, &users.UserItemRequestBuilderGetRequestConfiguration{
			QueryParameters: &users.UserItemRequestBuilderGetQueryParameters{Select: userFields},
		})
	}
	if err != nil {
		return addresses.User{}, wrapGraph(op, err)
	}
	if u == nil {
		return addresses.User{}, errEmptyResponse(op)
	}
	return toUser(u), nil
}

// usersBuilder starts from the adapter's base URL. NewUsersRequestBuilder
// (raw URL) is avoided on purpose: with a raw URL kiota drops the query
// parameters, and ByUserId would inherit the raw URL.
func (c *Client) usersBuilder() *users.UsersRequestBuilder {
	return users.NewUsersRequestBuilderInternal(map[string]string{}, c.adapter)
}

func toUser(u models.Userable) addresses.User {
	return addresses.User{
		ID:             deref(u.GetId()),
		UPN:            deref(u.GetUserPrincipalName()),
		DisplayName:    deref(u.GetDisplayName()),
		Mail:           deref(u.GetMail()),
		UserType:       deref(u.GetUserType()),
		ProxyAddresses: u.GetProxyAddresses(),
	}
}

// nextPageURL resolves an @odata.nextLink. Graph sends absolute links that
// already carry the query; a relative one is resolved against the base URL.
// For advanced queries $count=true is added if the link lost it, because
// Graph rejects an advanced query page without it.
func (c *Client) nextPageURL(link string, advanced bool) (string, error) {
	u, err := url.Parse(link)
	if err != nil {
		return "", fmt.Errorf("bad @odata.nextLink: %w", err)
	}
	if !u.IsAbs() {
		base, err := url.Parse(c.graphURL + "/")
		if err != nil {
			return "", fmt.Errorf("bad graph URL: %w", err)
		}
		link = base.ResolveReference(u).String()
		u, _ = url.Parse(link)
	}
	if advanced && !hasQueryParam(u.RawQuery, "$count") {
		sep := "&"
		if u.RawQuery == "" {
			sep = "?"
			link = strings.TrimSuffix(link, "?")
		}
		link += sep + "%24count=true"
	}
	return link, nil
}

func hasQueryParam(rawQuery, name string) bool {
	for _, part := range strings.Split(rawQuery, "&") {
		key, _, _ := strings.Cut(part, "=")
		if k, err := url.QueryUnescape(key); err == nil && strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}
