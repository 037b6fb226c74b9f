package directory

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"go.uber.org/zap/zaptest"

	"github.com/msaudit/msaudit/internal/addresses"
)

// These tests cover SDK pitfalls the simulator is too well-behaved to show.
// They bypass the identity platform with a fixed token.

type staticCredential struct{}

func (staticCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "fixed-token", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func newFakeClient(t *testing.T, h http.Handler) *Client {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	cfg, err := Options{GraphURL: srv.URL + "/v1.0", TenantID: "t", ClientID: "c", HTTPClient: srv.Client(),
		Logger: zaptest.NewLogger(t)}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	adapter, err := newAdapter(staticCredential{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &Client{adapter: adapter, graphURL: cfg.GraphURL, log: cfg.Logger}
}

// A Graph URL on 127.0.0.1 must still get the token; kiota's default allowed
// hosts would send the request without one.
func TestTokenSentToOverriddenHost(t *testing.T) {
	t.Parallel()
	var got string
	c := newFakeClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"value":[{"id":"contoso.com","isVerified":true,"isInitial":false}]}`))
	}))
	ds, err := c.Domains(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got != "Bearer fixed-token" {
		t.Errorf("Authorization = %q, want the bearer token", got)
	}
	if len(ds) != 1 || ds[0] != (Domain{Name: "contoso.com", Verified: true}) {
		t.Errorf("domains = %+v", ds)
	}
}

// The SDK turns a 200 without a JSON content type into "no result, no
// error"; that must not read as an empty tenant.
func TestNonJSONResponseIsAnError(t *testing.T) {
	t.Parallel()
	c := newFakeClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = nil
		_, _ = w.Write([]byte(`{"value":[]}`))
	}))
	err := c.Users(t.Context(), UserQuery{}, func([]addresses.User) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "non-JSON") {
		t.Fatalf("Users error = %v, want the empty-response error", err)
	}
	if _, err := c.Domains(t.Context()); err == nil {
		t.Fatal("Domains accepted a non-JSON response")
	}
}

// Advanced queries need $count=true on every page, also when the nextLink
// does not carry it.
func TestAdvancedQueryRepeatsCountOnEveryPage(t *testing.T) {
	t.Parallel()
	var (
		mu   sync.Mutex
		seen []string
	)
	var srvURL string
	c := newFakeClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("ConsistencyLevel")+"|"+r.URL.Query().Get("$count"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("$skiptoken") == "" {
			_, _ = w.Write([]byte(`{"value":[{"id":"1"}],"@odata.nextLink":"` + srvURL + `/v1.0/users?$skiptoken=p2"}`))
			return
		}
		_, _ = w.Write([]byte(`{"value":[{"id":"2"}]}`))
	}))
	srvURL = strings.TrimSuffix(c.graphURL, "/v1.0")
	var ids []string
	err := c.Users(t.Context(), UserQuery{Filter: "endsWith(mail,'@contoso.com')", Advanced: true},
		func(page []addresses.User) error {
			for _, u := range page {
				ids = append(ids, u.ID)
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(ids, ",") != "1,2" {
		t.Errorf("users %v, want 1,2", ids)
	}
	if len(seen) != 2 || seen[0] != "eventual|true" || seen[1] != "eventual|true" {
		t.Errorf("ConsistencyLevel|$count per page = %v, want eventual|true twice", seen)
	}
}

// A users page decodes null fields and null entries as Graph sends them,
// takes its content type from the last attempt of a retried request, and
// a page that is not valid JSON is an error, not an empty page.
func TestUsersPageDecoding(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	c := newFakeClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 { // throttled first, with a body that is not JSON
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.Header().Set("Content-Type", "application/json; odata.metadata=minimal; charset=utf-8")
		_, _ = w.Write([]byte(`{"value":[null,{"id":"1","userPrincipalName":"a@x.com","displayName":null,"mail":null,` +
			`"proxyAddresses":null,"userType":"Member"},{"id":"2","userPrincipalName":"b@x.com","displayName":"Bé",` +
			`"mail":"b@y.com","proxyAddresses":["SMTP:b@y.com","smtp:b@x.com"],"userType":"Guest"}]}`))
	}))
	var got []addresses.User
	err := c.Users(t.Context(), UserQuery{}, func(page []addresses.User) error {
		got = append(got, page...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []addresses.User{{ID: "1", UPN: "a@x.com", UserType: "Member"},
		{ID: "2", UPN: "b@x.com", DisplayName: "Bé", Mail: "b@y.com", UserType: "Guest", ProxyAddresses: []string{"SMTP:b@y.com", "smtp:b@x.com"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("users %+v, want %+v", got, want)
	}

	bad := newFakeClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"value":[{"id":"1"`))
	}))
	if err := bad.Users(t.Context(), UserQuery{}, func([]addresses.User) error { return nil }); err == nil {
		t.Fatal("a truncated page read as a page")
	}
}
