package submit

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/tasks"
)

// Candidate is an address found on a user (Owner empty for address lists).
// DisplayName and Mail are the user's, for the report; they stay out of the
// queued tasks.
type Candidate struct {
	Address     string
	Owner       tasks.Owner
	DisplayName string
	Mail        string
}

// Emit receives the candidates of one page of users (users is how many
// member users the page had).
type Emit func(users int, cands []Candidate) error

// Source streams candidates page by page into emit.
type Source func(ctx context.Context, emit Emit) error

// Queue is the part of asynq.Client the submitter uses.
type Queue interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Progress is reported after every page.
type Progress struct {
	RunID     string
	Users     int64
	Addresses int64 // distinct addresses added by this submit
	Reused    int64 // of which answered by the baseline, not queued (Request.Reuse)
	Batches   int64 // batches enqueued by this submit
}

// Summary is the outcome of a submit.
type Summary struct {
	Progress
	Domains map[string]int // distinct addresses per domain (dry runs)
	Samples map[string][]string
	Resumed bool
}

// Submitter runs submits.
type Submitter struct {
	Store      *runstore.Store
	Queue      Queue
	Log        *zap.Logger
	Now        func() time.Time
	OnProgress func(Progress)
	// ChooseLane picks the queue lane of a new run (nil: lane 0).
	ChooseLane func(context.Context) (int, error)
}

// Request describes one submit.
type Request struct {
	Run       runstore.Run // ID, TenantID, Source, Options, Retention
	Resume    bool         // Run.ID exists: extend it
	BatchSize int
	DryRun    bool // count only: nothing is written
	Samples   int  // dry run: addresses kept per domain
	// Reuse, if set, gives the earlier answer a new address may take
	// instead of being asked (submit --since): it is registered absent
	// with that answer's detail and queued for no one.
	Reuse func(addr string) (runstore.Detail, bool)
}

// DefaultBatchSize is how many addresses a batch (one task) carries unless
// the operator says otherwise: a worker checks a batch's addresses under one
// task, so a batch is also what a crash can make a worker start again.
// MaxBatchSize bounds it, so a task's payload stays small.
const (
	DefaultBatchSize = 50
	MaxBatchSize     = 1000
)

// batchBlock is how many batch numbers are reserved per round trip.
const batchBlock = 64

// Submit reads src into the run described by req.
func (s *Submitter) Submit(ctx context.Context, req Request, src Source) (Summary, error) {
	if req.BatchSize < 1 || req.BatchSize > MaxBatchSize {
		return Summary{}, fmt.Errorf("batch size %d: want 1 to %d", req.BatchSize, MaxBatchSize)
	}
	j := &job{s: s, ctx: ctx, req: req, seen: make(map[string]struct{}), holder: runstore.NewRunID(s.now()),
		users: make(map[uint64]struct{}), seed: maphash.MakeSeed()}
	j.sum.RunID = req.Run.ID
	j.sum.Resumed = req.Resume
	if req.DryRun {
		j.sum.Domains = make(map[string]int)
		j.sum.Samples = make(map[string][]string)
	}
	if req.Resume && !req.DryRun {
		run, err := s.Store.GetRun(ctx, req.Run.ID)
		if err != nil {
			return j.sum, err
		}
		j.req.Run.Lane = run.Lane
		if err := j.open(ctx); err != nil {
			return j.sum, err
		}
	}
	defer j.close()
	err := src(ctx, j.emit)
	if err == nil {
		err = j.finish(ctx)
	}
	if err != nil && j.opened {
		// Keep why it stopped; the run stays resumable with --run-id.
		_ = s.Store.SetError(context.WithoutCancel(ctx), req.Run.ID, err.Error())
	}
	return j.sum, err
}

func (s *Submitter) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// job is the state of one submit.
type job struct {
	s      *Submitter
	ctx    context.Context
	req    Request
	sum    Summary
	holder string
	opened bool
	stop   context.CancelFunc

	seen      map[string]struct{}
	cur       []tasks.Entry
	reused    []runstore.Reused // answers to register at the end of the page
	pairs     []runstore.Pair
	writes    []runstore.UserWrite // what registering each of pairs does with its user
	sent      []int
	nextBatch int
	lastBatch int // exclusive end of the reserved block

	// users holds a hash of the ID of every user whose pairs this submit
	// has registered, lastUser the last one's ID (see userWrite).
	users    map[uint64]struct{}
	seed     maphash.Seed
	lastUser string
}

// open creates (or locks, on resume) the run and enqueues what an earlier
// submit left unsent.
func (j *job) open(ctx context.Context) error {
	st := j.s.Store
	if !j.req.Resume {
		if j.s.ChooseLane != nil {
			lane, err := j.s.ChooseLane(ctx)
			if err != nil {
				return fmt.Errorf("choose a queue lane: %w", err)
			}
			j.req.Run.Lane = lane
		}
		if err := st.CreateRun(ctx, &j.req.Run, j.s.now()); err != nil {
			return err
		}
	}
	run := j.req.Run
	if err := st.Lock(ctx, run.ID, j.holder); err != nil {
		return err
	}
	j.opened = true
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	j.stop = cancel
	go j.keepLock(lctx)
	if err := st.StartEnumeration(ctx, run.ID, j.s.now()); err != nil {
		return err
	}
	if !j.req.Resume {
		return nil
	}
	if err := j.flushUnsent(ctx); err != nil {
		return err
	}
	return st.KnownAddresses(ctx, run.ID, func(a string) { j.seen[a] = struct{}{} })
}

func (j *job) keepLock(ctx context.Context) {
	t := time.NewTicker(runstore.LockRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := j.s.Store.RefreshLock(ctx, j.req.Run.ID, j.holder); err != nil && ctx.Err() == nil {
				j.s.Log.Warn("refresh submit lock", zap.Error(err))
			}
		}
	}
}

func (j *job) close() {
	if !j.opened {
		return
	}
	j.stop()
	_ = j.s.Store.Unlock(context.Background(), j.req.Run.ID, j.holder)
}

// flushUnsent enqueues batches stored but not known to be enqueued.
func (j *job) flushUnsent(ctx context.Context) error {
	unsent, err := j.s.Store.Unsent(ctx, j.req.Run.ID)
	if err != nil {
		return err
	}
	var done []int
	for n, payload := range unsent {
		p, err := tasks.DecodeCheckBatch(payload)
		if err != nil {
			return fmt.Errorf("stored batch %d: %w", n, err)
		}
		if err := j.enqueue(ctx, p); err != nil {
			return err
		}
		done = append(done, n)
	}
	if len(done) > 0 {
		j.s.Log.Info("re-enqueued batches left by an interrupted submit", zap.Int("batches", len(done)))
	}
	return j.s.Store.MarkSent(ctx, j.req.Run.ID, done)
}

func (j *job) emit(users int, cands []Candidate) error {
	if !j.opened && !j.req.DryRun && len(cands) > 0 {
		if err := j.open(j.ctx); err != nil {
			return err
		}
	}
	ctx := j.ctx
	j.sum.Users += int64(users)
	for _, c := range cands {
		if !j.req.DryRun {
			// Address lists have no owner: the pair has an empty user, so
			// the report still lists the address.
			j.pairs = append(j.pairs, runstore.Pair{Address: c.Address, UserID: c.Owner.UserID, UPN: c.Owner.UPN,
				DisplayName: c.DisplayName, Mail: c.Mail})
			j.writes = append(j.writes, j.userWrite(c.Owner.UserID))
		}
		if _, dup := j.seen[c.Address]; dup {
			continue
		}
		j.seen[c.Address] = struct{}{}
		j.sum.Addresses++
		if j.req.Reuse != nil {
			if d, ok := j.req.Reuse(c.Address); ok {
				j.sum.Reused++
				if !j.req.DryRun {
					j.reused = append(j.reused, runstore.Reused{Address: c.Address, Detail: d})
				}
				continue
			}
		}
		if j.req.DryRun {
			j.sample(c.Address)
			continue
		}
		j.cur = append(j.cur, tasks.Entry{Address: c.Address, Owner: c.Owner})
		if len(j.cur) >= j.req.BatchSize {
			if err := j.flushBatch(ctx); err != nil {
				return err
			}
		}
	}
	if j.req.DryRun {
		asked := j.sum.Addresses - j.sum.Reused
		j.sum.Batches = (asked + int64(j.req.BatchSize) - 1) / int64(j.req.BatchSize)
	}
	if err := j.flushReused(ctx); err != nil {
		return err
	}
	if j.opened && users > 0 {
		// For status while the enumeration runs; a lost count is no reason
		// to stop the submit.
		if err := j.s.Store.NoteUsers(ctx, j.req.Run.ID, j.sum.Users); err != nil {
			j.s.Log.Warn("note users read", zap.Error(err))
		}
	}
	if j.s.OnProgress != nil {
		j.s.OnProgress(j.sum.Progress)
	}
	return nil
}

// userWrite says what registering a pair of user id does with the user's
// UPN, display name and mail. A source yields a user's addresses one after
// the other, so a user is most often the last one's (UserKept); a user this
// submit has not registered yet is not in a run it created (UserAdd). A
// hash already in users may be another user's, and a resumed run may hold
// the user: both are looked up (UserSet). Some 24 bytes a user.
func (j *job) userWrite(id string) runstore.UserWrite {
	if id == "" {
		return runstore.UserSet // no user: nothing to write
	}
	if id == j.lastUser {
		return runstore.UserKept
	}
	j.lastUser = id
	h := maphash.String(j.seed, id)
	if _, maybe := j.users[h]; maybe {
		return runstore.UserSet
	}
	j.users[h] = struct{}{}
	if j.req.Resume {
		return runstore.UserSet
	}
	return runstore.UserAdd
}

func (j *job) sample(addr string) {
	d := addr[strings.LastIndexByte(addr, '@')+1:]
	j.sum.Domains[d]++
	if len(j.sum.Samples[d]) < j.req.Samples {
		j.sum.Samples[d] = append(j.sum.Samples[d], addr)
	}
}

// flushReused registers the page's reused answers. Their pairs go with the
// next batch's, like any pair.
func (j *job) flushReused(ctx context.Context) error {
	if len(j.reused) == 0 {
		return nil
	}
	if err := j.s.Store.RegisterReused(ctx, j.req.Run.ID, j.reused); err != nil {
		return err
	}
	j.reused = j.reused[:0]
	return nil
}

// flushBatch registers and enqueues the current batch with the pending pairs.
func (j *job) flushBatch(ctx context.Context) error {
	st, id := j.s.Store, j.req.Run.ID
	if j.nextBatch == j.lastBatch {
		first, err := st.NextBatch(ctx, id, batchBlock)
		if err != nil {
			return err
		}
		j.nextBatch, j.lastBatch = first, first+batchBlock
	}
	p := tasks.CheckBatchPayload{RunID: id, TenantID: j.req.Run.TenantID, Batch: j.nextBatch, Lane: j.req.Run.Lane, Entries: j.cur}
	payload, err := tasks.EncodeCheckBatch(p)
	if err != nil {
		return err
	}
	addrs := make([]string, len(j.cur))
	for i, e := range j.cur {
		addrs[i] = e.Address
	}
	r := runstore.Registration{Batch: j.nextBatch, Payload: payload, Addrs: addrs, Pairs: j.pairs, Users: j.writes, Sent: j.sent}
	if err := st.RegisterBatch(ctx, id, r); err != nil {
		return err
	}
	j.pairs, j.writes, j.sent = j.pairs[:0], j.writes[:0], j.sent[:0]
	if err := j.enqueue(ctx, p); err != nil {
		return err
	}
	j.sent = append(j.sent, j.nextBatch)
	j.nextBatch++
	j.sum.Batches++
	j.cur = nil
	return nil
}

func (j *job) enqueue(ctx context.Context, p tasks.CheckBatchPayload) error {
	t, err := tasks.NewCheckBatchTask(p)
	if err != nil {
		return err
	}
	if _, err := j.s.Queue.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue batch %d: %w", p.Batch, err)
	}
	return nil
}

// finish flushes the last partial batch and marks the enumeration complete.
func (j *job) finish(ctx context.Context) error {
	if j.req.DryRun {
		return nil
	}
	if !j.opened {
		if err := j.open(ctx); err != nil {
			return err
		}
	}
	if len(j.cur) > 0 {
		if err := j.flushBatch(ctx); err != nil {
			return err
		}
	}
	if len(j.pairs) > 0 || len(j.sent) > 0 {
		r := runstore.Registration{Batch: -1, Pairs: j.pairs, Users: j.writes, Sent: j.sent}
		if err := j.s.Store.RegisterBatch(ctx, j.req.Run.ID, r); err != nil {
			return err
		}
	}
	users := j.sum.Users
	if j.req.Resume {
		if run, err := j.s.Store.GetRun(ctx, j.req.Run.ID); err == nil && run.UsersTotal > users {
			users = run.UsersTotal
		}
	}
	return j.s.Store.FinishEnumeration(ctx, j.req.Run.ID, users, j.s.now())
}
