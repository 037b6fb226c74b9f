package main

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/msaudit/msaudit/internal/submit"
)

// progressPrinter prints submit progress at most once per interval.
type progressPrinter struct {
	w     io.Writer
	every time.Duration
	mu    sync.Mutex
	last  time.Time
	start time.Time
}

func newProgressPrinter(w io.Writer, every time.Duration) *progressPrinter {
	return &progressPrinter{w: w, every: every, start: time.Now()}
}

func (p *progressPrinter) update(pr submit.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.last) < p.every {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(p.w, "enumerating: %d users, %d new addresses, %d batches queued (%s)\n",
		pr.Users, pr.Addresses, pr.Batches, time.Since(p.start).Round(time.Second))
}

func (p *progressPrinter) done(pr submit.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "enumerated: %d users, %d new addresses, %d batches queued in %s\n",
		pr.Users, pr.Addresses, pr.Batches, time.Since(p.start).Round(100*time.Millisecond))
}
