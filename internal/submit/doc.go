// Package submit turns a stream of candidate addresses into a run: it
// de-duplicates them (an address is checked once per run, however many users
// carry it), groups them into batches, and hands each batch to the queue as
// soon as it is full, while the source is still being read.
//
// Crash safety: a batch is first written to the run store together with its
// addresses and pairs, in one transaction, as "unsent"; then enqueued under a
// task ID derived from the run and batch number; then marked sent. A submit
// that dies anywhere in between is resumed with the same run ID: unsent
// batches are enqueued again (asynq refuses a duplicate task ID) and the
// addresses already in the run are skipped.
//
// The run record is created only when the first candidates arrive, so an
// error before that (bad filter, missing permission) leaves nothing behind.
// This package knows nothing of Graph; sources are plain functions.
package submit
