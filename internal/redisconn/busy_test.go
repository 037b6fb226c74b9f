package redisconn

import (
	"context"
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

// TestBusyScriptIsWaitedOut: while another client's script runs past the
// server's busy threshold, a command and a pipeline sent through Open's
// client wait for it to end and then run, once each.
func TestBusyScriptIsWaitedOut(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := redistest.StartT(t)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer admin.Close()
	if err := admin.ConfigSet(ctx, "busy-reply-threshold", "100").Err(); err != nil {
		t.Fatal(err)
	}
	c, err := Open(ctx, Options{URL: srv.URL}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	done := busyFor(t, ctx, srv, 2*time.Second)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET while a script ran long: %v", err)
	}
	select {
	case <-done:
	default:
		t.Fatal("SET answered while the script still ran: the server was not busy for it")
	}

	done = busyFor(t, ctx, srv, 2*time.Second)
	var incr *redis.IntCmd
	if _, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "p", "v", 0)
		incr = p.Incr(ctx, "n")
		return nil
	}); err != nil {
		t.Fatalf("pipeline while a script ran long: %v", err)
	}
	<-done
	if n := incr.Val(); n != 1 {
		t.Errorf("INCR in the pipeline gave %d, want 1 (run once)", n)
	}
}

// TestBusyPatienceEnds: a command refused for longer than the patience, or
// past its context's deadline, returns the BUSY refusal.
func TestBusyPatienceEnds(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := redistest.StartT(t)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer admin.Close()
	if err := admin.ConfigSet(ctx, "busy-reply-threshold", "100").Err(); err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer c.Close()
	c.AddHook(busyRetry{patience: 300 * time.Millisecond})

	done := busyFor(t, ctx, srv, 3*time.Second)
	if err := c.Set(ctx, "k", "v", 0).Err(); !isBusy(err) {
		t.Errorf("SET after the patience: %v, want BUSY", err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	c2 := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	defer c2.Close()
	c2.AddHook(busyRetry{patience: time.Minute})
	if err := c2.Set(short, "k", "v", 0).Err(); !isBusy(err) {
		t.Errorf("SET past its deadline: %v, want BUSY", err)
	}
	if waited := time.Since(start); waited > 2*time.Second {
		t.Errorf("SET with a 200 ms deadline waited %s", waited)
	}
	<-done
}
