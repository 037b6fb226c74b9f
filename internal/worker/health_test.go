package worker

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/msaudit/msaudit/internal/logging"
	"github.com/msaudit/msaudit/internal/redistest"
)

// checkUntil checks until the checker reports want, at most 20 times.
func checkUntil(t *testing.T, h *healthChecker, want fault) {
	t.Helper()
	for range 20 {
		h.check(context.Background())
		if h.state.Load().fault == want {
			return
		}
	}
	t.Fatalf("the checker reports %q, want %q", h.state.Load().fault, want)
}

// messages are the observed lines, "LEVEL message".
func messages(logs *observer.ObservedLogs) []string {
	var out []string
	for _, e := range logs.All() {
		out = append(out, e.Level.CapitalString()+" "+e.Message)
	}
	return out
}

func TestHealthOOMAndCut(t *testing.T) {
	t.Parallel()
	srv := redistest.StartT(t)
	relay := redistest.NewRelay(t, srv.Addr)
	rdb := redis.NewClient(&redis.Options{Addr: relay.Addr, ContextTimeoutEnabled: true})
	defer rdb.Close()
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer admin.Close()
	ctx := context.Background()
	core, logs := observer.New(zap.InfoLevel)
	h := newHealthChecker(rdb, zap.New(core))

	checkUntil(t, h, faultNone)
	if err := h.err(); err != nil {
		t.Fatalf("healthy Redis: %v", err)
	}
	if err := admin.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	checkUntil(t, h, faultOOM)
	for range 5 {
		h.check(ctx) // still refused: no new line
	}
	var rf *RedisFault
	if err := h.err(); !errors.As(err, &rf) || rf.What != "redis refusing writes (OOM)" {
		t.Errorf("under OOM: %v", err)
	}
	if h.unreachable() {
		t.Errorf("under OOM Redis answers: not unreachable")
	}
	if err := admin.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	checkUntil(t, h, faultNone)

	relay.Cut()
	checkUntil(t, h, faultUnreachable)
	for range 3 {
		h.check(ctx)
	}
	if err := h.err(); !errors.As(err, &rf) || rf.What != "redis unreachable" || !h.unreachable() {
		t.Errorf("during the cut: %v", err)
	}
	relay.Heal()
	checkUntil(t, h, faultNone)

	want := []string{"WARN redis refusing writes (OOM)", "INFO redis reachable and writable again",
		"WARN redis unreachable", "INFO redis reachable and writable again"}
	if got := messages(logs); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("log lines:\n%s\nwant one per change of state:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	back := logs.FilterMessage("redis reachable and writable again").All()
	if len(back) == 2 && back[0].ContextMap()["was"] != string(faultOOM) {
		t.Errorf("recovery line %v: want was=%q", back[0].ContextMap(), faultOOM)
	}
}

func TestHealthReadOnlyReplica(t *testing.T) {
	t.Parallel()
	primary := redistest.StartT(t)
	replica := redistest.StartT(t)
	rdb := redis.NewClient(&redis.Options{Addr: replica.Addr})
	defer rdb.Close()
	host, port, _ := strings.Cut(primary.Addr, ":")
	if err := rdb.ReplicaOf(context.Background(), host, port).Err(); err != nil {
		t.Fatal(err)
	}
	h := newHealthChecker(rdb, zap.NewNop())
	checkUntil(t, h, faultReadOnly)
	if err := h.err(); err == nil || err.Error() != "redis refusing writes (read-only replica)" {
		t.Errorf("on a replica: %v", err)
	}
}

// TestLogGate: while the checker reports a fault, the lines of commands
// failing for it go to debug; the checker's line is the only one left.
func TestLogGate(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zap.InfoLevel)
	log := zap.New(core)
	h := newHealthChecker(nil, log)
	gated := gateLogger(log, h)
	asynqLog := logging.NewAsynq(gated)
	oom := errors.New("OOM command not allowed when used memory > 'maxmemory'.")

	// Healthy as last seen: the line is written, and asks for a check.
	gated.Warn("report throttle", zap.Error(oom))
	select {
	case <-h.kick:
	default:
		t.Errorf("a line quoting a Redis fault did not ask for a check")
	}

	h.set(faultOOM, oom)
	for range 50 {
		gated.Warn("report throttle", zap.Error(oom))
		gated.With(zap.String("run_id", "r")).Error("event delivery: list outboxes", zap.Error(errors.New("dial tcp 127.0.0.1:1: i/o timeout")))
		asynqLog.Error("Failed to write server state data: UNKNOWN: redis command error: SADD failed: OOM command not allowed when used memory > 'maxmemory'.")
	}
	gated.Warn("batch archived", zap.Error(errors.New("address dead-lettered")))
	h.set(faultNone, nil)
	gated.Warn("report throttle", zap.Error(oom))

	want := []string{"WARN report throttle", "WARN redis refusing writes (OOM)", "WARN batch archived",
		"INFO redis reachable and writable again", "WARN report throttle"}
	if got := messages(logs); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("log lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// At debug level the gated lines are kept, at debug.
	dcore, dlogs := observer.New(zap.DebugLevel)
	dlog := zap.New(dcore)
	dh := newHealthChecker(nil, dlog)
	dh.set(faultUnreachable, errNoAnswer)
	gateLogger(dlog, dh).Error("dequeue", zap.Error(errors.New("read tcp: i/o timeout")))
	if got := dlogs.FilterMessage("dequeue").All(); len(got) != 1 || got[0].Level != zapcore.DebugLevel {
		t.Errorf("gated line at debug level: %v", got)
	}
}
