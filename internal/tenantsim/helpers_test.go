package tenantsim

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testClientID = "11111111-2222-3333-4444-555555555555"
	testSecret   = "s3cret-value"
	testSeed     = 7
)

// fakeClock lets tests move the server's time without sleeping.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type testEnv struct {
	t      *testing.T
	tenant *Tenant
	srv    *Server
	client *http.Client
	clock  *fakeClock
}

// newEnv starts a simulator over HTTPS for users users; mod may adjust the
// config. The server's clock is a fake clock starting at a fixed time.
func newEnv(t *testing.T, users int, mod func(*Config)) *testEnv {
	t.Helper()
	tn := Generate(testSeed, users)
	cfg := Config{ClientID: testClientID, ClientSecret: testSecret, Seed: 1}
	if mod != nil {
		mod(&cfg)
	}
	s, err := NewServer(tn, cfg, nil)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	clk := &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	s.now = clk.Now
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &testEnv{t: t, tenant: tn, srv: s, client: httpsClient(s), clock: clk}
}

func httpsClient(s *Server) *http.Client {
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CertPool()}, MaxIdleConnsPerHost: 16},
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("decode %d body %q: %v", r.status, r.body, err)
	}
	return m
}

func (e *testEnv) do(method, rawURL string, header map[string]string, body io.Reader) response {
	e.t.Helper()
	req, err := http.NewRequest(method, rawURL, body)
	if err != nil {
		e.t.Fatalf("new request: %v", err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("read body: %v", err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (e *testEnv) postToken(form url.Values) response {
	e.t.Helper()
	return e.do(http.MethodPost, e.srv.URL()+"/"+e.tenant.ID+"/oauth2/v2.0/token",
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, strings.NewReader(form.Encode()))
}

func tokenForm() url.Values {
	return url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {testClientID},
		"client_secret": {testSecret},
		"scope":         {"https://graph.microsoft.com/.default"},
	}
}

// token fetches an access token with the test credentials.
func (e *testEnv) token() string {
	e.t.Helper()
	r := e.postToken(tokenForm())
	if r.status != http.StatusOK {
		e.t.Fatalf("token: %d %s", r.status, r.body)
	}
	return r.json(e.t)["access_token"].(string)
}

// graph GETs a Graph URL (absolute, or relative to GraphURL) with a bearer
// token and extra headers.
func (e *testEnv) graph(tok, u string, header map[string]string) response {
	e.t.Helper()
	if !strings.HasPrefix(u, "https://") {
		u = e.srv.GraphURL() + u
	}
	h := map[string]string{}
	if tok != "" {
		h["Authorization"] = "Bearer " + tok
	}
	for k, v := range header {
		h[k] = v
	}
	r := e.do(http.MethodGet, u, h, nil)
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		e.t.Fatalf("GET %s: Content-Type %q", u, ct)
	}
	return r
}

// wantGraphError checks an OData error response.
func wantGraphError(t *testing.T, r response, status int, code string) string {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	var body struct {
		Error struct {
			Code    *string `json:"code"`
			Message *string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	if body.Error.Code == nil || *body.Error.Code != code {
		t.Fatalf("error code in %s, want %q", r.body, code)
	}
	if body.Error.Message == nil || *body.Error.Message == "" {
		t.Fatalf("error without message: %s", r.body)
	}
	return *body.Error.Message
}

// listAll follows nextLinks from first and returns every user object.
func (e *testEnv) listAll(tok, first string, header map[string]string) ([]map[string]any, []map[string]any) {
	e.t.Helper()
	var users, pages []map[string]any
	next := first
	for next != "" {
		r := e.graph(tok, next, header)
		if r.status != http.StatusOK {
			e.t.Fatalf("GET %s: %d %s", next, r.status, r.body)
		}
		page := r.json(e.t)
		pages = append(pages, page)
		for _, v := range page["value"].([]any) {
			users = append(users, v.(map[string]any))
		}
		next, _ = page["@odata.nextLink"].(string)
		if next != "" && !strings.HasPrefix(next, e.srv.GraphURL()+"/users?") {
			e.t.Fatalf("nextLink %q is not absolute to this server", next)
		}
	}
	return users, pages
}
