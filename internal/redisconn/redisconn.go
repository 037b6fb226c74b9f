// Package redisconn opens the Redis connection named by --redis-url
// (redis://, rediss://, with user:password) and checks it, with errors that
// name the problem but never the password. It holds no application keys.
package redisconn

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultURL is used when neither --redis-url nor REDIS_URL is set.
const DefaultURL = "redis://127.0.0.1:6379/0"

// quiet drops go-redis' own log lines: every error it logs also comes back
// to the caller, which reports it once, in the process's own words and log.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// Open parses rawURL, connects and pings. poolSize 0 keeps go-redis' default.
func Open(ctx context.Context, rawURL string, poolSize int) (*redis.Client, error) {
	redis.SetLogger(quiet{})
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis url %s: %v", Redact(rawURL), scrub(err, rawURL))
	}
	if poolSize > 0 {
		opts.PoolSize = poolSize
	}
	c := redis.NewClient(opts)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Ping(pctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("connect to redis at %s: %v", Redact(rawURL), scrub(err, rawURL))
	}
	return c, nil
}

// Redact returns rawURL with any password replaced, fit for logs and errors.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparseable URL)"
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// scrub removes the password from an error text, in case a library echoed it.
func scrub(err error, rawURL string) string {
	msg := err.Error()
	u, perr := url.Parse(rawURL)
	if perr != nil {
		return "invalid URL"
	}
	if pw, has := u.User.Password(); has && pw != "" {
		msg = strings.ReplaceAll(msg, pw, "xxxxx")
	}
	return msg
}
