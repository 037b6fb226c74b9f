package e2e

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"
)

// scopeTB lets one benchmark configuration run in a goroutine of its own
// with the harness (startSim, startWorker, enqueue), which takes a
// testing.TB: a sub-benchmark cannot run in parallel with its siblings, and
// the whole throttle sweep serially takes hours on a machine that is mostly
// idle (the simulator's capacity, not the CPU, paces each run). Cleanups,
// temporary directories and failures are the configuration's own; Fatal
// ends only its goroutine. Everything else goes to the benchmark.
type scopeTB struct {
	testing.TB
	name string

	mu       sync.Mutex
	cleanups []func()
	errs     []string
}

func (s *scopeTB) Name() string { return s.TB.Name() + "/" + s.name }
func (s *scopeTB) Helper()      {}

func (s *scopeTB) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

func (s *scopeTB) TempDir() string {
	dir, err := os.MkdirTemp("", "msaudit-throttle-")
	if err != nil {
		s.Fatal(err)
	}
	s.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func (s *scopeTB) Errorf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs = append(s.errs, fmt.Sprintf(format, args...))
}

func (s *scopeTB) Error(args ...any)                 { s.Errorf("%s", fmt.Sprint(args...)) }
func (s *scopeTB) Fatalf(format string, args ...any) { s.Errorf(format, args...); s.FailNow() }
func (s *scopeTB) Fatal(args ...any)                 { s.Error(args...); s.FailNow() }
func (s *scopeTB) Skipf(format string, args ...any)  { s.Fatalf("skipped: "+format, args...) }
func (s *scopeTB) Skip(args ...any)                  { s.Fatal(append([]any{"skipped: "}, args...)...) }
func (s *scopeTB) SkipNow()                          { s.Fatal("skipped") }
func (s *scopeTB) Log(args ...any)                   { fmt.Println(append([]any{s.name + ":"}, args...)...) }
func (s *scopeTB) Logf(format string, args ...any)   { fmt.Printf(s.name+": "+format+"\n", args...) }

// FailNow ends the configuration's goroutine; its cleanups still run.
func (s *scopeTB) FailNow() {
	if !s.Failed() {
		s.Errorf("failed")
	}
	runtime.Goexit()
}

func (s *scopeTB) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.errs) > 0
}

// run calls fn and then the cleanups, last registered first, even when fn
// ends with FailNow.
func (s *scopeTB) run(fn func(testing.TB)) {
	defer func() {
		s.mu.Lock()
		cleanups := s.cleanups
		s.mu.Unlock()
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}()
	fn(s)
}

// runPool runs fn for every job, each in its own scope, as many at once as
// fit in parallel slots, a job taking cost(job) of them (at most all);
// done is called, one call at a time, as each job ends, with fn's result
// (zero if it failed) and the errors it reported. It returns when all have
// ended.
func runPool[J, R any](b testing.TB, parallel int, jobs []J, name func(J) string, cost func(J) int,
	fn func(testing.TB, J) R, done func(J, R, []string)) {
	parallel = max(1, parallel)
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, j := range jobs {
		// Only this loop acquires, so a costly job waits for enough
		// slots without starving anyone.
		slots := min(max(1, cost(j)), parallel)
		for range slots {
			sem <- struct{}{}
		}
		wg.Go(func() {
			defer func() {
				for range slots {
					<-sem
				}
			}()
			s := &scopeTB{TB: b, name: name(j)}
			var r R
			// A goroutine ended by FailNow (runtime.Goexit) closes
			// finished too.
			finished := make(chan struct{})
			go func() {
				defer close(finished)
				s.run(func(tb testing.TB) { r = fn(tb, j) })
			}()
			<-finished
			mu.Lock()
			defer mu.Unlock()
			done(j, r, s.errs)
		})
	}
	wg.Wait()
}

// A job that fails ends alone: its cleanups run, its errors are reported,
// and the other jobs finish with their results.
func TestRunPoolIsolatesFailures(t *testing.T) {
	var mu sync.Mutex
	var cleaned []int
	got := map[int]string{}
	runPool(t, 2, []int{1, 2, 3, 4}, func(j int) string { return fmt.Sprint("job", j) },
		func(j int) int { return j % 2 * 3 }, // odd jobs take every slot
		func(tb testing.TB, j int) string {
			tb.Cleanup(func() { mu.Lock(); cleaned = append(cleaned, j); mu.Unlock() })
			if j == 2 {
				tb.Fatalf("job %d fails", j)
			}
			return fmt.Sprint("result", j)
		}, func(j int, r string, errs []string) {
			got[j] = r + fmt.Sprint(errs)
		})
	want := map[int]string{1: "result1[]", 2: "[job 2 fails]", 3: "result3[]", 4: "result4[]"}
	if len(cleaned) != 4 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("cleanups %v, results %v; want 4 cleanups and %v", cleaned, got, want)
	}
}
