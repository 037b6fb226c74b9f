package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msaudit/msaudit/internal/runevents"
)

// hookReceiver is a webhook receiver that refuses deliveries until it is
// told to accept them, and keeps what it accepted.
type hookReceiver struct {
	URL     string
	secret  []byte
	accept  atomic.Bool
	refused atomic.Int64

	mu     sync.Mutex
	bodies []runevents.Body
	raw    []string
	badSig int
}

func newHookReceiver(t *testing.T, secret []byte, accept bool) *hookReceiver {
	r := &hookReceiver{secret: secret}
	r.accept.Store(accept)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		if !r.accept.Load() {
			r.refused.Add(1)
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		var body runevents.Body
		if err := json.Unmarshal(b, &body); err != nil {
			t.Errorf("event body %q: %v", b, err)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		// What a receiver does: recompute the signature over the raw body.
		if r.secret != nil && req.Header.Get("X-Msaudit-Signature") != runevents.Sign(r.secret, b) {
			r.badSig++
		}
		r.bodies = append(r.bodies, body)
		r.raw = append(r.raw, string(b))
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL + "/hooks/T0/B0/token"
	return r
}

// of returns the events the receiver accepted for run, in arrival order.
func (r *hookReceiver) of(run string) []runevents.Body {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []runevents.Body
	for _, b := range r.bodies {
		if b.Run.RunID == run {
			out = append(out, b)
		}
	}
	return out
}

func types(bodies []runevents.Body) []string {
	var out []string
	for _, b := range bodies {
		out = append(out, string(b.Type))
	}
	return out
}

func (r *hookReceiver) waitType(t *testing.T, run, typ string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !slices.Contains(types(r.of(run)), typ) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s for run %s after %s; got %v", typ, run, limit, types(r.of(run)))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRunEventsSurviveACrash: the receiver is down while the run completes
// and its only worker is SIGKILLed right then; a new worker delivers the
// events once the receiver is back: one run.completed, with the counters
// status shows, signed, and without an address in any body.
func TestRunEventsSurviveACrash(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	redisURL := newRedis(t)
	s := startSim(t, dir, "--users", "40", "--seed", "11")
	env := s.env(redisURL)
	secret := []byte("a shared secret")
	secretFile := filepath.Join(dir, "webhook-secret")
	if err := os.WriteFile(secretFile, append(secret, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	rcv := newHookReceiver(t, secret, false)
	args := []string{"--tenant-rate", "60", "--initial-rate", "60", "--adaptive=false",
		"--webhook-url", rcv.URL, "--webhook-secret-file", secretFile}
	w := startWorker(t, dir, "worker", s, redisURL, args...)
	run := submitRun(t, s, env, graphArgs(s)...)
	st := waitDone(t, env, run, 2*time.Minute, nil)
	w.kill()
	// Whether or not a delivery was tried before the kill (a short run may
	// end before the notifier's first look), none was taken: the events
	// are still only in Redis.
	if n := len(rcv.of(run)); n != 0 {
		t.Fatalf("%d events taken while the receiver was down", n)
	}

	rcv.accept.Store(true)
	startWorker(t, dir, "worker2", s, redisURL, args...)
	rcv.waitType(t, run, "run.completed", 2*time.Minute)
	got := rcv.of(run)
	if want := []string{"run.submitted", "run.completed"}; !slices.Equal(types(got), want) {
		t.Errorf("events %v, want %v", types(got), want)
	}
	completed := got[len(got)-1]
	if completed.ID != run+".2" || completed.Run.Checked != st.Checked || completed.Run.Present != st.Present ||
		completed.Run.Absent != st.Absent || completed.Run.DeadLettered != st.DeadLettered || completed.Run.AddressesTotal != st.AddressesTotal {
		t.Errorf("run.completed %+v; status %+v", completed, st)
	}
	rcv.mu.Lock()
	for _, raw := range rcv.raw {
		if strings.Contains(raw, "@") {
			t.Errorf("an event body holds an address: %s", raw)
		}
	}
	if rcv.badSig > 0 {
		t.Errorf("%d signatures do not verify", rcv.badSig)
	}
	rcv.mu.Unlock()
	var listed []struct {
		ID        string `json:"id"`
		Delivered bool   `json:"delivered"`
	}
	waitFor(t, time.Minute, func() bool {
		json.Unmarshal(enqueue(t, env, "events", run, "-o", "json"), &listed)
		return len(listed) == 2 && listed[1].Delivered
	})
	t.Logf("%d deliveries refused while the receiver was down; events %v", rcv.refused.Load(), types(got))
}

// realmProxy passes realm requests to the simulator, or answers 503 for all
// of them while down.
func realmProxy(t *testing.T, s *sim) (string, *atomic.Bool) {
	target, err := url.Parse(s.RealmURL)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	proxy := &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(&url.URL{Scheme: target.Scheme, Host: target.Host}) },
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	down := &atomic.Bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "outage", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + target.Path, down
}

// TestStallAndRecovery: a realm outage longer than --stall-after makes one
// run.stalled, its end run.recovered then run.completed; a run paused for
// longer than --stall-after does not stall.
func TestStallAndRecovery(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	redisURL := newRedis(t)
	s := startSim(t, dir, "--users", "20", "--seed", "12")
	env := s.env(redisURL)
	rcv := newHookReceiver(t, nil, true)
	realmURL, down := realmProxy(t, s)
	down.Store(true)
	const stallAfter = 3 * time.Second
	startWorker(t, dir, "worker", s, redisURL, "--realm-url", realmURL, "--tenant-rate", "5", "--initial-rate", "5",
		"--adaptive=false", "--max-attempts", "1000", "--backoff-base", "100ms", "--backoff-max", "500ms",
		"--stall-after", stallAfter.String(), "--webhook-url", rcv.URL)

	outage := submitRun(t, s, env, graphArgs(s)...)
	rcv.waitType(t, outage, "run.stalled", time.Minute)
	time.Sleep(3 * stallAfter) // the outage goes on: still one stall
	down.Store(false)
	rcv.waitType(t, outage, "run.completed", 2*time.Minute)
	if got, want := types(rcv.of(outage)), []string{"run.submitted", "run.stalled", "run.recovered", "run.completed"}; !slices.Equal(got, want) {
		t.Errorf("outage run: events %v, want %v", got, want)
	}

	paused := submitRun(t, s, env, graphArgs(s)...)
	enqueue(t, env, "pause", paused)
	time.Sleep(3 * stallAfter)
	enqueue(t, env, "resume", paused)
	rcv.waitType(t, paused, "run.completed", 2*time.Minute)
	if got, want := types(rcv.of(paused)), []string{"run.submitted", "run.paused", "run.resumed", "run.completed"}; !slices.Equal(got, want) {
		t.Errorf("paused run: events %v, want %v", got, want)
	}
}
