package worker

import (
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// redisFaultTexts are what the error of a command that failed for Redis'
// sake says: the connection failed or timed out, or the server refused a
// write, is loading, or lost its primary; and what asynq says, without the
// error, of a task's move it could not write and will try again.
var redisFaultTexts = []string{
	"OOM command not allowed", "READONLY", "LOADING", "MASTERDOWN",
	"i/o timeout", "connection refused", "connection reset", "broken pipe", "EOF",
	"use of closed network connection", "connection pool timeout", "context deadline exceeded",
	"Will retry syncing", "Could not move task", "Could not push task",
}

// quotesRedisFault reports whether an entry's message or one of its errors
// reads as a Redis fault. asynq's lines put their error in the message.
func quotesRedisFault(msg string, fields []zapcore.Field) bool {
	if hasRedisFault(msg) {
		return true
	}
	for _, f := range fields {
		if err, ok := f.Interface.(error); ok && f.Type == zapcore.ErrorType && hasRedisFault(err.Error()) {
			return true
		}
	}
	return false
}

func hasRedisFault(s string) bool {
	for _, t := range redisFaultTexts {
		if strings.Contains(s, t) {
			return true
		}
	}
	return false
}

// faultGate is a zap core that keeps a Redis fault to the health checker's
// one line per change of state: while the checker reports a fault, a
// warning or error that quotes a Redis fault (every heartbeat, dequeue,
// limiter or delivery attempt that failed) is written at debug level.
// Outside a fault such a line is written as it is and asks the checker to
// look at once, so that the lines of a fault that begins are cut short.
type faultGate struct {
	zapcore.Core
	health *healthChecker
}

// gateLogger returns log behind a faultGate on h.
func gateLogger(log *zap.Logger, h *healthChecker) *zap.Logger {
	return log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return &faultGate{Core: c, health: h} }))
}

func (g *faultGate) With(fields []zapcore.Field) zapcore.Core {
	return &faultGate{Core: g.Core.With(fields), health: g.health}
}

func (g *faultGate) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if g.Enabled(ent.Level) {
		return ce.AddCore(ent, g)
	}
	return ce
}

func (g *faultGate) Write(ent zapcore.Entry, fields []zapcore.Field) error {
	if ent.Level < zapcore.WarnLevel || !quotesRedisFault(ent.Message, fields) {
		return g.Core.Write(ent, fields)
	}
	if !g.health.faulty() {
		g.health.checkSoon()
		return g.Core.Write(ent, fields)
	}
	if !g.Core.Enabled(zapcore.DebugLevel) {
		return nil
	}
	ent.Level = zapcore.DebugLevel
	return g.Core.Write(ent, fields)
}
