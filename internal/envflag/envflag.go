// Package envflag gives cobra/pflag flags a fallback from an environment
// variable and names that variable in --help. Flags given on the command line
// win over the environment. It holds no configuration itself.
package envflag

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/pflag"
)

// Set binds flags to their environment variables.
type Set struct {
	fs   *pflag.FlagSet
	errs []error
}

// New wraps fs.
func New(fs *pflag.FlagSet) *Set { return &Set{fs: fs} }

func usage(u, env string) string { return fmt.Sprintf("%s (env %s)", u, env) }

// String defines a string flag with an env fallback.
func (s *Set) String(p *string, name, env, def, u string) {
	if v, ok := os.LookupEnv(env); ok {
		def = v
	}
	s.fs.StringVar(p, name, def, usage(u, env))
}

// Int defines an int flag with an env fallback.
func (s *Set) Int(p *int, name, env string, def int, u string) {
	if v, ok := os.LookupEnv(env); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("env %s=%q: not an integer", env, v))
		} else {
			def = n
		}
	}
	s.fs.IntVar(p, name, def, usage(u, env))
}

// Float defines a float flag with an env fallback.
func (s *Set) Float(p *float64, name, env string, def float64, u string) {
	if v, ok := os.LookupEnv(env); ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("env %s=%q: not a number", env, v))
		} else {
			def = f
		}
	}
	s.fs.Float64Var(p, name, def, usage(u, env))
}

// Duration defines a duration flag with an env fallback.
func (s *Set) Duration(p *time.Duration, name, env string, def time.Duration, u string) {
	if v, ok := os.LookupEnv(env); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("env %s=%q: not a duration (e.g. 30s, 5m)", env, v))
		} else {
			def = d
		}
	}
	s.fs.DurationVar(p, name, def, usage(u, env))
}

// Err reports malformed environment values; call it from Validate.
func (s *Set) Err() error {
	if len(s.errs) == 0 {
		return nil
	}
	return s.errs[0]
}
