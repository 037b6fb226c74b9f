package runstore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
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
// Input:
// KEYS[1] -> msaudit:run:<id>:lock
// ARGV[1] -> the holder
//
// Output:
// 1 if released, else 0
var unlockScript = script(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// refreshScript extends the submit lock if this holder still has it.
//
// Input:
// KEYS[1] -> msaudit:run:<id>:lock
// ARGV[1] -> the holder
// ARGV[2] -> the new TTL (ms)
//
// Output:
// 1 if extended, else 0
var refreshScript = script(`
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
// Its KEYS are keys.scripted; the buckets are named from KEYS[1] (bucketsLua).
//
// Input:
// KEYS[1] -> msaudit:run:<id>
// KEYS[2] -> msaudit:run:<id>:errors
// KEYS[3] -> msaudit:run:<id>:dead
// KEYS[4] -> msaudit:run:<id>:unsent
// KEYS[5] -> msaudit:runs:open
// ARGV[1] -> now (unix ms)
//
// Output:
// 1
var startScript = script(runIDLua + bucketsLua + `
redis.call('HSET', KEYS[1], {fieldEnumerationStartedAt}, ARGV[1], {fieldUpdatedAt}, ARGV[1])
if redis.call('HEXISTS', KEYS[1], {fieldCompletedAt}) == 1 then
  redis.call('HDEL', KEYS[1], {fieldCompletedAt})
  redis.call('HSET', KEYS[1], {fieldEnumerated}, 0)
  each_key(function(k) redis.call('PERSIST', k) end)
  redis.call('ZADD', KEYS[5], redis.call('HGET', KEYS[1], {fieldCreatedAt}) or ARGV[1], run_id())
end
return 1
`)

// SetError keeps why the last submit stopped, for status.
func (s *Store) SetError(ctx context.Context, runID, msg string) error {
	return s.rdb.HSet(ctx, runKeys(runID).run, fieldLastError, msg).Err()
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

// NextBatch reserves n batch numbers and returns the first.
func (s *Store) NextBatch(ctx context.Context, runID string, n int) (int, error) {
	last, err := s.rdb.HIncrBy(ctx, runKeys(runID).run, fieldBatches, int64(n)).Result()
	if err != nil {
		return 0, fmt.Errorf("reserve batch numbers: %w", err)
	}
	return int(last) - n, nil
}

// refLenLua defines ref_len(b), the length of the user reference that
// starts with byte b (see refLen).
var refLenLua = `
local function ref_len(b)
  if b == ` + strconv.Itoa(refGUID) + ` then return 17 end
  return b + 1
end
`

// Register atomically adds new addresses (as pending), pairs, and the batch
// that carries the addresses (as unsent), and marks earlier batches sent.
// batch < 0 registers only pairs. The caller guarantees addrs are new to the
// run (it holds the submit lock and the run's known addresses). A pair
// registered again changes nothing but the user's UPN, display name and
// mail, which are kept once per user ID: the last registered win.
func (s *Store) Register(ctx context.Context, runID string, batch int, payload []byte, addrs []string, pairs []Pair, sent []int) error {
	k, err := s.keysOf(ctx, runID)
	if err != nil {
		return fmt.Errorf("register batch: %w", err)
	}
	if k.buckets == 0 {
		return fmt.Errorf("register batch: %w: %s", ErrRunNotFound, runID)
	}
	kl := newKeyList([]string{k.run, k.unsent})
	argv := make([]any, 0, 6+2*len(addrs)+5*len(pairs)+len(sent))
	b := ""
	if batch >= 0 {
		b = strconv.Itoa(batch)
	}
	argv = append(argv, time.Now().UnixMilli(), b, payload, len(addrs), len(pairs), len(sent))
	for _, a := range addrs {
		argv = append(argv, kl.add(k.bucket(famState, k.bucketOf(a))), a)
	}
	for _, p := range pairs {
		ref, err := encodeRef(p.UserID)
		if err != nil {
			return fmt.Errorf("register batch: %w", err)
		}
		users := 0
		if p.UserID != "" {
			users = kl.add(k.bucket(famUsers, k.bucketOf(ref)))
		}
		argv = append(argv, kl.add(k.bucket(famOwners, k.bucketOf(p.Address))), p.Address, ref, users, userValue(p))
	}
	for _, n := range sent {
		argv = append(argv, n)
	}
	ok, err := registerScript.Run(ctx, s.rdb, kl.keys, argv...).Int()
	if err != nil {
		return fmt.Errorf("register batch: %w", err)
	}
	if ok == 0 {
		return fmt.Errorf("register batch: %w: %s", ErrRunNotFound, runID)
	}
	return nil
}

// registerScript is Register's one step. An address's owners value is its
// user references (encodeRef) concatenated, each once; a users bucket is a
// list of users, each its reference followed by its value, found by a walk
// of the bucket (some tens of users).
//
// Input:
// KEYS[1] -> msaudit:run:<id>
// KEYS[2] -> msaudit:run:<id>:unsent
// KEYS[3..] -> the buckets written: msaudit:run:<id>:s:<i>, :o:<i> and :u:<i>
// ARGV[1] -> now (unix ms)
// ARGV[2] -> the batch number ("": none)
// ARGV[3] -> the batch's payload
// ARGV[4] -> na, the number of addresses
// ARGV[5] -> np, the number of pairs
// ARGV[6] -> ns, the number of batches sent
// then na pairs, from i = 7:
// ARGV[i] -> the index in KEYS of the address's state bucket
// ARGV[i+1] -> address
// then np groups of five, from j = 7 + 2*na:
// ARGV[j] -> the index in KEYS of the address's owners bucket
// ARGV[j+1] -> address
// ARGV[j+2] -> the user's reference (encodeRef)
// ARGV[j+3] -> the index in KEYS of the user's users bucket (0: no user)
// ARGV[j+4] -> the user's value (userValue)
// then ns, from k = 7 + 2*na + 5*np:
// ARGV[k] -> a batch number sent
//
// Output:
// 1
// 0 if the run does not exist (nothing written)
var registerScript = script(refLenLua + `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local function has_ref(refs, ref)
  local p = 1
  while p <= #refs do
    local len = ref_len(string.byte(refs, p))
    if string.sub(refs, p, p + len - 1) == ref then return true end
    p = p + len
  end
  return false
end
-- set_user replaces the user's element of the users bucket, or adds it.
local function set_user(key, ref, e)
  local users = redis.call('LRANGE', key, 0, -1)
  for j = 1, #users do
    local u = users[j]
    if string.sub(u, 1, ref_len(string.byte(u, 1))) == ref then
      if u ~= e then redis.call('LSET', key, j - 1, e) end
      return
    end
  end
  redis.call('RPUSH', key, e)
end
local na, np, ns = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local i = 7
for _ = 1, na do
  redis.call('HSET', KEYS[tonumber(ARGV[i])], ARGV[i+1], {storedPending})
  i = i + 2
end
if na > 0 then redis.call('HINCRBY', KEYS[1], {fieldAddressesTotal}, na) end
for _ = 1, np do
  local key, a, ref, users = KEYS[tonumber(ARGV[i])], ARGV[i+1], ARGV[i+2], tonumber(ARGV[i+3])
  local refs = redis.call('HGET', key, a) or ''
  if not has_ref(refs, ref) then redis.call('HSET', key, a, refs .. ref) end
  if users > 0 then set_user(KEYS[users], ref, ref .. ARGV[i+4]) end
  i = i + 5
end
if ARGV[2] ~= '' then redis.call('HSET', KEYS[2], ARGV[2], ARGV[3]) end
for _ = 1, ns do
  redis.call('HDEL', KEYS[2], ARGV[i])
  i = i + 1
end
redis.call('HSET', KEYS[1], {fieldUpdatedAt}, ARGV[1])
return 1
`)

// Reused is an answer a run takes from its baseline (Run.Since) instead of
// asking: the address was absent there, with that answer's detail.
type Reused struct {
	Address string
	Detail  Detail // the request ID and check time of the first answer
}

// RegisterReused adds addresses to the run as absent already, each with the
// detail of the answer it reuses and no attempt of its own (what tells a
// reused answer from one asked: an answer asked has at least one). An
// address the run holds already is left as it is. Their pairs are
// registered like any others' (Register).
func (s *Store) RegisterReused(ctx context.Context, runID string, reused []Reused) error {
	if len(reused) == 0 {
		return nil
	}
	k, err := s.keysOf(ctx, runID)
	if err != nil {
		return fmt.Errorf("register reused answers: %w", err)
	}
	if k.buckets == 0 {
		return fmt.Errorf("register reused answers: %w: %s", ErrRunNotFound, runID)
	}
	kl := newKeyList([]string{k.run})
	argv := make([]any, 0, 1+3*len(reused))
	argv = append(argv, time.Now().UnixMilli())
	for _, r := range reused {
		argv = append(argv, kl.add(k.bucket(famState, k.bucketOf(r.Address))), r.Address, encodeState(storedAbsent, 0, r.Detail))
	}
	ok, err := reusedScript.Run(ctx, s.rdb, kl.keys, argv...).Int()
	if err != nil {
		return fmt.Errorf("register reused answers: %w", err)
	}
	if ok == 0 {
		return fmt.Errorf("register reused answers: %w: %s", ErrRunNotFound, runID)
	}
	return nil
}

// reusedScript is RegisterReused's one step.
//
// Input:
// KEYS[1] -> msaudit:run:<id>
// KEYS[2..] -> the state buckets written: msaudit:run:<id>:s:<i>
// ARGV[1] -> now (unix ms)
// then triples, from i = 2:
// ARGV[i] -> the index in KEYS of the address's state bucket
// ARGV[i+1] -> address
// ARGV[i+2] -> its state value: absent, no attempt, the reused detail
//
// Output:
// 1
// 0 if the run does not exist (nothing written)
var reusedScript = script(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = 0
for i = 2, #ARGV, 3 do
  if redis.call('HSETNX', KEYS[tonumber(ARGV[i])], ARGV[i+1], ARGV[i+2]) == 1 then n = n + 1 end
end
if n > 0 then
  for _, f in ipairs({ {fieldAddressesTotal}, {fieldChecked}, {fieldAbsent}, {fieldReused} }) do
    redis.call('HINCRBY', KEYS[1], f, n)
  end
end
redis.call('HSET', KEYS[1], {fieldUpdatedAt}, ARGV[1])
return 1
`)

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
	k, err := s.keysOf(ctx, runID)
	if err != nil {
		return err
	}
	return s.eachBucket(ctx, k, famState, func(f, _ string) { fn(f) })
}

// FinishEnumeration marks the run fully enqueued.
func (s *Store) FinishEnumeration(ctx context.Context, runID string, users int64, now time.Time) error {
	if err := finishScript.Run(ctx, s.rdb, runKeys(runID).scripted(), now.UnixMilli(), users).Err(); err != nil {
		return fmt.Errorf("finish enumeration: %w", err)
	}
	return nil
}

// eachBucket calls fn with every field and value of the run's buckets of
// family fam, a bucket at a time in bucket order, some hundred buckets a
// round trip.
func (s *Store) eachBucket(ctx context.Context, k keys, fam string, fn func(field, value string)) error {
	const group = 128
	for first := 0; first < k.buckets; first += group {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, 0, group)
		for i := first; i < min(first+group, k.buckets); i++ {
			cmds = append(cmds, pipe.HGetAll(ctx, k.bucket(fam, i)))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("read run buckets: %w", err)
		}
		for _, c := range cmds {
			for f, v := range c.Val() {
				fn(f, v)
			}
		}
	}
	return nil
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
