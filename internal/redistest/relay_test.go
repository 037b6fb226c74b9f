package redistest

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// rawPing sends PING on c and reads one line, waiting at most wait.
func rawPing(c net.Conn, wait time.Duration) (string, error) {
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return "", err
	}
	c.SetReadDeadline(time.Now().Add(wait))
	return bufio.NewReader(c).ReadString('\n')
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestRelayCutAndHeal(t *testing.T) {
	t.Parallel()
	opts, err := redis.ParseURL(URL(t))
	if err != nil {
		t.Fatal(err)
	}
	r := NewRelay(t, opts.Addr)
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: r.Addr, DB: opts.DB, ReadTimeout: 300 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("through the relay: %v", err)
	}
	old, err := net.Dial("tcp", r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if line, err := rawPing(old, 5*time.Second); err != nil || line != "+PONG\r\n" {
		t.Fatalf("PING through the relay: %q, %v", line, err)
	}

	r.Cut()
	// Nothing passes and nothing is closed: a read waits for its deadline.
	if line, err := rawPing(old, 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("PING during the cut: %q, %v; want a read timeout", line, err)
	}
	if err := c.Get(ctx, "k").Err(); !isTimeout(err) {
		t.Fatalf("GET during the cut: %v; want a read timeout", err)
	}
	// A connection made during the cut is accepted and never answered.
	during, err := net.Dial("tcp", r.Addr)
	if err != nil {
		t.Fatalf("dial during the cut: %v", err)
	}
	defer during.Close()
	if line, err := rawPing(during, 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("PING on a connection made during the cut: %q, %v; want a read timeout", line, err)
	}

	// old, during and the client's connection (which go-redis may have
	// dropped on its timeout, but the relay does not know it yet).
	if n := r.Heal(); n < 2 {
		t.Fatalf("Heal closed %d connections, want every one open during the cut (>= 2)", n)
	}
	for name, conn := range map[string]net.Conn{"old": old, "during": during} {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Read(make([]byte, 64)); !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
			t.Errorf("%s connection after the heal: read %v, want it closed", name, err)
		}
	}
	// New connections are forwarded again.
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET after the heal: %q, %v", v, err)
	}
	fresh, err := net.Dial("tcp", r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if line, err := rawPing(fresh, 5*time.Second); err != nil || line != "+PONG\r\n" {
		t.Fatalf("PING on a new connection after the heal: %q, %v", line, err)
	}
}

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && !oe.Timeout()
}

func TestRelayClose(t *testing.T) {
	t.Parallel()
	opts, err := redis.ParseURL(URL(t))
	if err != nil {
		t.Fatal(err)
	}
	r, err := StartRelay(opts.Addr)
	if err != nil {
		t.Fatal(err)
	}
	held, err := net.Dial("tcp", r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if _, err := rawPing(held, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	r.Cut() // Close also ends a cut
	r.Close()
	held.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := held.Read(make([]byte, 64)); isTimeout(err) {
		t.Errorf("a connection after Close: still open")
	}
	if c, err := net.DialTimeout("tcp", r.Addr, time.Second); err == nil {
		c.Close()
		t.Errorf("the relay still accepts after Close")
	}
}
