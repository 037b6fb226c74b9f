package submit

import (
	"context"
	"math/rand/v2"

	"github.com/hibiken/asynq"

	"github.com/msaudit/msaudit/tasks"
)

// LeastBusyLane returns a lane chooser that picks the lane with the fewest
// tasks waiting or running (ties broken at random), so that concurrent runs
// land in different lanes and are dequeued in turn.
func LeastBusyLane(insp *asynq.Inspector) func(context.Context) (int, error) {
	return func(context.Context) (int, error) {
		names, err := insp.Queues()
		if err != nil {
			return 0, err
		}
		exists := make(map[string]bool, len(names))
		for _, q := range names {
			exists[q] = true
		}
		best, bestN := []int{}, -1
		for i := 0; i < tasks.Lanes; i++ {
			n := 0
			if q := tasks.LaneQueue(i); exists[q] {
				info, err := insp.GetQueueInfo(q)
				if err != nil {
					return 0, err
				}
				n = info.Pending + info.Active + info.Scheduled + info.Retry
			}
			if bestN < 0 || n < bestN {
				best, bestN = []int{i}, n
			} else if n == bestN {
				best = append(best, i)
			}
		}
		return best[rand.IntN(len(best))], nil
	}
}
