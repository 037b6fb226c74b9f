package realm

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestClientCheck(t *testing.T) {
	t.Parallel()
	var gotQuery, gotUA string
	answer := make(chan struct{}) // the slow address is answered at the end
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotQuery, gotUA = r.URL.RawQuery, r.UserAgent()
		w.Header().Set("x-ms-request-id", "req-1")
		switch r.URL.Query().Get("user") {
		case "slow@contoso.com":
			<-answer
		case "a+b@contoso.com":
			w.Write([]byte(`{"IsMicrosoftAccountSet":true,"MicrosoftAccount":0}`))
		default:
			w.Write([]byte(`{"IsMicrosoftAccountSet":true,"MicrosoftAccount":1}`))
		}
	}))
	defer srv.Close()
	defer close(answer)
	c, err := NewClient(srv.URL+"/common/userrealm", srv.Client(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}

	res, err := c.Check(t.Context(), "a+b@contoso.com")
	if err != nil || res.Status != Present || res.RequestID != "req-1" || res.CheckedAt.IsZero() {
		t.Fatalf("Check = %+v, %v", res, err)
	}
	if !strings.Contains(gotQuery, "user=a%2Bb%40contoso.com") || !strings.Contains(gotQuery, "api-version=2.1") || !strings.Contains(gotQuery, "checkForMicrosoftAccount=true") {
		t.Errorf("query = %q", gotQuery)
	}
	if !strings.HasPrefix(gotUA, "Mozilla/5.0") {
		t.Errorf("user agent = %q", gotUA)
	}

	c.timeout = 50 * time.Millisecond
	_, err = c.Check(t.Context(), "slow@contoso.com")
	if !errors.Is(err, ErrNoAnswer) || strings.Contains(err.Error(), "slow@") {
		t.Fatalf("timeout: err = %v, want ErrNoAnswer without the address", err)
	}
}

func TestNewClientRejectsBadURL(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"login.microsoftonline.com/common/userrealm", "ftp://x/y", "https://"} {
		if _, err := NewClient(u, nil, time.Second); err == nil {
			t.Errorf("NewClient(%q) succeeded", u)
		}
	}
}

// TestTransportKeepsConnections: over HTTP/1.1, where each request in
// flight needs a connection of its own, the client's own transport keeps
// them for the next requests instead of opening (and handshaking) new ones.
func TestTransportKeepsConnections(t *testing.T) {
	t.Parallel()
	const inFlight, rounds = 20, 6
	var opened atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"IsMicrosoftAccountSet":true,"MicrosoftAccount":1}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.StartTLS() // HTTP/1.1 only
	defer srv.Close()
	tr := NewTransport()
	tr.TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig
	c, err := NewClient(srv.URL, &http.Client{Transport: tr}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// A connection is offered back to the pool once its response is read,
	// which may be after Check returns: each round waits for all of them.
	var back sync.WaitGroup
	var refused atomic.Int64 // connections the pool did not take back
	perRound := make([]int64, 0, rounds)
	ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{PutIdleConn: func(err error) {
		if err != nil {
			refused.Add(1)
		}
		back.Done()
	}})
	for range rounds {
		back.Add(inFlight)
		var wg sync.WaitGroup
		for i := range inFlight {
			wg.Go(func() {
				if _, err := c.Check(ctx, fmt.Sprintf("u%d@contoso.com", i)); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		back.Wait()
		perRound = append(perRound, opened.Load())
	}
	// The pool fills up over the first rounds (a request may dial while
	// another's connection is on its way back, more so on a loaded
	// machine); from then on the rounds reuse it and open nothing. Keeping
	// 2 idle connections, as http.DefaultTransport does, would open about
	// 18 more every round.
	if late := perRound[rounds-1] - perRound[rounds-3]; late > inFlight/4 {
		t.Errorf("the last two rounds of %d requests opened %d connections, want about none (opened after each round: %v; %d not taken back by the pool)",
			inFlight, late, perRound, refused.Load())
	}
}
