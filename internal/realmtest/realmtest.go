// Package realmtest serves realm endpoints that misbehave in every way the
// real service or the network between can: timeouts, resets, 5xx, HTML
// error pages, malformed, truncated and ambiguous JSON, unknown codes, a
// body that trickles past the timeout, TLS failures. The realm client's and
// the checker's fault tests share the list, so that a fault added here is
// proven never to come out as an answer at both levels. It is imported only
// by tests.
package realmtest

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Timeout is the realm request timeout the faults are built around: the
// slow ones take longer than it. Use it as the client's timeout.
const Timeout = 200 * time.Millisecond

// Fault is one way the endpoint misbehaves.
type Fault struct {
	Name string
	// Want is a substring the client's error must contain: it names the
	// fault for the operator reading the dead letters.
	Want string
	// Throttle faults are the service asking to slow down: an error, but
	// a throttle (ErrThrottled), not a failure of the address.
	Throttle bool
	// Exactly one of these is set.
	handler http.HandlerFunc
	server  func(t testing.TB) *Endpoint
}

// Endpoint is a running misbehaving endpoint.
type Endpoint struct {
	URL    string       // the realm URL to give the client
	Client *http.Client // trusts what a correct client would (not an untrusted certificate)
	hits   atomic.Int64
}

// Hits is the number of connections it accepted.
func (e *Endpoint) Hits() int64 { return e.hits.Load() }

// Start serves f until the test ends.
func (f Fault) Start(t testing.TB) *Endpoint {
	t.Helper()
	if f.server != nil {
		return f.server(t)
	}
	return serveTLS(t, f.handler)
}

func serveTLS(t testing.TB, h http.HandlerFunc) *Endpoint {
	e := &Endpoint{}
	// stop ends the hanging handlers when the test is over, in case a
	// client did not hang up: httptest's Close waits for them.
	stop := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h(w, r.WithContext(context.WithValue(r.Context(), stopKey{}, (<-chan struct{})(stop))))
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake errors are the point
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			e.hits.Add(1)
		}
	}
	srv.StartTLS()
	t.Cleanup(func() { close(stop); srv.CloseClientConnections(); srv.Close() })
	e.URL, e.Client = srv.URL+"/common/userrealm", srv.Client()
	return e
}

// Answer is a well-formed realm body with the given code and flag JSON
// values (raw JSON text; "" leaves the field out).
func Answer(code, flag string) string {
	var parts []string
	parts = append(parts, `"NameSpaceType":"Managed"`, `"Login":"someone@contoso.com"`)
	if flag != "" {
		parts = append(parts, `"IsMicrosoftAccountSet":`+flag)
	}
	if code != "" {
		parts = append(parts, `"MicrosoftAccount":`+code)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// Absent is the answer "no consumer account": what a fault must never be
// taken for, so several faults carry it in a body that must not be read.
var absent = Answer("1", "true")

func body(status int, contentType, b string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("x-ms-request-id", "fault-request")
		w.WriteHeader(status)
		io.WriteString(w, b)
	}
}

func jsonBody(b string) http.HandlerFunc { return body(200, "application/json; charset=utf-8", b) }

// Faults returns every fault, each with a fresh handler.
func Faults() []Fault {
	const json = "application/json; charset=utf-8"
	return []Fault{
		// The network.
		// Want is only "timeout": under load (-race) the client has been seen
		// to get the headers and time out reading the body instead.
		{Name: "timeout before the headers", Want: "timeout", handler: hang},
		{Name: "timeout in the body", Want: "timeout", handler: headersThenHang},
		{Name: "slow body trickling past the timeout", Want: "timeout", handler: trickle},
		{Name: "connection reset before the response", Want: "connection reset", handler: reset(false)},
		{Name: "connection reset in the body", Want: "connection reset", handler: reset(true)},
		{Name: "connection closed before the response", Want: "connection closed before the response", handler: closeConn},
		{Name: "body shorter than its Content-Length", Want: "truncated", handler: truncated},
		{Name: "corrupt gzip body", Want: "gzip", handler: corruptGzip},
		{Name: "body larger than 64 KiB with an answer at its start", Want: "larger than", handler: jsonBody(absent + strings.Repeat(" ", 70<<10) + "x")},
		// HTTP.
		{Name: "HTTP 500 with an answer body", Want: "HTTP 500", handler: body(500, json, absent)},
		{Name: "HTTP 502 from a proxy", Want: "HTTP 502", handler: body(502, "text/html", "<html><body>Bad Gateway</body></html>")},
		{Name: "HTTP 503 with Retry-After", Want: "HTTP 503", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(503)
		}},
		{Name: "HTTP 504", Want: "HTTP 504", handler: body(504, json, absent)},
		{Name: "HTTP 204 no content", Want: "HTTP 204", handler: body(204, json, "")},
		{Name: "HTTP 404", Want: "HTTP 404", handler: body(404, json, absent)},
		{Name: "200 with an HTML error page", Want: "text/html", handler: body(200, "text/html; charset=utf-8", "<!DOCTYPE html><html><head><title>Sorry</title></head><body>We can't sign you in</body></html>")},
		{Name: "redirect to an HTML sign-in page", Want: "text/html", handler: func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/signin" {
				http.Redirect(w, r, "/signin", http.StatusFound)
				return
			}
			body(200, "text/html", "<html>sign in</html>")(w, r)
		}},
		// The body.
		{Name: "empty 200 body", Want: "invalid JSON", handler: jsonBody("")},
		{Name: "malformed JSON", Want: "invalid JSON", handler: jsonBody(`{"IsMicrosoftAccountSet":true,"MicrosoftAccount":1,,}`)},
		{Name: "truncated JSON", Want: "invalid JSON", handler: jsonBody(absent[:len(absent)-1])},
		{Name: "JSON cut in a value", Want: "invalid JSON", handler: jsonBody(`{"IsMicrosoftAccountSet":true,"MicrosoftAccount":`)},
		{Name: "JSON null", Want: "want an object", handler: jsonBody("null")},
		{Name: "JSON array of an answer", Want: "invalid JSON", handler: jsonBody("[" + absent + "]")},
		{Name: "data after the answer", Want: "data after the object", handler: jsonBody(absent + `{"MicrosoftAccount":0}`)},
		{Name: "MicrosoftAccount given twice", Want: "given twice", handler: jsonBody(`{"IsMicrosoftAccountSet":true,"MicrosoftAccount":0,"MicrosoftAccount":1}`)},
		{Name: "MicrosoftAccount in another case", Want: "not spelled", handler: jsonBody(`{"IsMicrosoftAccountSet":true,"microsoftaccount":1}`)},
		{Name: "IsMicrosoftAccountSet in another case", Want: "not spelled", handler: jsonBody(`{"ismicrosoftaccountset":true,"MicrosoftAccount":1}`)},
		{Name: "unknown MicrosoftAccount 3", Want: "unknown MicrosoftAccount 3", handler: jsonBody(Answer("3", "true"))},
		{Name: "unknown MicrosoftAccount -1", Want: "unknown MicrosoftAccount -1", handler: jsonBody(Answer("-1", "true"))},
		{Name: "unknown MicrosoftAccount 99", Want: "unknown MicrosoftAccount 99", handler: jsonBody(Answer("99", "true"))},
		{Name: "service failure MicrosoftAccount 4", Want: "MicrosoftAccount 4", handler: jsonBody(Answer("4", "true"))},
		{Name: "MicrosoftAccount as a string", Want: "field MicrosoftAccount", handler: jsonBody(Answer(`"1"`, "true"))},
		{Name: "MicrosoftAccount as a fraction", Want: "field MicrosoftAccount", handler: jsonBody(Answer("1.5", "true"))},
		{Name: "MicrosoftAccount null", Want: "MicrosoftAccount missing", handler: jsonBody(Answer("null", "true"))},
		{Name: "MicrosoftAccount missing", Want: "MicrosoftAccount missing", handler: jsonBody(Answer("", "true"))},
		{Name: "IsMicrosoftAccountSet missing", Want: "IsMicrosoftAccountSet missing", handler: jsonBody(Answer("1", ""))},
		{Name: "IsMicrosoftAccountSet false", Want: "IsMicrosoftAccountSet missing or false", handler: jsonBody(Answer("1", "false"))},
		{Name: "IsMicrosoftAccountSet null", Want: "IsMicrosoftAccountSet missing", handler: jsonBody(Answer("0", "null"))},
		{Name: "IsMicrosoftAccountSet as a string", Want: "field IsMicrosoftAccountSet", handler: jsonBody(Answer("1", `"true"`))},
		// Throttling: errors too, but throttles.
		{Name: "throttled MicrosoftAccount 2", Want: "MicrosoftAccount 2", Throttle: true, handler: jsonBody(Answer("2", "true"))},
		{Name: "throttled HTTP 429", Want: "HTTP 429", Throttle: true, handler: body(429, json, absent)},
		// TLS.
		{Name: "untrusted certificate", Want: "certificate signed by unknown authority", server: untrusted},
		{Name: "TLS handshake reset", Want: "TLS handshake failed", server: handshakeReset},
		{Name: "TLS handshake stalled", Want: "timeout in the TLS handshake", server: handshakeStall},
		{Name: "plain HTTP on the TLS port", Want: "does not look like a TLS handshake", server: plainHTTP},
	}
}

// stopKey carries the endpoint's stop channel in a request context.
type stopKey struct{}

// wait blocks until the client hangs up or the test ends.
func wait(r *http.Request) {
	stop, _ := r.Context().Value(stopKey{}).(<-chan struct{})
	select {
	case <-r.Context().Done():
	case <-stop:
	}
}

func hang(w http.ResponseWriter, r *http.Request) { wait(r) }

func headersThenHang(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(absent)))
	w.WriteHeader(200)
	io.WriteString(w, absent[:10])
	w.(http.Flusher).Flush()
	wait(r)
}

// trickle sends a correct answer one byte at a time, a quarter of Timeout
// apart: each read succeeds, the whole takes far longer than Timeout.
func trickle(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(200)
	tick := time.NewTicker(Timeout / 4)
	defer tick.Stop()
	for i := 0; i < len(absent); i++ {
		if _, err := io.WriteString(w, absent[i:i+1]); err != nil {
			return
		}
		w.(http.Flusher).Flush()
		select {
		case <-tick.C:
		case <-r.Context().Done():
			return
		}
	}
}

// reset hangs up with a TCP RST, after part of a body if inBody.
func reset(inBody bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		if inBody {
			fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(absent), absent[:20])
			buf.Flush()
		}
		rst(conn)
	}
}

// rst closes the TCP connection under conn with a RST, without the TLS
// close_notify a tls.Conn's Close would send first (a clean EOF).
func rst(conn net.Conn) {
	raw := underlying(conn)
	if tc, ok := raw.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	raw.Close()
}

// underlying digs the TCP connection out of a TLS one.
func underlying(c net.Conn) net.Conn {
	if nc, ok := c.(interface{ NetConn() net.Conn }); ok {
		return nc.NetConn()
	}
	return c
}

func closeConn(w http.ResponseWriter, r *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	conn.Close()
}

func truncated(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(absent)+20))
	w.WriteHeader(200)
	io.WriteString(w, absent)
	w.(http.Flusher).Flush()
	panic(http.ErrAbortHandler) // net/http closes the connection
}

func corruptGzip(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Encoding", "gzip")
	w.WriteHeader(200)
	io.WriteString(w, absent) // not gzip
}

// untrusted is a correct endpoint whose certificate the client does not
// trust: the Client has an empty pool.
func untrusted(t testing.TB) *Endpoint {
	e := serveTLS(t, jsonBody(absent))
	tr := e.Client.Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.RootCAs = x509.NewCertPool()
	e.Client = &http.Client{Transport: tr}
	return e
}

// rawTLS listens on TCP and gives each connection to serve; the URL is
// https, the Client a plain one.
func rawTLS(t testing.TB, serve func(net.Conn)) *Endpoint {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &Endpoint{URL: "https://" + ln.Addr().String() + "/common/userrealm", Client: &http.Client{Transport: &http.Transport{}}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.hits.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); serve(c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return e
}

// handshakeReset reads the ClientHello and resets the connection.
func handshakeReset(t testing.TB) *Endpoint {
	return rawTLS(t, func(c net.Conn) {
		buf := make([]byte, 5) // a TLS record header
		io.ReadFull(c, buf)
		rst(c)
	})
}

// handshakeStall reads the ClientHello and never answers.
func handshakeStall(t testing.TB) *Endpoint {
	return rawTLS(t, func(c net.Conn) { io.Copy(io.Discard, c) })
}

// plainHTTP answers in plain HTTP on the port the client speaks TLS to.
func plainHTTP(t testing.TB) *Endpoint {
	return rawTLS(t, func(c net.Conn) {
		io.ReadFull(c, make([]byte, 5))
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(absent), absent)
		c.Close()
	})
}
