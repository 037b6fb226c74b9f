package redistest

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// TestDatabasesAreNeverShared: while every database of the shared server is
// held, the next test waits for one to be given back rather than share one.
// It holds them all: it runs alone.
func TestDatabasesAreNeverShared(t *testing.T) {
	held := map[int]bool{}
	for range sharedDatabases - 1 {
		db := takeDB()
		if held[db] || db <= 0 || db >= sharedDatabases {
			t.Fatalf("database %d handed out twice or out of range", db)
		}
		held[db] = true
	}
	got := make(chan int)
	go func() { got <- takeDB() }()
	select {
	case db := <-got:
		t.Fatalf("database %d handed out while every one was held", db)
	case <-time.After(50 * time.Millisecond):
	}
	giveDB(7)
	if db := <-got; db != 7 {
		t.Errorf("the waiting test got database %d, want the 7 given back", db)
	}
	for db := range held {
		giveDB(db)
	}
}

// TestRestartRefusesAStrangersServer: a server restarted on a port another
// server took meanwhile does not come up as if it were that one.
func TestRestartRefusesAStrangersServer(t *testing.T) {
	t.Parallel()
	a := StartT(t)
	b := StartT(t)
	b.Kill()
	b.Addr = a.Addr // as if a had taken b's port while b was down
	err := b.Restart()
	if err == nil || !strings.Contains(err.Error(), "not by the redis-server started") {
		t.Fatalf("restart on a port another server holds: %v", err)
	}
}
