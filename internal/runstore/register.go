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
// mail, which are kept once per user ID: the last registered win. It is
// RegisterBatch with UserSet for every pair.
func (s *Store) Register(ctx context.Context, runID string, batch int, payload []byte, addrs []string, pairs []Pair, sent []int) error {
	return s.RegisterBatch(ctx, runID, Registration{Batch: batch, Payload: payload, Addrs: addrs, Pairs: pairs, Sent: sent})
}

// UserWrite says what registering a pair does with the pair's user.
type UserWrite uint8

// What registering a pair does with its user. A submit that created the
// run knows which users it has registered, and can spare Redis the walk
// of a users bucket that UserSet takes.
const (
	// UserSet stores the pair's UPN, display name and mail as its user's,
	// in place of what the run holds: the user's bucket is walked.
	UserSet UserWrite = iota
	// UserAdd stores them for a user the caller knows the run does not
	// hold, without a look at its bucket.
	UserAdd
	// UserKept leaves the user as the run holds it: the caller has
	// registered it already, in this call or an earlier one.
	UserKept
)

// Registration is what RegisterBatch writes in one step.
type Registration struct {
	Batch   int      // the batch's number; < 0: none (Payload and Addrs are then empty)
	Payload []byte   // the batch's payload, kept as unsent until it is marked sent
	Addrs   []string // addresses new to the run, added as pending
	Pairs   []Pair   // user-address pairs, each kept once
	// Users says, pair by pair, what to do with the pair's user; nil is
	// UserSet for every pair. Of the pairs of one user, the last not
	// UserKept gives the value; UserAdd in any means the run has no
	// value for the user before the call.
	Users []UserWrite
	Sent  []int // batches enqueued since the last call: no longer unsent
}

// RegisterBatch is Register with what to do with each pair's user said by
// the caller (Registration.Users). The pairs of an address of Addrs, new
// to the run, are written without a look at what the run holds.
func (s *Store) RegisterBatch(ctx context.Context, runID string, r Registration) error {
	k, err := s.keysOf(ctx, runID)
	if err != nil {
		return fmt.Errorf("register batch: %w", err)
	}
	if k.buckets == 0 {
		return fmt.Errorf("register batch: %w: %s", ErrRunNotFound, runID)
	}
	if r.Users != nil && len(r.Users) != len(r.Pairs) {
		return fmt.Errorf("register batch: %d user writes for %d pairs", len(r.Users), len(r.Pairs))
	}
	a, err := arrange(k, r)
	if err != nil {
		return fmt.Errorf("register batch: %w", err)
	}
	ok, err := registerScript.Run(ctx, s.rdb, a.keys, a.argv...).Int()
	if err != nil {
		return fmt.Errorf("register batch: %w", err)
	}
	if ok == 0 {
		return fmt.Errorf("register batch: %w: %s", ErrRunNotFound, runID)
	}
	return nil
}

// registerArgs are the KEYS and ARGV of registerScript.
type registerArgs struct {
	keys []string
	argv []any
}

// userEntry is what a registration writes of one user.
type userEntry struct {
	bucket int    // its users bucket
	ref    string // encodeRef
	value  string // userValue of the pair that gives it
	write  UserWrite
}

// arrange turns a registration into registerScript's arguments: the new
// addresses with all the references of their pairs, the other pairs one by
// one, and each user once.
func arrange(k keys, r Registration) (registerArgs, error) {
	fresh := make(map[string]int, len(r.Addrs)) // address -> index in owners
	owners := make([]string, len(r.Addrs))
	for i, a := range r.Addrs {
		fresh[a] = i
	}
	type merge struct{ addr, ref string }
	var merges []merge
	var users []userEntry
	byRef := make(map[string]int) // ref -> index in users
	for i, p := range r.Pairs {
		ref, err := encodeRef(p.UserID)
		if err != nil {
			return registerArgs{}, err
		}
		if j, ok := fresh[p.Address]; ok {
			if !hasRef(owners[j], ref) {
				owners[j] += ref
			}
		} else {
			merges = append(merges, merge{p.Address, ref})
		}
		if p.UserID == "" {
			continue
		}
		w := UserSet
		if r.Users != nil {
			w = r.Users[i]
		}
		j, seen := byRef[ref]
		if !seen {
			j = len(users)
			byRef[ref] = j
			users = append(users, userEntry{bucket: k.bucketOf(ref), ref: ref, write: UserKept})
		}
		u := &users[j]
		if w != UserKept {
			u.value = userValue(p)
			if u.write != UserAdd {
				u.write = w
			}
		}
	}
	var adds, sets []userEntry
	for _, u := range users {
		switch u.write {
		case UserAdd:
			adds = append(adds, u)
		case UserSet:
			sets = append(sets, u)
		}
	}

	b := ""
	if r.Batch >= 0 {
		b = strconv.Itoa(r.Batch)
	}
	a := registerArgs{keys: make([]string, 2, 2+2*len(r.Addrs)+len(merges)+len(adds)+len(sets))}
	a.keys[0], a.keys[1] = k.run, k.unsent
	key := func(name string) int {
		a.keys = append(a.keys, name)
		return len(a.keys)
	}
	a.argv = make([]any, 0, 9+3*len(r.Addrs)+3*len(merges)+2*len(adds)+3*len(sets)+len(r.Sent))
	a.argv = append(a.argv, time.Now().UnixMilli(), b, r.Payload, len(r.Addrs), len(merges), len(adds), len(sets), len(r.Sent))
	for i, addr := range r.Addrs {
		n := k.bucketOf(addr)
		j := key(k.bucket(famState, n))
		key(k.bucket(famOwners, n))
		a.argv = append(a.argv, j, addr, owners[i])
	}
	for _, m := range merges {
		a.argv = append(a.argv, key(k.bucket(famOwners, k.bucketOf(m.addr))), m.addr, m.ref)
	}
	for _, u := range adds {
		a.argv = append(a.argv, key(k.bucket(famUsers, u.bucket)), u.ref+u.value)
	}
	for _, u := range sets {
		a.argv = append(a.argv, key(k.bucket(famUsers, u.bucket)), u.ref, u.ref+u.value)
	}
	for _, n := range r.Sent {
		a.argv = append(a.argv, n)
	}
	return a, nil
}

// hasRef reports whether the owners value refs holds the reference ref
// (has_ref in registerScript).
func hasRef(refs, ref string) bool {
	for len(refs) > 0 {
		n := min(refLen(refs[0]), len(refs))
		if refs[:n] == ref {
			return true
		}
		refs = refs[n:]
	}
	return false
}

// registerScript is RegisterBatch's one step. An address's owners value is
// its user references (encodeRef) concatenated, each once; a users bucket
// is a list of users, each its reference followed by its value, found by a
// walk of the bucket (some tens of users) unless the caller knows it is
// not there. An address new to the run takes its state and its owners
// value as given; the pairs of other addresses are merged into what the
// run holds. A key may appear more than once in KEYS.
//
// Input:
// KEYS[1] -> msaudit:run:<id>
// KEYS[2] -> msaudit:run:<id>:unsent
// KEYS[3..] -> the buckets written: msaudit:run:<id>:s:<i>, :o:<i> and :u:<i>
// ARGV[1] -> now (unix ms)
// ARGV[2] -> the batch number ("": none)
// ARGV[3] -> the batch's payload
// ARGV[4] -> na, the number of new addresses
// ARGV[5] -> nm, the number of pairs of other addresses
// ARGV[6] -> nn, the number of users the run does not hold (UserAdd)
// ARGV[7] -> nu, the number of users to replace or add (UserSet)
// ARGV[8] -> ns, the number of batches sent
// then na triples, from i = 9:
// ARGV[i] -> the index in KEYS of the address's state bucket; its owners bucket follows it
// ARGV[i+1] -> address
// ARGV[i+2] -> its owners value ("": none)
// then nm triples:
// ARGV[j] -> the index in KEYS of the address's owners bucket
// ARGV[j+1] -> address
// ARGV[j+2] -> the user's reference (encodeRef)
// then nn pairs:
// ARGV[k] -> the index in KEYS of the user's users bucket
// ARGV[k+1] -> the user's element: its reference, then userValue
// then nu triples:
// ARGV[l] -> the index in KEYS of the user's users bucket
// ARGV[l+1] -> the user's reference
// ARGV[l+2] -> the user's element
// then ns:
// ARGV[m] -> a batch number sent
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
local na, nm, nn, nu, ns = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local i = 9
for _ = 1, na do
  local k = tonumber(ARGV[i])
  redis.call('HSET', KEYS[k], ARGV[i+1], {storedPending})
  if ARGV[i+2] ~= '' then redis.call('HSET', KEYS[k+1], ARGV[i+1], ARGV[i+2]) end
  i = i + 3
end
if na > 0 then redis.call('HINCRBY', KEYS[1], {fieldAddressesTotal}, na) end
for _ = 1, nm do
  local key, a, ref = KEYS[tonumber(ARGV[i])], ARGV[i+1], ARGV[i+2]
  local refs = redis.call('HGET', key, a) or ''
  if not has_ref(refs, ref) then redis.call('HSET', key, a, refs .. ref) end
  i = i + 3
end
for _ = 1, nn do
  redis.call('RPUSH', KEYS[tonumber(ARGV[i])], ARGV[i+1])
  i = i + 2
end
for _ = 1, nu do
  set_user(KEYS[tonumber(ARGV[i])], ARGV[i+1], ARGV[i+2])
  i = i + 3
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
