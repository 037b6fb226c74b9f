// Package logging builds the one zap logger of a process from --log-level and
// --log-format, and adapts it to asynq's Logger. Callers never log secrets or
// addresses (PII) at info level or above; this package cannot enforce that.
package logging

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// OptionError is a level or format New does not know.
type OptionError struct{ Option, Value, Want string }

func (e *OptionError) Error() string {
	return fmt.Sprintf("log %s %q: want %s", e.Option, e.Value, e.Want)
}

// New returns a logger writing to w (stderr if nil). format is json or
// console; level is debug, info, warn or error.
func New(level, format string, w io.Writer) (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(strings.ToLower(level))); err != nil {
		return nil, &OptionError{Option: "level", Value: level, Want: "debug, info, warn or error"}
	}
	ec := zap.NewProductionEncoderConfig()
	ec.TimeKey = "ts"
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	switch strings.ToLower(format) {
	case "json":
		enc = zapcore.NewJSONEncoder(ec)
	case "console":
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	default:
		return nil, &OptionError{Option: "format", Value: format, Want: "json or console"}
	}
	if w == nil {
		w = os.Stderr
	}
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), lvl)), nil
}

// Asynq adapts a zap logger to asynq.Logger.
type Asynq struct{ s *zap.SugaredLogger }

var _ asynq.Logger = Asynq{}

// NewAsynq returns the adapter, tagged component=asynq.
func NewAsynq(l *zap.Logger) Asynq {
	return Asynq{s: l.With(zap.String("component", "asynq")).WithOptions(zap.AddCallerSkip(1)).Sugar()}
}

func (a Asynq) Debug(args ...any) { a.s.Debug(args...) }
func (a Asynq) Info(args ...any)  { a.s.Info(args...) }
func (a Asynq) Warn(args ...any)  { a.s.Warn(args...) }
func (a Asynq) Error(args ...any) { a.s.Error(args...) }
func (a Asynq) Fatal(args ...any) { a.s.Error(args...) } // asynq calls Fatal on unrecoverable errors; main decides the exit

// AsynqLevel maps the zap logger's level to asynq's, so asynq does not build
// debug lines the logger would drop.
func AsynqLevel(l *zap.Logger) asynq.LogLevel {
	switch {
	case l.Core().Enabled(zapcore.DebugLevel):
		return asynq.DebugLevel
	case l.Core().Enabled(zapcore.InfoLevel):
		return asynq.InfoLevel
	case l.Core().Enabled(zapcore.WarnLevel):
		return asynq.WarnLevel
	default:
		return asynq.ErrorLevel
	}
}
