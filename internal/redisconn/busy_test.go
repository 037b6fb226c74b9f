package redisconn

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msaudit/msaudit/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// spin is a read-only script that runs for ARGV[1] microseconds.
var spin = redis.NewScript(`
local function now() local t = redis.call('TIME') return t[1] * 1000000 + t[2] end
local start = now()
while now() - start < tonumber(ARGV[1]) do end
return 1`)

// busyFor starts a script that keeps srv busy for d on a connection of its
// own, waits until the server refuses other clients' commands with BUSY, and
// returns a channel closed when the script has ended.
func busyFor(t *testing.T, ctx context.Context, srv *redistest.Server, d time.Duration) <-chan struct{} {
	t.Helper()
	spinner := redis.NewClient(&redis.Options{Addr: srv.Addr, ReadTimeout: -1})
	t.Cleanup(func() { spinner.Close() })
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := spin.Run(ctx, spinner, nil, d.Microseconds()).Err(); err != nil && ctx.Err() == nil {
			t.Errorf("spin: %v", err)
		}
	}()
	plain := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1})
	defer plain.Close()
	for {
		err := plain.Ping(ctx).Err()
		if isBusy(err) {
			return done
		}
		select {
		case <-done:
			t.Fatalf("the script ended before the server answered BUSY (last: %v)", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// tries counts the attempts a client makes, seen from inside busyRetry (a hook
// added after it runs within it), and calls onBusy after each refused one.
type tries struct {
	n      atomic.Int32
	onBusy func()
}

func (*tries) DialHook(next redis.DialHook) redis.DialHook { return next }

func (tr *tries) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		tr.n.Add(1)
		err := next(ctx, cmd)
		if isBusy(err) && tr.onBusy != nil {
			tr.onBusy()
		}
		return err
	}
}

func (tr *tries) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		tr.n.Add(1)
		return next(ctx, cmds)
	}
}

// busyServer starts a Redis that answers BUSY once a script has run 100 ms.
func busyServer(t *testing.T) *redistest.Server {
	t.Helper()
	srv := redistest.StartT(t)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer admin.Close()
	if err := admin.ConfigSet(t.Context(), "busy-reply-threshold", "100").Err(); err != nil {
		t.Fatal(err)
	}
	return srv
}

// TestBusyScriptIsWaitedOut: while another client's script runs past the
// server's busy threshold, a command and a pipeline sent through Open's
// client are refused, wait for the script to end and then run, once each.
func TestBusyScriptIsWaitedOut(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := busyServer(t)
	c, err := Open(ctx, Options{URL: srv.URL}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tr := &tries{}
	c.AddHook(tr)

	done := busyFor(t, ctx, srv, 2*time.Second)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET while a script ran long: %v", err)
	}
	if n := tr.n.Load(); n < 2 {
		t.Errorf("SET ran at its first attempt (%d attempts): the server was not busy for it", n)
	}
	<-done

	tr.n.Store(0)
	done = busyFor(t, ctx, srv, 2*time.Second)
	var incr *redis.IntCmd
	if _, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "p", "v", 0)
		incr = p.Incr(ctx, "n")
		return nil
	}); err != nil {
		t.Fatalf("pipeline while a script ran long: %v", err)
	}
	if n := tr.n.Load(); n < 2 {
		t.Errorf("the pipeline ran at its first attempt (%d attempts): the server was not busy for it", n)
	}
	<-done
	if n := incr.Val(); n != 1 {
		t.Errorf("INCR in the pipeline gave %d, want 1 (run once)", n)
	}
}

// TestBusyPatienceEnds: a command refused for longer than the patience, or
// once its context has ended, returns the BUSY refusal rather than waiting for
// the script.
func TestBusyPatienceEnds(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := busyServer(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer c.Close()
	c.AddHook(busyRetry{patience: 300 * time.Millisecond})
	tr := &tries{}
	c.AddHook(tr)

	// The second client's context ends right after its first refusal.
	short, cancel := context.WithCancel(ctx)
	defer cancel()
	c2 := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer c2.Close()
	c2.AddHook(busyRetry{patience: time.Minute})
	tr2 := &tries{onBusy: cancel}
	c2.AddHook(tr2)
	// Both connect before the server is busy, so each first attempt is one
	// round trip.
	for _, cl := range []*redis.Client{c, c2} {
		if err := cl.Ping(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}
	tr.n.Store(0)
	tr2.n.Store(0)

	done := busyFor(t, ctx, srv, 5*time.Second)
	if err := c.Set(ctx, "k", "v", 0).Err(); !isBusy(err) {
		t.Errorf("SET after the patience: %v, want BUSY", err)
	}
	if n := tr.n.Load(); n < 2 {
		t.Errorf("SET was tried %d times within a 300 ms patience, want at least 2", n)
	}
	if err := c2.Set(short, "k", "v", 0).Err(); !isBusy(err) {
		t.Errorf("SET whose context ended: %v, want BUSY", err)
	}
	if n := tr2.n.Load(); n != 1 {
		t.Errorf("SET whose context ended after its first refusal was tried %d times, want 1", n)
	}
	<-done
}
