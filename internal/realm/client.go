package realm

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// DefaultURL is the public realm endpoint of the global cloud.
const DefaultURL = "https://login.microsoftonline.com/common/userrealm"

// userAgent matches what the reference module sends: a browser's.
const userAgent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"

// maxBody bounds what is read of a response; real answers are under 1 KiB.
const maxBody = 64 << 10

// Result is one answered check.
type Result struct {
	Status    Status
	RequestID string // x-ms-request-id: what Microsoft support asks for
	CheckedAt time.Time
}

// Client checks addresses against one realm endpoint.
type Client struct {
	endpoint string
	http     *http.Client
	now      func() time.Time
}

// NewClient returns a client for endpoint (DefaultURL if empty). hc may be
// nil; timeout bounds each request.
func NewClient(endpoint string, hc *http.Client, timeout time.Duration) (*Client, error) {
	if endpoint == "" {
		endpoint = DefaultURL
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("realm url %q: want an absolute http(s) URL", endpoint)
	}
	if hc == nil {
		hc = &http.Client{Transport: http.DefaultTransport}
	}
	c := *hc
	c.Timeout = timeout
	return &Client{endpoint: u.String(), http: &c, now: time.Now}, nil
}

// Check asks whether addr has a consumer account. On error the returned
// Result still carries the request ID and time when a response arrived.
func (c *Client) Check(ctx context.Context, addr string) (Result, error) {
	q := url.Values{}
	q.Set("user", addr)
	q.Set("api-version", "2.1")
	q.Set("checkForMicrosoftAccount", "true")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint+"?"+q.Encode(), nil)
	if err != nil {
		return Result{}, fmt.Errorf("build realm request: %w", err)
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	res := Result{CheckedAt: c.now().UTC()}
	if err != nil {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		return res, fmt.Errorf("%w: %s", ErrNoAnswer, requestError(err))
	}
	defer resp.Body.Close()
	res.RequestID = resp.Header.Get("x-ms-request-id")
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return res, fmt.Errorf("%w: read body: %s", ErrNoAnswer, requestError(err))
	}
	res.Status, err = Classify(resp.StatusCode, resp.Header.Get("Retry-After"), body)
	return res, err
}

// requestError describes a transport error without the request URL, which
// would carry the address (PII) into error strings stored per address anyway.
func requestError(err error) string {
	if ue, ok := err.(*url.Error); ok {
		if ue.Timeout() {
			return "timeout"
		}
		return ue.Err.Error()
	}
	return err.Error()
}
