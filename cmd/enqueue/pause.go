package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
)

func newPauseCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "pause RUN",
		Short: "Stop sending a run's requests until 'resume'",
		Long: `pause makes every worker stop sending the run's requests within about a second:
batches running finish the request in flight, record what they have and go
back to the queue; nothing fails, is archived or dead-lettered, and no attempt
is counted. The pause is kept in Redis, so restarted workers respect it.
'status' shows the run as paused; 'resume' continues where it stopped.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withSession(cmd.Context(), func(sess *session) error {
				changed, err := sess.store.Pause(cmd.Context(), args[0], time.Now())
				if err != nil {
					return err
				}
				if !changed {
					fmt.Fprintf(a.stderr, "run %s was already paused\n", args[0])
					return nil
				}
				fmt.Fprintf(a.stderr, "run %s paused: resume it with 'enqueue resume %s'\n", args[0], args[0])
				return nil
			})
		},
	}
}

func newResumeCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "resume RUN",
		Short: "Continue a paused run",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withSession(cmd.Context(), func(sess *session) error {
				return runResume(cmd.Context(), a, sess, args[0])
			})
		},
	}
}

// runResume lifts the pause and hands the run's waiting batches back to the
// queue, so it continues now rather than when each batch looks again.
func runResume(ctx context.Context, a *app, sess *session, id string) error {
	changed, err := sess.store.Resume(ctx, id, time.Now())
	if err != nil {
		return err
	}
	if !changed {
		fmt.Fprintf(a.stderr, "run %s was not paused\n", id)
		return nil
	}
	run, err := sess.store.GetRun(ctx, id)
	if err != nil {
		return err
	}
	n, err := sess.batches.Wake(ctx, id, run.Lane)
	if err != nil {
		// The batches look again by themselves within minutes.
		sess.log.Warn("hand the run's waiting batches back", zap.Error(err))
	}
	fmt.Fprintf(a.stderr, "run %s resumed (%d waiting batches handed back)\n", id, n)
	return nil
}
