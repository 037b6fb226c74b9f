package redisconn

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/msaudit/msaudit/internal/redistest"
)

// TestOpenFollowsSentinelFailover: a redis-sentinel:// connection keeps
// working after its primary is killed and the Sentinel promotes the replica.
func TestOpenFollowsSentinelFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three Redis processes and waits for a failover")
	}
	st, err := redistest.StartSentinel(1)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Stop()
	ctx := context.Background()
	c, err := Open(ctx, Options{URL: st.URL()}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(*redis.Client); !ok {
		t.Fatalf("client %T", c)
	}
	if err := c.Set(ctx, "k", "before", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// WAIT: the write is on the replica before the primary dies.
	if n, err := c.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT = %d, %v", n, err)
	}
	old := st.Primary.Addr
	st.Primary.Kill()
	promoted, err := st.WaitFailover(ctx, old, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if promoted != st.Replicas[0].Addr {
		t.Fatalf("promoted %s, want the replica %s", promoted, st.Replicas[0].Addr)
	}
	// The client may still hold connections to the dead primary: the first
	// commands can fail, then it asks the Sentinel again.
	deadline := time.Now().Add(15 * time.Second)
	for {
		err = c.Set(ctx, "k2", "after", 0).Err()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write after the failover: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if v := c.Get(ctx, "k").Val(); v != "before" {
		t.Errorf("k = %q after the failover", v)
	}
	direct := redis.NewClient(&redis.Options{Addr: promoted})
	defer direct.Close()
	if v := direct.Get(ctx, "k2").Val(); v != "after" {
		t.Errorf("the write after the failover is not on the new primary: %q", v)
	}
}

func TestOpenSentinelErrors(t *testing.T) {
	t.Parallel()
	st, err := redistest.StartSentinel(0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Stop()
	for _, tt := range []struct{ url, want string }{
		{"redis-sentinel://:url-s3cret@" + st.Addr + "/no-such-primary/0", `monitors no primary named "no-such-primary"`},
		{"redis-sentinel://:url-s3cret@127.0.0.1:1/" + st.Name + "/0", "Sentinel 127.0.0.1:1: dial tcp 127.0.0.1:1: connect: connection refused"},
	} {
		_, err := Open(context.Background(), Options{URL: tt.url}, 0)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "url-s3cret") {
			t.Errorf("Open(%s): %v, want an error containing %q without the password", tt.url, err, tt.want)
		}
	}
}
