package directory

import (
	"slices"
	"strings"
	"testing"

	khttp "github.com/microsoft/kiota-http-go"
)

func TestResolve(t *testing.T) {
	t.Parallel()
	base := Options{TenantID: " tid ", ClientID: "cid", ClientSecret: "s"}

	got, err := base.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if got.Cloud != cloudGlobal || got.GraphURL != cloudGlobal.GraphURL || got.AuthorityHost != cloudGlobal.AuthorityHost {
		t.Errorf("zero cloud resolved to %+v, want Global defaults", got)
	}
	if got.TenantID != "tid" || got.Logger == nil {
		t.Errorf("tenant %q, logger %v: want trimmed tenant and a logger", got.TenantID, got.Logger)
	}

	o := base
	o.Cloud = cloudChina
	o.GraphURL = "https://127.0.0.1:8443/v1.0/"
	o.AuthorityHost = "https://127.0.0.1:8443"
	got, err = o.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if got.GraphURL != "https://127.0.0.1:8443/v1.0" || got.AuthorityHost != "https://127.0.0.1:8443/" {
		t.Errorf("overrides resolved to %q, %q", got.GraphURL, got.AuthorityHost)
	}
	if got.Cloud.Scope != cloudChina.Scope {
		t.Errorf("scope %q: an endpoint override must keep the cloud's scope", got.Cloud.Scope)
	}
}

func TestResolveRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Options)
		want   string
	}{
		{"http graph", func(o *Options) { o.GraphURL = "http://127.0.0.1/v1.0" }, "https"},
		{"graph without version", func(o *Options) { o.GraphURL = "https://127.0.0.1:1" }, "/v1.0"},
		{"beta graph", func(o *Options) { o.GraphURL = "https://graph.microsoft.com/beta" }, "/v1.0"},
		{"relative graph", func(o *Options) { o.GraphURL = "graph.microsoft.com/v1.0" }, "https"},
		{"http authority", func(o *Options) { o.AuthorityHost = "http://login.example/" }, "https"},
		{"no tenant", func(o *Options) { o.TenantID = "" }, "tenant"},
		{"no client", func(o *Options) { o.ClientID = " " }, "client ID"},
		{"cloud without scope", func(o *Options) { o.Cloud = Cloud{Name: "x", GraphURL: "https://g/v1.0"} }, "scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := Options{TenantID: "t", ClientID: "c", ClientSecret: "s"}
			tt.mutate(&o)
			_, err := o.resolve()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("resolve() error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestAllowedHostsIncludeOverride(t *testing.T) {
	t.Parallel()
	o := Options{TenantID: "t", ClientID: "c", GraphURL: "https://LOCALHOST:9443/v1.0"}
	cfg, err := o.resolve()
	if err != nil {
		t.Fatal(err)
	}
	got := allowedHosts(cfg)
	// Host names without port: that is what kiota's validator compares.
	want := []string{"localhost", "graph.microsoft.com"}
	if !slices.Equal(got, want) {
		t.Errorf("allowedHosts = %v, want %v", got, want)
	}
}

func TestMiddlewareKeepsRetryHandler(t *testing.T) {
	t.Parallel()
	for _, m := range graphMiddlewares() {
		if _, ok := m.(*khttp.RetryHandler); ok {
			return
		}
	}
	t.Fatal("graph middleware chain has no retry handler: 429/503/504 would not be retried")
}

func TestNextPageURL(t *testing.T) {
	t.Parallel()
	c := &Client{graphURL: "https://g.example/v1.0"}
	tests := []struct {
		link     string
		advanced bool
		want     string
	}{
		{"https://g.example/v1.0/users?$top=5&$skiptoken=abc", false, "https://g.example/v1.0/users?$top=5&$skiptoken=abc"},
		{"https://g.example/v1.0/users?$top=5&$skiptoken=abc", true, "https://g.example/v1.0/users?$top=5&$skiptoken=abc&%24count=true"},
		{"https://g.example/v1.0/users?%24count=true&$skiptoken=a%2Bb", true, "https://g.example/v1.0/users?%24count=true&$skiptoken=a%2Bb"},
		{"https://g.example/v1.0/users?$COUNT=true", true, "https://g.example/v1.0/users?$COUNT=true"},
		{"users?$skiptoken=x", false, "https://g.example/v1.0/users?$skiptoken=x"},
		{"https://g.example/v1.0/users", true, "https://g.example/v1.0/users?%24count=true"},
	}
	for _, tt := range tests {
		got, err := c.nextPageURL(tt.link, tt.advanced)
		if err != nil {
			t.Fatalf("nextPageURL(%q): %v", tt.link, err)
		}
		if got != tt.want {
			t.Errorf("nextPageURL(%q, %v) = %q, want %q", tt.link, tt.advanced, got, tt.want)
		}
	}
}
