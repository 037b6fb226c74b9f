package tenantsim

import (
	"net/http"
	"strings"
	"testing"
)

func TestGraphOutageSwitch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 30, func(c *Config) { c.GraphFailAfterPages = 1 })
	tok := e.token()
	first := e.graph(tok, e.srv.GraphURL()+"/users?$top=10", nil)
	if first.status != http.StatusOK {
		t.Fatalf("first page: %d %s", first.status, first.body)
	}
	next := first.json(t)["@odata.nextLink"].(string)
	if r := e.graph(tok, next, nil); r.status != http.StatusInternalServerError {
		t.Fatalf("page after the outage began: %d %s", r.status, r.body)
	}
	if r := e.do(http.MethodPut, e.srv.URL()+"/_sim/graph", nil, strings.NewReader(`{"fail_after_pages":-1}`)); r.status != http.StatusBadRequest {
		t.Errorf("negative switch accepted: %d", r.status)
	}
	if r := e.do(http.MethodPut, e.srv.URL()+"/_sim/graph", nil, strings.NewReader(`{"fail_after_pages":0}`)); r.status != http.StatusOK {
		t.Fatalf("lift outage: %d %s", r.status, r.body)
	}
	if r := e.graph(tok, next, nil); r.status != http.StatusOK {
		t.Fatalf("page after the outage ended: %d %s", r.status, r.body)
	}
	if n := e.srv.Stats().UserPages; len(n) != 2 {
		t.Errorf("user pages served = %v, want 2 distinct", n)
	}
}
