package runevents

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/msaudit/msaudit/internal/redistest"
	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/internal/runstore/runstoretest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

var fast = timing{every: 20 * time.Millisecond, stallEvery: 20 * time.Millisecond, lease: time.Second,
	backoff: 10 * time.Millisecond, maxBackoff: 50 * time.Millisecond}

// receiver is a webhook receiver that refuses its first deliveries.
type receiver struct {
	mu     sync.Mutex
	refuse int
	got    []Body
	raw    []string
	sigOK  bool
	secret []byte
	change chan struct{}
}

func newReceiver(t *testing.T, refuse int, secret []byte) (*receiver, *httptest.Server) {
	r := &receiver{refuse: refuse, sigOK: true, secret: secret, change: make(chan struct{}, 100)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.refuse > 0 {
			r.refuse--
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var body Body
		if err := json.Unmarshal(b, &body); err != nil || req.Header.Get(HeaderDelivery) != body.ID || req.Header.Get(HeaderEvent) != string(body.Type) {
			t.Errorf("delivery %q: %v", b, err)
		}
		if req.Header.Get(HeaderSignature) != Sign(r.secret, b) {
			r.sigOK = false
		}
		r.got = append(r.got, body)
		r.raw = append(r.raw, string(b))
		r.change <- struct{}{}
	}))
	t.Cleanup(srv.Close)
	return r, srv
}

// waitFor waits until the receiver got n events.
func (r *receiver) waitFor(t *testing.T, n int) []Body {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		r.mu.Lock()
		got := slices.Clone(r.got)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-r.change:
		case <-deadline:
			t.Fatalf("got %d events, want %d", len(got), n)
		}
	}
}

func startNotifier(t *testing.T, n *Notifier) {
	t.Helper()
	n.timing = fast
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// TestEventsReachTheWebhookInOrder: two workers' notifiers, a receiver that
// refuses the first deliveries: every event arrives once, in order, signed,
// with the counters status shows and no address.
func TestEventsReachTheWebhookInOrder(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	rdb := redistest.Client(t)
	store := runstore.New(rdb)
	f := runstoretest.NewRun(t, store, runstoretest.Run{N: 3})
	secret := []byte("shared secret")
	rcv, srv := newReceiver(t, 3, secret)
	hook, err := NewWebhook(srv.URL, secret, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		startNotifier(t, New(rdb, Config{Webhook: hook}, zap.NewNop(), nil))
	}
	now := time.Now()
	store.Pause(ctx, f.ID, now)
	store.Resume(ctx, f.ID, now)
	outs := []runstore.Outcome{
		{Address: runstoretest.Address(0), Status: runstore.StatePresent},
		{Address: runstoretest.Address(1), Status: runstore.StateAbsent},
		{Address: runstoretest.Address(2)},
	}
	if _, err := store.Record(ctx, f.ID, 1, now, outs); err != nil {
		t.Fatal(err)
	}
	got := rcv.waitFor(t, 4)
	var types []runstore.EventType
	for i, b := range got {
		types = append(types, b.Type)
		if b.ID != runstore.EventID(f.ID, i+1) {
			t.Errorf("event %d has ID %s", i, b.ID)
		}
	}
	if want := []runstore.EventType{runstore.EventSubmitted, runstore.EventPaused, runstore.EventResumed, runstore.EventCompleted}; !slices.Equal(types, want) {
		t.Errorf("events %v, want %v", types, want)
	}
	last := got[3]
	if last.Run.Present != 1 || last.Run.Absent != 1 || last.Run.DeadLettered != 1 || last.Run.State != runstore.StateCompleted ||
		!strings.Contains(last.Text, "completed: 3 addresses, 1 with a personal Microsoft account, 1 without, 1 dead-lettered") {
		t.Errorf("completed event: %+v", last)
	}
	rcv.mu.Lock()
	for _, raw := range rcv.raw {
		if strings.Contains(raw, "@") {
			t.Errorf("a body holds an address: %s", raw)
		}
	}
	if !rcv.sigOK {
		t.Error("a signature does not verify")
	}
	rcv.mu.Unlock()
	// The last delivery is noted once the receiver answered it.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(fast.every) {
		o, _ := store.Events(ctx, f.ID)
		if o.Delivered == 4 && o.Attempts == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox after delivery: %+v", o)
		}
	}
	// Nothing more arrives: each event was delivered once.
	time.Sleep(10 * fast.every)
	if n := len(rcv.waitFor(t, 4)); n != 4 {
		t.Errorf("%d deliveries of 4 events", n)
	}
}

// TestStalledOnceAndRecovered: a run without answers is stalled once, for
// all notifiers, and an answer recovers it.
func TestStalledOnceAndRecovered(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	rdb := redistest.Client(t)
	store := runstore.New(rdb)
	f := runstoretest.NewRun(t, store, runstoretest.Run{N: 2})
	rcv, srv := newReceiver(t, 0, nil)
	hook, _ := NewWebhook(srv.URL, nil, 5*time.Second)
	for range 3 {
		startNotifier(t, New(rdb, Config{Webhook: hook, StallAfter: 200 * time.Millisecond}, zap.NewNop(), nil))
	}
	got := rcv.waitFor(t, 2)
	if got[1].Type != runstore.EventStalled || !strings.Contains(got[1].Text, "stalled: no answer for 200ms") {
		t.Fatalf("second event %+v", got[1])
	}
	// Three notifiers, many looks: still one stall.
	time.Sleep(500 * time.Millisecond)
	if _, err := store.Record(ctx, f.ID, 3, time.Now(), []runstore.Outcome{{Address: runstoretest.Address(0), Status: runstore.StateAbsent}}); err != nil {
		t.Fatal(err)
	}
	got = rcv.waitFor(t, 3)
	var types []runstore.EventType
	for _, b := range got {
		types = append(types, b.Type)
	}
	if want := []runstore.EventType{runstore.EventSubmitted, runstore.EventStalled, runstore.EventRecovered}; !slices.Equal(types[:3], want) {
		t.Errorf("events %v, want %v first", types, want)
	}
}
