// Package redisconn opens the Redis connection both binaries use: a
// redis:// or rediss:// URL (an ACL user and password may be in it), or a
// redis-sentinel:// URL naming the Sentinels of a primary with replicas
// (high availability: the connection follows a failover), the password from
// a file instead, TLS to a private CA and client certificates for mutual
// TLS. It checks the connection with a ping, and its errors name the problem
// but never the password. It holds no application keys.
package redisconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultURL is the Redis used when none is configured.
const DefaultURL = "redis://127.0.0.1:6379/0"

// DefaultSentinelPort is the port of a Sentinel address given without one.
const DefaultSentinelPort = "26379"

// Options say how to reach Redis.
type Options struct {
	// URL is redis://[user[:password]@]host:port/db, or rediss:// for TLS,
	// or redis-sentinel://[user[:password]@]host1:port1,host2:port2/PRIMARY/db
	// (rediss-sentinel:// for TLS to the Sentinels and the servers): the
	// Sentinels are asked where the primary named PRIMARY is, and asked
	// again after a failover. The user and password are the servers'; the
	// Sentinels are asked without one.
	URL string
	// PasswordFile, if set, holds the password (one line), so that it need
	// not appear in a URL, an environment variable or a manifest.
	PasswordFile string
	// CAFile is a PEM bundle trusted for the server's certificate instead of
	// the system pool (TLS URLs only).
	CAFile string
	// CertFile and KeyFile are the client certificate and key for mutual TLS
	// (TLS URLs only; both or neither).
	CertFile, KeyFile string
}

// quiet drops go-redis' own log lines: every error it logs also comes back
// to the caller, which reports it once, in the process's own words and log.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// Sentinel reports whether o.URL is a redis-sentinel:// or
// rediss-sentinel:// URL.
func (o Options) Sentinel() bool {
	s, _, _ := strings.Cut(o.URL, "://")
	return s == "redis-sentinel" || s == "rediss-sentinel"
}

// ClientOptions turns a redis:// or rediss:// o into go-redis options,
// reading the files it names.
func (o Options) ClientOptions() (*redis.Options, error) {
	if o.Sentinel() {
		return nil, fmt.Errorf("redis url %s: a Sentinel URL has no single server's options", Redact(o.URL))
	}
	if scheme, _, _ := strings.Cut(o.URL, "://"); scheme != "redis" && scheme != "rediss" && scheme != "unix" {
		return nil, fmt.Errorf("redis url %s: want redis://, rediss://, redis-sentinel:// or rediss-sentinel://", Redact(o.URL))
	}
	opts, err := redis.ParseURL(o.URL)
	if err != nil {
		return nil, fmt.Errorf("redis url %s: %v", Redact(o.URL), scrub(err, o.URL))
	}
	if err := o.secure(&opts.Password, opts.TLSConfig); err != nil {
		return nil, err
	}
	return opts, nil
}

// FailoverOptions turns a redis-sentinel:// or rediss-sentinel:// o into
// go-redis options, reading the files it names.
func (o Options) FailoverOptions() (*redis.FailoverOptions, error) {
	bad := func(why string) error { return fmt.Errorf("redis url %s: %s", Redact(o.URL), why) }
	u, err := url.Parse(o.URL)
	if err != nil {
		return nil, bad(scrub(err, o.URL))
	}
	if !o.Sentinel() {
		return nil, bad("not a redis-sentinel:// or rediss-sentinel:// URL")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, bad("a Sentinel URL takes no query or fragment")
	}
	opts := &redis.FailoverOptions{}
	if u.User != nil {
		opts.Username = u.User.Username()
		opts.Password, _ = u.User.Password()
	}
	for _, h := range strings.Split(u.Host, ",") {
		if h == "" {
			return nil, bad("an empty Sentinel address")
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(h, DefaultSentinelPort)
		}
		if host, port, err := net.SplitHostPort(h); err != nil || host == "" || port == "" {
			return nil, bad(fmt.Sprintf("Sentinel address %q: want host:port", h))
		}
		opts.SentinelAddrs = append(opts.SentinelAddrs, h)
	}
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if parts[0] == "" || len(parts) > 2 {
		return nil, bad("want /PRIMARY or /PRIMARY/DB after the Sentinel addresses (PRIMARY: the name the Sentinels monitor)")
	}
	opts.MasterName = parts[0]
	if len(parts) == 2 {
		if opts.DB, err = strconv.Atoi(parts[1]); err != nil || opts.DB < 0 {
			return nil, bad(fmt.Sprintf("database %q: want a number", parts[1]))
		}
	}
	if u.Scheme == "rediss-sentinel" {
		// No ServerName: crypto/tls takes each server's own host name
		// from the address dialled, Sentinel or primary.
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if err := o.secure(&opts.Password, opts.TLSConfig); err != nil {
		return nil, err
	}
	return opts, nil
}

// secure applies the password file and the TLS files to a connection's
// password and TLS configuration (nil: not a TLS URL).
func (o Options) secure(password *string, tc *tls.Config) error {
	if o.PasswordFile != "" {
		if *password != "" {
			return errors.New("redis password given twice: in the URL and in the password file")
		}
		b, err := os.ReadFile(o.PasswordFile)
		if err != nil {
			return fmt.Errorf("redis password file: %w", err)
		}
		// Only the line break an editor adds is dropped.
		if *password = strings.TrimRight(string(b), "\r\n"); *password == "" {
			return fmt.Errorf("redis password file %s is empty", o.PasswordFile)
		}
	}
	if o.CAFile == "" && o.CertFile == "" && o.KeyFile == "" {
		return nil
	}
	if tc == nil {
		return fmt.Errorf("redis CA and client certificate files need a rediss:// or rediss-sentinel:// URL, not %s", Redact(o.URL))
	}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return fmt.Errorf("redis CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("redis CA file %s: no PEM certificate in it", o.CAFile)
		}
		tc.RootCAs = pool
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return errors.New("redis client certificate and key files go together: give both or neither")
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return fmt.Errorf("redis client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return nil
}

// Open connects as o says and pings. poolSize 0 keeps go-redis' default.
// The client is a *redis.Client, or for a Sentinel URL a failover client
// that follows the primary. A command waits at most go-redis' timeouts (5 s
// to dial, 5 s for a read or a write: a connection whose packets stop
// fails within that and is replaced, so work resumes when the network
// does), or less when its context has an earlier deadline: the client
// honours context deadlines, so that a probe or a scrape bounded to a
// second is not held by a dead connection for five. A command Redis refuses
// because a script is running long is tried again (busyRetry).
func Open(ctx context.Context, o Options, poolSize int) (redis.UniversalClient, error) {
	redis.SetLogger(quiet{})
	var (
		c        redis.UniversalClient
		password string
		plain    bool // no TLS
	)
	if o.Sentinel() {
		opts, err := o.FailoverOptions()
		if err != nil {
			return nil, err
		}
		if poolSize > 0 {
			opts.PoolSize = poolSize
		}
		opts.ContextTimeoutEnabled = true
		if err := findPrimary(ctx, opts); err != nil {
			return nil, fmt.Errorf("connect to redis at %s: %s", Redact(o.URL), scrub(err, o.URL))
		}
		c, password, plain = redis.NewFailoverClient(opts), opts.Password, opts.TLSConfig == nil
	} else {
		opts, err := o.ClientOptions()
		if err != nil {
			return nil, err
		}
		if poolSize > 0 {
			opts.PoolSize = poolSize
		}
		opts.ContextTimeoutEnabled = true
		c, password, plain = redis.NewClient(opts), opts.Password, opts.TLSConfig == nil
	}
	c.AddHook(busyRetry{patience: busyPatience})
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Ping(pctx).Err(); err != nil {
		c.Close()
		msg := scrub(err, o.URL)
		if password != "" {
			msg = strings.ReplaceAll(msg, password, "xxxxx")
		}
		if plain && errors.Is(err, io.EOF) {
			// What a TLS port does to a plain client.
			msg += " (the server hung up: if it takes TLS only, use rediss://)"
		}
		return nil, fmt.Errorf("connect to redis at %s: %s", Redact(o.URL), msg)
	}
	return c, nil
}

// findPrimary asks the Sentinels, in turn, where the primary is, so that a
// wrong name or unreachable Sentinels are said plainly and at once: go-redis
// would report either as "all sentinels are unreachable", after the ping's
// timeout.
func findPrimary(ctx context.Context, opts *redis.FailoverOptions) error {
	var problems []string
	for _, addr := range opts.SentinelAddrs {
		sc := redis.NewSentinelClient(&redis.Options{Addr: addr, TLSConfig: opts.TLSConfig,
			DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second, MaxRetries: -1})
		_, err := sc.GetMasterAddrByName(ctx, opts.MasterName).Result()
		sc.Close()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, redis.Nil):
			problems = append(problems, fmt.Sprintf("Sentinel %s monitors no primary named %q", addr, opts.MasterName))
		case strings.Contains(err.Error(), "unknown command"):
			problems = append(problems, fmt.Sprintf("%s is not a Sentinel (a Redis server, maybe: use redis://)", addr))
		default:
			problems = append(problems, fmt.Sprintf("Sentinel %s: %v", addr, err))
		}
	}
	return errors.New(strings.Join(problems, "; "))
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
	if u.RawQuery != "" {
		// go-redis reads options from the query; a password may be one.
		q := u.Query()
		for k := range q {
			if strings.Contains(strings.ToLower(k), "pass") {
				q[k] = []string{"xxxxx"}
			}
		}
		u.RawQuery = q.Encode()
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
