package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// redisContents is every key of the database with what it holds, in a
// canonical form: hash fields and set members sorted, and whether the key
// has a TTL (not its value, which counts down). Any write shows as a
// difference, and nothing else does.
//
// DUMP cannot serve here: Redis grows a large hash's table incrementally,
// a bucket at every lookup, so a read-only HGET or HMGET changes the order
// in which DUMP serializes the fields, and with it the bytes.
func redisContents(t testing.TB, rdb *redis.Client) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := make(map[string]string)
	iter := rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		typ, err := rdb.Type(ctx, k).Result()
		if err != nil {
			t.Fatalf("TYPE %s: %v", k, err)
		}
		var v any
		switch typ {
		case "none":
			continue // expired since the SCAN
		case "string":
			v, err = rdb.Get(ctx, k).Result()
		case "hash":
			var h map[string]string
			h, err = rdb.HGetAll(ctx, k).Result()
			fields := slices.Sorted(maps.Keys(h))
			pairs := make([]string, len(fields))
			for i, f := range fields {
				pairs[i] = fmt.Sprintf("%q=%q", f, h[f])
			}
			v = pairs
		case "set":
			var m []string
			m, err = rdb.SMembers(ctx, k).Result()
			sort.Strings(m)
			v = m
		case "zset":
			v, err = rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
		case "list":
			v, err = rdb.LRange(ctx, k, 0, -1).Result()
		case "stream":
			v, err = rdb.XRange(ctx, k, "-", "+").Result()
		default:
			t.Fatalf("key %s of type %s not read", k, typ)
		}
		if err != nil && err != redis.Nil {
			t.Fatalf("read %s: %v", k, err)
		}
		ttl := rdb.PTTL(ctx, k).Val() > 0
		out[k] = fmt.Sprintf("%s %v ttl=%v", typ, v, ttl)
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// dumpRedis returns every key and value in Redis as one lower-cased text,
// to search for what must not be there.
func dumpRedis(t testing.TB, rdb *redis.Client) string {
	t.Helper()
	c := redisContents(t, rdb)
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(c)) {
		fmt.Fprintf(&b, "%s\n%s\n", k, c[k])
	}
	return strings.ToLower(b.String())
}

// diffKeys names the keys added, changed or deleted between two
// redisContents.
func diffKeys(before, after map[string]string) string {
	var diffs []string
	for k, v := range after {
		if w, ok := before[k]; !ok {
			diffs = append(diffs, "new "+k)
		} else if v != w {
			diffs = append(diffs, "changed "+k)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			diffs = append(diffs, "deleted "+k)
		}
	}
	sort.Strings(diffs)
	return strings.Join(diffs, ", ")
}
