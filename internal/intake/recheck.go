package intake

import (
	"context"
	"fmt"

	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/internal/submit"
	"github.com/msaudit/msaudit/tasks"
)

// RecheckSource emits the addresses that run found present, each with every
// user it was listed on, so that a new run checks only them and its report
// still says whom to contact; no Graph access is needed. It fails if the
// run found nothing to check again.
func RecheckSource(ctx context.Context, store *runstore.Store, runID string) (submit.Source, error) {
	results, err := store.Results(ctx, runID)
	if err != nil {
		return nil, err
	}
	var cands []submit.Candidate
	users := make(map[string]struct{})
	for _, r := range results {
		if r.State != runstore.StatePresent {
			continue
		}
		cands = append(cands, submit.Candidate{Address: r.Address, Owner: tasks.Owner{UserID: r.UserID, UPN: r.UPN},
			DisplayName: r.DisplayName, Mail: r.Mail})
		if r.UserID != "" {
			users[r.UserID] = struct{}{}
		}
	}
	if len(cands) == 0 {
		return nil, fmt.Errorf("run %s found no consumer account to check again", runID)
	}
	return func(ctx context.Context, emit submit.Emit) error {
		return emit(len(users), cands)
	}, nil
}
