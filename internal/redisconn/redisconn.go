// Package redisconn opens the Redis connection both binaries use: a
// redis:// or rediss:// URL (an ACL user and password may be in it), the
// password from a file instead, TLS to a private CA and client certificates
// for mutual TLS. It checks the connection with a ping, and its errors name
// the problem but never the password. It holds no application keys.
package redisconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultURL is the Redis used when none is configured.
const DefaultURL = "redis://127.0.0.1:6379/0"

// Options say how to reach Redis.
type Options struct {
	// URL is redis://[user[:password]@]host:port/db, or rediss:// for TLS.
	URL string
	// PasswordFile, if set, holds the password (one line), so that it need
	// not appear in a URL, an environment variable or a manifest.
	PasswordFile string
	// CAFile is a PEM bundle trusted for the server's certificate instead of
	// the system pool (rediss:// only).
	CAFile string
	// CertFile and KeyFile are the client certificate and key for mutual TLS
	// (rediss:// only; both or neither).
	CertFile, KeyFile string
}

// quiet drops go-redis' own log lines: every error it logs also comes back
// to the caller, which reports it once, in the process's own words and log.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// ClientOptions turns o into go-redis options, reading the files it names.
func (o Options) ClientOptions() (*redis.Options, error) {
	opts, err := redis.ParseURL(o.URL)
	if err != nil {
		return nil, fmt.Errorf("redis url %s: %v", Redact(o.URL), scrub(err, o.URL))
	}
	if o.PasswordFile != "" {
		if opts.Password != "" {
			return nil, errors.New("redis password given twice: in the URL and in the password file")
		}
		b, err := os.ReadFile(o.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("redis password file: %w", err)
		}
		// Only the line break an editor adds is dropped.
		if opts.Password = strings.TrimRight(string(b), "\r\n"); opts.Password == "" {
			return nil, fmt.Errorf("redis password file %s is empty", o.PasswordFile)
		}
	}
	if o.CAFile == "" && o.CertFile == "" && o.KeyFile == "" {
		return opts, nil
	}
	if opts.TLSConfig == nil {
		return nil, fmt.Errorf("redis CA and client certificate files need a rediss:// URL, not %s", Redact(o.URL))
	}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("redis CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redis CA file %s: no PEM certificate in it", o.CAFile)
		}
		opts.TLSConfig.RootCAs = pool
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, errors.New("redis client certificate and key files go together: give both or neither")
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("redis client certificate: %w", err)
		}
		opts.TLSConfig.Certificates = []tls.Certificate{cert}
	}
	return opts, nil
}

// Open connects as o says and pings. poolSize 0 keeps go-redis' default.
func Open(ctx context.Context, o Options, poolSize int) (*redis.Client, error) {
	redis.SetLogger(quiet{})
	opts, err := o.ClientOptions()
	if err != nil {
		return nil, err
	}
	if poolSize > 0 {
		opts.PoolSize = poolSize
	}
	c := redis.NewClient(opts)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Ping(pctx).Err(); err != nil {
		c.Close()
		msg := scrub(err, o.URL)
		if opts.Password != "" {
			msg = strings.ReplaceAll(msg, opts.Password, "xxxxx")
		}
		return nil, fmt.Errorf("connect to redis at %s: %s", Redact(o.URL), msg)
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
