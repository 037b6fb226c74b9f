package envflag

import (
	"go.uber.org/zap"

	"github.com/msaudit/msaudit/internal/logging"
	"github.com/msaudit/msaudit/internal/redisconn"
)

// Common are the flags both binaries share (SPEC.md §4).
type Common struct {
	RedisURL  string
	LogLevel  string
	LogFormat string
}

// Register defines the common flags on s.
func (c *Common) Register(s *Set) {
	s.String(&c.RedisURL, "redis-url", "REDIS_URL", redisconn.DefaultURL,
		"Redis to use: redis://[user:password@]host:port/db, or rediss:// for TLS")
	s.String(&c.LogLevel, "log-level", "LOG_LEVEL", "info", "log level: debug, info, warn, error")
	s.String(&c.LogFormat, "log-format", "LOG_FORMAT", "console", "log format: json or console")
}

// Logger builds the process logger from the flags (to stderr).
func (c *Common) Logger() (*zap.Logger, error) {
	return logging.New(c.LogLevel, c.LogFormat, nil)
}
