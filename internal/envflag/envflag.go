// Package envflag lets a command-line flag fall back to an environment
// variable. The variable is applied only when the flag was not given, after
// parsing, so --help shows the flag's real default and the variable's name,
// never a value read from the environment (which may hold a password). The
// binding is stored on the flag itself, so it survives cobra merging a
// parent's persistent flags into a subcommand's flag set.
//
// It knows nothing of what the flags mean: the binaries define them (package
// cliflags for the shared ones) and call Apply before validating.
package envflag

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"
)

// Prefix starts the name of every environment variable of the product's own
// settings. Connection settings keep their conventional names (REDIS_URL,
// AZURE_TENANT_ID, …).
const Prefix = "MSAUDIT_"

// annotation keys on a bound flag.
const (
	envKey     = "envflag/env"
	appliedKey = "envflag/applied"
)

// Name is the product's variable for a flag: Prefix plus the flag name in
// upper case with dashes as underscores (--tenant-rate: MSAUDIT_TENANT_RATE).
func Name(flag string) string {
	return Prefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// Bind ties the flags named (already defined on fs) to Name(flag) each.
func Bind(fs *pflag.FlagSet, flags ...string) {
	for _, f := range flags {
		BindTo(fs, f, Name(f))
	}
}

// BindTo ties one flag to the variable env and names env in its usage text.
// It panics if the flag is not defined: that is a programming error.
func BindTo(fs *pflag.FlagSet, flag, env string) {
	f := fs.Lookup(flag)
	if f == nil {
		panic("envflag: no flag --" + flag)
	}
	_ = fs.SetAnnotation(flag, envKey, []string{env})
	f.Usage += " (env " + env + ")"
}

// Env returns the variable bound to flag f, or "".
func Env(f *pflag.Flag) string {
	if v := f.Annotations[envKey]; len(v) == 1 {
		return v[0]
	}
	return ""
}

// Apply sets every bound flag of fs that was not given on the command line
// from its variable, read with lookup (os.LookupEnv in the binaries). An
// empty variable counts as unset. A malformed value is an error naming the
// variable and the type wanted, but not the value.
func Apply(fs *pflag.FlagSet, lookup func(string) (string, bool)) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		env := Env(f)
		if err != nil || env == "" || f.Changed {
			return
		}
		v, ok := lookup(env)
		if !ok || v == "" {
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			err = fmt.Errorf("environment variable %s (for --%s): not a valid %s", env, f.Name, typeName(f))
			return
		}
		_ = fs.SetAnnotation(f.Name, appliedKey, []string{"1"})
	})
	return err
}

// FromEnv reports whether flag's value came from its variable in Apply
// rather than from the command line.
func FromEnv(fs *pflag.FlagSet, flag string) bool {
	f := fs.Lookup(flag)
	return f != nil && len(f.Annotations[appliedKey]) > 0
}

func typeName(f *pflag.Flag) string {
	switch t := f.Value.Type(); t {
	case "int", "int64", "uint":
		return "integer"
	case "float64":
		return "number"
	case "duration":
		return "duration (e.g. 30s, 5m)"
	case "bool":
		return "boolean (true or false)"
	default:
		return t
	}
}
