// Package e2e holds the end-to-end tests: they build the real binaries and
// run the tenant simulator, a private redis-server, 'enqueue submit' and
// several workers as separate processes, then check the run's report against
// the simulator's ground truth. There is no non-test code here.
package e2e
