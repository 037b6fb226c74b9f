package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/msaudit/msaudit/tasks"
)

// TestPauseResume: from 2 s after 'pause' until 'resume' the simulator sees
// no request, over more than 10 s and a worker restart; nothing is
// archived or dead-lettered; then the run completes and matches the ground
// truth. Meanwhile 'status --watch' under tmux redraws one block in place.
func TestPauseResume(t *testing.T) {
	t.Parallel() // a Redis database, simulator and workers of its own
	dir := t.TempDir()
	redisURL := newRedis(t)
	s := startSim(t, dir, "--users", "600", "--seed", "5")
	env := s.env(redisURL)
	args := []string{"--concurrency", "4", "--tenant-rate", "60", "--initial-rate", "60", "--adaptive=false",
		"--max-attempts", "5", "--backoff-base", "10ms", "--backoff-max", "100ms"}
	w := startWorker(t, dir, "worker", s, redisURL, args...)
	run := submitRun(t, s, env, graphArgs(s)...)
	watch := watchInTmux(t, env, run)

	waitFor(t, 2*time.Minute, func() bool { st := getStatus(t, env, run); return st.Checked > st.AddressesTotal/5 })
	enqueue(t, env, "pause", run)
	paused := time.Now()
	if st := getStatus(t, env, run); st.State != "paused" {
		t.Fatalf("state after pause: %s", st.State)
	}
	time.Sleep(time.Until(paused.Add(2 * time.Second)))
	from := s.stats(t).RealmRequests
	time.Sleep(5 * time.Second)
	w.kill() // a restarted worker respects the pause too
	w.start()
	time.Sleep(6 * time.Second)
	to := s.stats(t).RealmRequests
	if to != from {
		t.Errorf("%d realm requests during the pause (from 2s after it, over 11s)", to-from)
	}
	st := getStatus(t, env, run)
	if st.State != "paused" || st.DeadLettered != 0 || st.Checked >= st.AddressesTotal {
		t.Fatalf("during the pause: %+v", st)
	}
	if n := archived(t, redisURL); n != 0 {
		t.Errorf("%d batches archived by the pause", n)
	}
	if screen := watch(); screen != "" {
		t.Logf("status --watch under tmux during the pause:\n%s", screen)
	}

	enqueue(t, env, "resume", run)
	st = waitDone(t, env, run, 2*time.Minute, nil)
	gt := s.truth(t)
	present := int64(0)
	for _, a := range gt.Addresses {
		if a.ConsumerAccount {
			present++
		}
	}
	if st.AddressesTotal != int64(len(gt.Addresses)) || st.Present != present || st.DeadLettered != 0 ||
		st.Absent != int64(len(gt.Addresses))-present {
		t.Errorf("after resume: %+v; ground truth %d addresses, %d present", st, len(gt.Addresses), present)
	}
	want := map[string]string{}
	for _, a := range gt.Addresses {
		want[a.Address] = map[bool]string{true: "present", false: "absent"}[a.ConsumerAccount]
	}
	for _, r := range jsonReport(t, env, dir, run) {
		if want[r.Address] != r.Status {
			t.Errorf("%s is %s, ground truth %s", r.Address, r.Status, want[r.Address])
		}
	}
}

func waitFor(t testing.TB, limit time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %s", limit)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func archived(t testing.TB, redisURL string) int {
	t.Helper()
	opts, _ := redis.ParseURL(redisURL)
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	insp := asynq.NewInspectorFromRedisClient(rdb)
	n := 0
	for i := 0; i < tasks.Lanes; i++ {
		if q, err := insp.GetQueueInfo(tasks.LaneQueue(i)); err == nil {
			n += q.Archived
		}
	}
	return n
}

// watchInTmux runs 'status RUN --watch' in a detached 120x30 tmux session
// and returns a function that captures its screen and checks it shows one
// block: the status lines once each, not a scroll of them. Without tmux it
// returns a no-op outside CI.
func watchInTmux(t *testing.T, env []string, run string) func() string {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("tmux not installed: CI must install it")
		}
		t.Log("tmux not installed: status --watch not checked on a terminal")
		return func() string { return "" }
	}
	session := fmt.Sprintf("msaudit-e2e-%d", time.Now().UnixNano())
	var vars []string
	for _, kv := range env {
		if strings.HasPrefix(kv, "REDIS_URL=") {
			vars = append(vars, "'"+kv+"'")
		}
	}
	cmdline := fmt.Sprintf("env %s %s status %s --watch --interval 300ms", strings.Join(vars, " "), filepath.Join(binDir, "enqueue"), run)
	tmux := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "tmux", append([]string{"-L", session}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "30", cmdline)
	t.Cleanup(func() { exec.Command("tmux", "-L", session, "kill-server").Run() })
	return func() string {
		screen := tmux("capture-pane", "-p", "-t", session)
		for _, line := range []string{"phase: ", "present ", "rate "} {
			if n := strings.Count(screen, "\n"+line); n != 1 && !strings.HasPrefix(screen, line) {
				t.Errorf("status --watch screen shows %q %d times, want one redrawn block:\n%s", line, n, screen)
			}
		}
		if !strings.Contains(screen, "phase: paused") {
			t.Errorf("status --watch screen does not show the pause:\n%s", screen)
		}
		return screen
	}
}
