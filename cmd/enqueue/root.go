package main

import (
	"context"
	"fmt"
	"io"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/msaudit/msaudit/internal/cliflags"
	"github.com/msaudit/msaudit/internal/envflag"
	"github.com/msaudit/msaudit/internal/redisconn"
	"github.com/msaudit/msaudit/internal/runqueue"
	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/internal/submit"
	"github.com/msaudit/msaudit/internal/version"
)

// app carries what every subcommand shares: the common flags and the
// output streams.
type app struct {
	common    cliflags.Common
	lookupEnv func(string) (string, bool)
	stdout    io.Writer
	stderr    io.Writer
}

func newRootCommand(stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) *cobra.Command {
	a := &app{stdout: stdout, stderr: stderr, lookupEnv: lookupEnv}
	root := &cobra.Command{
		Use:   "enqueue",
		Short: "Audit a Microsoft 365 tenant for personal Microsoft accounts",
		Long: `enqueue finds which work addresses of a Microsoft 365 tenant also have a personal
("consumer") Microsoft account.

'submit' reads the tenant's users through Microsoft Graph, builds the address
list and queues it on Redis in batches; workers ('worker' command) check each
address with Microsoft's public sign-in realm service under per-tenant rate
limits. Watch a run with 'status --watch', get the result with 'report', and
handle addresses that kept failing with 'deadletters' and 'requeue'. 'pause'
and 'resume' hold a run; 'submit --recheck RUN' re-audits what RUN found and
'compare' shows who renamed their account since.

'local' does all of it in one process with an embedded Redis, for a small
tenant; 'demo' does it against a built-in simulated tenant.

Flags named in --help with "(env NAME)" can also be set by that environment
variable; a flag given on the command line wins.`,
		Version:       version.String(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return envflag.Apply(cmd.Flags(), a.lookupEnv)
		},
	}
	a.common.Register(root.PersistentFlags())
	root.AddCommand(
		newSubmitCommand(a),
		newStatusCommand(a),
		newReportCommand(a),
		newRunsCommand(a),
		newEventsCommand(a),
		newHistoryCommand(a),
		newCancelCommand(a),
		newPurgeCommand(a),
		newDeadLettersCommand(a),
		newRequeueCommand(a),
		newPauseCommand(a),
		newResumeCommand(a),
		newCompareCommand(a),
		newSweepCommand(a),
		newReconcileCommand(a),
		newLocalCommand(a),
		newDemoCommand(a),
	)
	return root
}

// session is an open connection to the run store and the queue.
type session struct {
	rdb       redis.UniversalClient
	store     *runstore.Store
	queue     *asynq.Client
	inspector *asynq.Inspector
	batches   runqueue.Queue // the queue lanes' tasks, by run
	log       *zap.Logger
	own       bool // close rdb on Close
}

func (s *session) Close() {
	s.queue.Close() // the inspector shares rdb and has nothing of its own to close
	if s.own {
		s.rdb.Close()
	}
}

func (a *app) logger() (*zap.Logger, error) { return a.common.Logger() }

// start checks a command's options, then builds its logger: a bad flag is
// reported before anything is set up.
func (a *app) start(o interface{ Validate() error }) (*zap.Logger, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return a.logger()
}

// open connects to the Redis of --redis-url.
func (a *app) open(ctx context.Context) (*session, error) {
	log, err := a.logger()
	if err != nil {
		return nil, err
	}
	rdb, err := redisconn.Open(ctx, a.common.Redis, 0)
	if err != nil {
		return nil, err
	}
	return newSession(rdb, log, true), nil
}

// withSession runs fn with an open session and closes it after.
func (a *app) withSession(ctx context.Context, fn func(*session) error) error {
	sess, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer sess.Close()
	return fn(sess)
}

// addBatchSizeFlag defines --batch-size, the addresses per new task.
func addBatchSizeFlag(f *pflag.FlagSet, p *int, usage string) {
	f.IntVar(p, "batch-size", submit.DefaultBatchSize, usage)
}

// checkBatchSize validates a --batch-size value.
func checkBatchSize(n int) error {
	if n < 1 || n > submit.MaxBatchSize {
		return fmt.Errorf("--batch-size %d: want 1 to %d", n, submit.MaxBatchSize)
	}
	return nil
}

// checkOutput validates an --output value.
func checkOutput(v string) error {
	if v != "text" && v != "json" {
		return fmt.Errorf("--output %q: want text or json", v)
	}
	return nil
}

func newSession(rdb redis.UniversalClient, log *zap.Logger, own bool) *session {
	insp := asynq.NewInspectorFromRedisClient(rdb)
	return &session{rdb: rdb, store: runstore.New(rdb), queue: asynq.NewClientFromRedisClient(rdb),
		inspector: insp, batches: runqueue.Queue{Redis: rdb, Inspector: insp}, log: log, own: own}
}
