package realm

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync"
	"time"
)

// DefaultURL is the public realm endpoint of the global cloud.
const DefaultURL = "https://login.microsoftonline.com/common/userrealm"

// userAgent is a browser's: the service answers browsers.
const userAgent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"

// maxBody bounds what is read of a response; real answers are under 1 KiB.
// A longer body is refused, not judged by its beginning.
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
	timeout  time.Duration
	now      func() time.Time
}

// NewClient returns a client for endpoint (DefaultURL if empty). hc may be
// nil; timeout bounds each request, body included (0: only hc's own).
func NewClient(endpoint string, hc *http.Client, timeout time.Duration) (*Client, error) {
	if endpoint == "" {
		endpoint = DefaultURL
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("realm url %q: want an absolute http(s) URL", endpoint)
	}
	if hc == nil {
		hc = &http.Client{Transport: NewTransport()}
	}
	return &Client{endpoint: u.String(), http: hc, timeout: timeout, now: time.Now}, nil
}

// maxIdleConns is how many idle connections to the service a Client's own
// transport keeps: more than a worker has requests in flight by default
// (its slots times checker.InFlightPerBatch).
const maxIdleConns = 256

// NewTransport returns the transport of a Client given no HTTP client:
// http.DefaultTransport's, keeping more idle connections. Over HTTP/2, which
// the service speaks, every request shares one connection anyway; but over
// HTTP/1.1 (through a proxy that does not) DefaultTransport keeps only 2
// idle connections per host, so with more requests in flight most answers
// closed their connection and the next request paid a TCP and TLS
// handshake.
func NewTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns, t.MaxIdleConnsPerHost = maxIdleConns, maxIdleConns
	return t
}

// Check asks whether addr has a consumer account. On error the returned
// Result still carries the request ID and time when a response arrived.
// Every error wraps ErrNoAnswer or ErrThrottled, except the context's own.
func (c *Client) Check(ctx context.Context, addr string) (Result, error) {
	q := url.Values{}
	q.Set("user", addr)
	q.Set("api-version", "2.1")
	q.Set("checkForMicrosoftAccount", "true")
	// The timeout is a deadline on the request's context rather than
	// http.Client.Timeout: a body cut off by the client's timer can come
	// back from net/http as a short body without an error, and only the
	// deadline tells it from a complete one.
	rctx := ctx
	if c.timeout > 0 {
		var cancel context.CancelFunc
		rctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	var ph phases
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(rctx, ph.trace()), http.MethodGet, c.endpoint+"?"+q.Encode(), nil)
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
		return res, fmt.Errorf("%w: %s", ErrNoAnswer, ph.describe(err))
	}
	defer resp.Body.Close()
	res.RequestID = resp.Header.Get("x-ms-request-id")
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	if err == nil && rctx.Err() != nil {
		return res, fmt.Errorf("%w: HTTP %d, reading the body: timeout", ErrNoAnswer, resp.StatusCode)
	}
	if err != nil {
		return res, fmt.Errorf("%w: HTTP %d, reading the body: %s", ErrNoAnswer, resp.StatusCode, bodyError(err))
	}
	if len(body) > maxBody {
		return res, fmt.Errorf("%w: HTTP %d, body larger than %d KiB", ErrNoAnswer, resp.StatusCode, maxBody>>10)
	}
	res.Status, err = Classify(resp.StatusCode, resp.Header.Get("Retry-After"), body)
	if err != nil && resp.StatusCode == http.StatusOK && !errors.Is(err, ErrThrottled) {
		// An HTML error page or a proxy's notice says more by its type
		// than by the JSON error it causes.
		if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "" && mt != "application/json" {
			err = fmt.Errorf("%w (Content-Type %s)", err, mt)
		}
	}
	return res, err
}

// phases records how far a request got, so that its error can say where it
// failed: a TLS handshake cut short and a connection closed before the
// response both come back from net/http as a bare EOF. Trace hooks may run
// on the transport's dialing goroutine, hence the lock.
type phases struct {
	mu        sync.Mutex
	handshake error // the TLS handshake failed with it
	shaking   bool  // a TLS handshake started and has not ended
	wrote     bool  // the request was written
	headers   bool  // the first response byte arrived
}

func (p *phases) trace() *httptrace.ClientTrace {
	set := func(f func()) { p.mu.Lock(); f(); p.mu.Unlock() }
	return &httptrace.ClientTrace{
		TLSHandshakeStart: func() { set(func() { p.shaking = true }) },
		TLSHandshakeDone: func(_ tls.ConnectionState, err error) {
			set(func() { p.shaking, p.handshake = false, err })
		},
		WroteRequest:         func(httptrace.WroteRequestInfo) { set(func() { p.wrote = true }) },
		GotFirstResponseByte: func() { set(func() { p.headers = true }) },
	}
}

// describe names a transport error without the request URL, which would
// carry the address (PII) into error strings stored per address.
func (p *phases) describe(err error) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	timeout := errors.As(err, &ne) && ne.Timeout()
	switch {
	case timeout && (p.shaking || p.handshake != nil):
		return "timeout in the TLS handshake"
	case timeout && p.wrote:
		return "timeout waiting for the response"
	case timeout:
		return "timeout connecting"
	case p.handshake != nil:
		return "TLS handshake failed: " + eofText(p.handshake)
	case p.wrote && !p.headers && isEOF(err):
		return "connection closed before the response (EOF)"
	}
	return eofText(err)
}

// bodyError names an error met reading the body.
func bodyError(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case isEOF(err):
		return "truncated (unexpected EOF)"
	}
	return err.Error()
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) }

func eofText(err error) string {
	if isEOF(err) {
		return "connection closed (EOF)"
	}
	return err.Error()
}
