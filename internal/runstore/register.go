package runstore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrSubmitRunning is returned when another submit holds the run's lock.
var ErrSubmitRunning = errors.New("another submit is adding to this run")

// LockTTL bounds how long a crashed submit blocks a resume; a live submit
// refreshes its lock well within it (see LockRefresh).
const LockTTL = 20 * time.Second

// LockRefresh is how often a live submit should refresh its lock.
const LockRefresh = 5 * time.Second

// Lock takes the run's submit lock; only one submit may add to a run at a
// time, since address de-duplication happens in the submitting process.
func (s *Store) Lock(ctx context.Context, runID, holder string) error {
	ok, err := s.rdb.SetNX(ctx, runKeys(runID).lock, holder, LockTTL).Result()
	if err != nil {
		return fmt.Errorf("lock run: %w", err)
	}
	if !ok {
		return fmt.Errorf("run %s: %w (wait up to %s if it crashed)", runID, ErrSubmitRunning, LockTTL)
	}
	return nil
}

// unlockScript releases the submit lock if this holder still has it.
//
// Input: KEYS[1] -> the run's lock, ARGV[1] -> the holder.
// Output: 1 if released, else 0.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// refreshScript extends the submit lock if this holder still has it.
//
// Input: KEYS[1] -> the run's lock, ARGV[1] -> the holder, ARGV[2] -> the
// new TTL (ms). Output: 1 if extended, else 0.
var refreshScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`)

// RefreshLock extends the lock; it fails if the lock was lost.
func (s *Store) RefreshLock(ctx context.Context, runID, holder string) error {
	n, err := refreshScript.Run(ctx, s.rdb, []string{runKeys(runID).lock}, holder, LockTTL.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("refresh run lock: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("run %s: submit lock lost", runID)
	}
	return nil
}

// Unlock releases the lock if holder still has it.
func (s *Store) Unlock(ctx context.Context, runID, holder string) error {
	return unlockScript.Run(ctx, s.rdb, []string{runKeys(runID).lock}, holder).Err()
}

// StartEnumeration stamps the start of an enumeration pass.
func (s *Store) StartEnumeration(ctx context.Context, runID string, now time.Time) error {
	if err := startScript.Run(ctx, s.rdb, runKeys(runID).scripted(), now.UnixMilli()).Err(); err != nil {
		return fmt.Errorf("start enumeration: %w", err)
	}
	return nil
}

// startScript marks a submit adding to a run. A completed run that a
// submit extends (--run-id) is reopened: it is not complete until the new
// addresses are final, and its data must not expire meanwhile.
//
// Input: KEYS: keys.scripted. ARGV[1] -> now (unix ms). Output: 1.
var startScript = script(runIDLua + `
redis.call('HSET', KEYS[1], 'enumeration_started_at', ARGV[1], 'updated_at', ARGV[1])
if redis.call('HEXISTS', KEYS[1], 'completed_at') == 1 then
  redis.call('HDEL', KEYS[1], 'completed_at')
  redis.call('HSET', KEYS[1], 'enumerated', 0)
  for i = 1, #KEYS - 1 do redis.call('PERSIST', KEYS[i]) end
  redis.call('ZADD', KEYS[#KEYS], redis.call('HGET', KEYS[1], 'created_at') or ARGV[1], run_id())
end
return 1
`)

// SetError keeps why the last submit stopped, for status.
func (s *Store) SetError(ctx context.Context, runID, msg string) error {
	return s.rdb.HSet(ctx, runKeys(runID).run, "last_error", msg).Err()
}

// Pair is one user-address pair of the report, with what the report needs
// to say whom to contact.
type Pair struct {
	Address     string
	UserID      string
	UPN         string
	DisplayName string
	Mail        string
}

// pairSep separates address and user ID in the owners hash field, and UPN,
// display name and mail in its value. Addresses, IDs and UPNs cannot contain
// it; display names and mail are stripped of it.
const pairSep = "\x1f"

// ownerValue is the owners hash value of p: the UPN alone when nothing else
// is known, so that the hash stays as small as before for address lists.
func ownerValue(p Pair) string {
	if p.DisplayName == "" && p.Mail == "" {
		return p.UPN
	}
	clean := func(s string) string { return strings.ReplaceAll(s, pairSep, " ") }
	return p.UPN + pairSep + clean(p.DisplayName) + pairSep + clean(p.Mail)
}

// parsePair is the inverse of the owners hash field and ownerValue.
func parsePair(field, value string) Pair {
	addr, uid, _ := strings.Cut(field, pairSep)
	p := Pair{Address: addr, UserID: uid}
	var rest string
	p.UPN, rest, _ = strings.Cut(value, pairSep)
	p.DisplayName, p.Mail, _ = strings.Cut(rest, pairSep)
	return p
}

// NextBatch reserves n batch numbers and returns the first.
func (s *Store) NextBatch(ctx context.Context, runID string, n int) (int, error) {
	last, err := s.rdb.HIncrBy(ctx, runKeys(runID).run, "batches", int64(n)).Result()
	if err != nil {
		return 0, fmt.Errorf("reserve batch numbers: %w", err)
	}
	return int(last) - n, nil
}

// Register atomically adds new addresses (as pending), pairs, and the batch
// that carries the addresses (as unsent), and marks earlier batches sent.
// batch < 0 registers only pairs. The caller guarantees addrs are new to the
// run (it holds the submit lock and the run's known addresses).
func (s *Store) Register(ctx context.Context, runID string, batch int, payload []byte, addrs []string, pairs []Pair, sent []int) error {
	k := runKeys(runID)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if len(addrs) > 0 {
			fields := make([]any, 0, 2*len(addrs))
			for _, a := range addrs {
				fields = append(fields, a, storedPending)
			}
			p.HSet(ctx, k.status, fields...)
			p.HIncrBy(ctx, k.run, "addresses_total", int64(len(addrs)))
		}
		if len(pairs) > 0 {
			fields := make([]any, 0, 2*len(pairs))
			for _, pr := range pairs {
				fields = append(fields, pr.Address+pairSep+pr.UserID, ownerValue(pr))
			}
			p.HSet(ctx, k.owners, fields...)
		}
		if batch >= 0 {
			p.HSet(ctx, k.unsent, strconv.Itoa(batch), payload)
		}
		if len(sent) > 0 {
			p.HDel(ctx, k.unsent, batchFields(sent)...)
		}
		p.HSet(ctx, k.run, "updated_at", time.Now().UnixMilli())
		return nil
	})
	if err != nil {
		return fmt.Errorf("register batch: %w", err)
	}
	return nil
}

// Unsent returns the stored batches not yet known to be enqueued, by number.
func (s *Store) Unsent(ctx context.Context, runID string) (map[int][]byte, error) {
	m, err := s.rdb.HGetAll(ctx, runKeys(runID).unsent).Result()
	if err != nil {
		return nil, fmt.Errorf("load unsent batches: %w", err)
	}
	out := make(map[int][]byte, len(m))
	for f, v := range m {
		n, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		out[n] = []byte(v)
	}
	return out, nil
}

// MarkSent forgets stored batches once the queue has them.
func (s *Store) MarkSent(ctx context.Context, runID string, batches []int) error {
	if len(batches) == 0 {
		return nil
	}
	return s.rdb.HDel(ctx, runKeys(runID).unsent, batchFields(batches)...).Err()
}

func batchFields(batches []int) []string {
	f := make([]string, len(batches))
	for i, b := range batches {
		f[i] = strconv.Itoa(b)
	}
	return f
}

// KnownAddresses calls fn for every address the run already has, so that a
// resumed submit adds only new ones.
func (s *Store) KnownAddresses(ctx context.Context, runID string, fn func(addr string)) error {
	return s.scanHash(ctx, runKeys(runID).status, func(f, _ string) { fn(f) })
}

// FinishEnumeration marks the run fully enqueued.
func (s *Store) FinishEnumeration(ctx context.Context, runID string, users int64, now time.Time) error {
	if err := finishScript.Run(ctx, s.rdb, runKeys(runID).scripted(), now.UnixMilli(), users).Err(); err != nil {
		return fmt.Errorf("finish enumeration: %w", err)
	}
	return nil
}

func (s *Store) scanHash(ctx context.Context, key string, fn func(field, value string)) error {
	var cursor uint64
	for {
		kv, next, err := s.rdb.HScan(ctx, key, cursor, "", 1000).Result()
		if err != nil {
			return fmt.Errorf("scan %s: %w", key, err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			fn(kv[i], kv[i+1])
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// sortedInts returns the keys of m in order.
func sortedInts[V any](m map[int]V) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}
