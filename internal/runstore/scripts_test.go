package runstore

import (
	"go/ast"
	"go/constant"
	"go/parser"
	"go/token"
	"go/types"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// placeholder is how a script's source names a Go constant (luaConsts). A
// Lua table of one bare name, {x}, is spelled the same: write it { x }.
var placeholder = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// source is the package's Go source, tests left out.
type source struct {
	fset  *token.FileSet
	files []*ast.File
}

func parseSource(t *testing.T) source {
	t.Helper()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	src := source{fset: token.NewFileSet()}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(src.fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		src.files = append(src.files, f)
	}
	if len(src.files) == 0 {
		t.Fatal("no Go source found")
	}
	return src
}

// luaLiterals returns the string literals that make up the scripts: those
// of the arguments of every call of script, and of the package-level
// variables they name (completeLua, stateLua...), followed to the end.
func (s source) luaLiterals(t *testing.T) []*ast.BasicLit {
	t.Helper()
	vars := make(map[string]ast.Expr)
	for _, f := range s.files {
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, spec := range g.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if i < len(vs.Values) {
						vars[n.Name] = vs.Values[i]
					}
				}
			}
		}
	}
	var lits []*ast.BasicLit
	seen := make(map[string]bool)
	var walk func(ast.Node)
	walk = func(n ast.Node) {
		ast.Inspect(n, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BasicLit:
				if n.Kind == token.STRING {
					lits = append(lits, n)
				}
			case *ast.Ident:
				if v, ok := vars[n.Name]; ok && !seen[n.Name] {
					seen[n.Name] = true
					walk(v)
				}
			}
			return true
		})
	}
	for _, call := range s.calls("script") {
		for _, arg := range call.Args {
			walk(arg)
		}
	}
	return lits
}

// calls returns every call of the package's function name.
func (s source) calls(name string) []*ast.CallExpr {
	var out []*ast.CallExpr
	for _, f := range s.files {
		ast.Inspect(f, func(n ast.Node) bool {
			if c, ok := n.(*ast.CallExpr); ok {
				if id, ok := c.Fun.(*ast.Ident); ok && id.Name == name {
					out = append(out, c)
				}
			}
			return true
		})
	}
	return out
}

// constants type-checks the package and returns its package-level
// constants. The constants the scripts name depend on no other package,
// so the imports are left empty and the errors that leaves (every use of
// an imported name) are ignored: a constant whose value could not be
// worked out has an unknown value, which fails the comparison.
func (s source) constants(t *testing.T) map[string]*types.Const {
	t.Helper()
	conf := types.Config{
		Importer: importerFunc(func(p string) (*types.Package, error) {
			pkg := types.NewPackage(p, path.Base(p))
			pkg.MarkComplete()
			return pkg, nil
		}),
		Error: func(error) {},
	}
	pkg, _ := conf.Check("runstore", s.fset, s.files, nil)
	out := make(map[string]*types.Const)
	for _, name := range pkg.Scope().Names() {
		if c, ok := pkg.Scope().Lookup(name).(*types.Const); ok {
			out[name] = c
		}
	}
	return out
}

type importerFunc func(path string) (*types.Package, error)

func (f importerFunc) Import(path string) (*types.Package, error) { return f(path) }

// TestLuaConsts: every {name} in the scripts' source is an entry of
// luaConsts, every entry is the name of a package-level constant and its
// value, and the scripts use every entry; every script is built by script,
// which replaces them.
func TestLuaConsts(t *testing.T) {
	t.Parallel()
	src := parseSource(t)

	used := make(map[string]bool)
	table := make(map[string]string, len(luaConsts))
	for _, c := range luaConsts {
		if _, dup := table[c.name]; dup {
			t.Errorf("luaConsts: %s twice", c.name)
		}
		table[c.name] = c.value
	}
	for _, lit := range src.luaLiterals(t) {
		s, err := strconv.Unquote(lit.Value)
		if err != nil {
			t.Fatalf("%s: %v", src.fset.Position(lit.Pos()), err)
		}
		for _, m := range placeholder.FindAllStringSubmatch(s, -1) {
			if _, ok := table[m[1]]; !ok {
				t.Errorf("%s: a script names {%s}, which is not in luaConsts", src.fset.Position(lit.Pos()), m[1])
			}
			used[m[1]] = true
		}
	}

	consts := src.constants(t)
	for _, c := range luaConsts {
		k, ok := consts[c.name]
		switch {
		case !ok:
			t.Errorf("luaConsts: %s is not a package-level constant", c.name)
		case k.Val().Kind() != constant.String:
			t.Errorf("luaConsts: constant %s is not a string (%s)", c.name, k.Val())
		case constant.StringVal(k.Val()) != c.value:
			t.Errorf("luaConsts: %s is %q, but the constant %s is %s", c.name, c.value, c.name, k.Val())
		}
		if strings.ContainsAny(c.value, `'\`) {
			t.Errorf("luaConsts: %s = %q cannot be quoted as it is (luaQuote)", c.name, c.value)
		}
		if !used[c.name] {
			t.Errorf("luaConsts: no script names {%s}", c.name)
		}
	}

	// A script built otherwise would keep its placeholders.
	for _, f := range src.files {
		for _, d := range f.Decls {
			ast.Inspect(d, func(n ast.Node) bool {
				c, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := c.Fun.(*ast.SelectorExpr)
				if ok && sel.Sel.Name == "NewScript" {
					if fd, ok := d.(*ast.FuncDecl); !ok || fd.Name.Name != "script" {
						t.Errorf("%s: a script built by NewScript rather than script", src.fset.Position(c.Pos()))
					}
				}
				return true
			})
		}
	}
	// scriptSources holds every script: script is called only to
	// initialise the package's variables.
	if n := len(src.calls("script")); n != len(scriptSources) {
		t.Errorf("script is called %d times in the source, but %d scripts were built", n, len(scriptSources))
	}
}

// TestScriptsHaveNoPlaceholderLeft: the scripts as Redis runs them name
// no Go constant any more.
func TestScriptsHaveNoPlaceholderLeft(t *testing.T) {
	t.Parallel()
	if len(scriptSources) == 0 {
		t.Fatal("no script was built")
	}
	for i, src := range scriptSources {
		for _, line := range strings.Split(src, "\n") {
			if m := placeholder.FindAllString(line, -1); m != nil {
				t.Errorf("script %d of %d keeps %s: %q", i+1, len(scriptSources), strings.Join(m, ", "), strings.TrimSpace(line))
			}
		}
	}
}
