package runevents

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestWebhookPost(t *testing.T) {
	t.Parallel()
	type got struct {
		header http.Header
		body   string
	}
	reqs := make(chan got, 10)
	status := http.StatusNoContent
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		reqs <- got{r.Header.Clone(), string(b)}
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
			return
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()

	secret := []byte("s3cret")
	w, err := NewWebhook(srv.URL+"/hook/T000/XXXX", secret, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"id":"r.1"}`)
	if err := w.Post(t.Context(), "r.1", "run.completed", body); err != nil {
		t.Fatal(err)
	}
	g := <-reqs
	if g.body != string(body) || g.header.Get(HeaderEvent) != "run.completed" || g.header.Get(HeaderDelivery) != "r.1" ||
		g.header.Get("Content-Type") != "application/json" {
		t.Errorf("request %v %q", g.header, g.body)
	}
	// The signature a receiver computes with the shared secret.
	if sig := g.header.Get(HeaderSignature); sig != Sign(secret, []byte(g.body)) || !strings.HasPrefix(sig, "sha256=") || len(sig) != 7+64 {
		t.Errorf("signature %q", sig)
	}
	if Sign([]byte("other"), body) == Sign(secret, body) {
		t.Error("the signature does not depend on the secret")
	}

	// Refused, redirected, unreachable: errors that do not name the URL.
	status = http.StatusServiceUnavailable
	err = w.Post(t.Context(), "r.1", "run.completed", body)
	<-reqs
	if err == nil || err.Error() != "webhook: HTTP 503" {
		t.Errorf("503: err = %v", err)
	}
	moved, _ := NewWebhook(srv.URL+"/moved", nil, 5*time.Second)
	err = moved.Post(t.Context(), "r.1", "run.completed", body)
	if g := <-reqs; g.header.Get(HeaderSignature) != "" {
		t.Error("signed without a secret")
	}
	if err == nil || err.Error() != "webhook: HTTP 302" || len(reqs) != 0 {
		t.Errorf("redirect: err = %v, %d more requests", err, len(reqs))
	}
	srv.Close()
	err = w.Post(t.Context(), "r.1", "run.completed", body)
	if err == nil || strings.Contains(err.Error(), "XXXX") || strings.Contains(err.Error(), "/hook") {
		t.Errorf("unreachable: err = %v, want one without the URL", err)
	}
}

func TestNewWebhookRefusesWhatIsNotAURL(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "hooks.slack.com/services/T0/B0/secret", "ftp://x/y", "https://", "://secret"} {
		_, err := NewWebhook(u, nil, time.Second)
		if err == nil || (u != "" && strings.Contains(err.Error(), "secret")) {
			t.Errorf("NewWebhook(%q) = %v", u, err)
		}
	}
}
