package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

const (
	runtimeImage = "gcr.io/distroless/static-debian12:nonroot"
	nonrootUser  = "65532:65532"
)

type instruction struct {
	cmd  string // upper case
	args string
}

type stage struct {
	image, name string
	parent      *stage // the earlier stage this one is built FROM, if any
	ins         []instruction
}

// parseDockerfile splits a Dockerfile into its stages, joining continued
// lines and dropping comments, and expands ${ARG} in FROM lines from the
// ARGs declared before the first FROM. A stage built FROM an earlier one
// keeps that stage as its parent and takes its base image.
func parseDockerfile(t *testing.T, text string) (stages []*stage, global map[string]string) {
	t.Helper()
	global = map[string]string{}
	var lines []string
	var cur strings.Builder
	for _, l := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(l)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		if s := strings.TrimSpace(cur.String()); s != "" {
			lines = append(lines, s)
		}
		cur.Reset()
	}
	for _, l := range lines {
		cmd, args, _ := strings.Cut(l, " ")
		in := instruction{strings.ToUpper(cmd), strings.TrimSpace(args)}
		switch {
		case in.cmd == "FROM":
			f := strings.Fields(in.args)
			f = slices.DeleteFunc(f, func(s string) bool { return strings.HasPrefix(s, "--platform=") })
			st := &stage{image: os.Expand(f[0], func(k string) string { return global[k] })}
			for _, prev := range stages {
				if prev.name == st.image {
					st.parent, st.image = prev, prev.image
				}
			}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
		case len(stages) == 0 && in.cmd == "ARG":
			k, v, _ := strings.Cut(in.args, "=")
			global[k] = v
		case len(stages) > 0:
			stages[len(stages)-1].ins = append(stages[len(stages)-1].ins, in)
		}
	}
	return stages, global
}

// chain is the stage and the stages it is built from, the first base first.
func (s *stage) chain() []*stage {
	if s.parent == nil {
		return []*stage{s}
	}
	return append(s.parent.chain(), s)
}

// all lists the arguments of every cmd instruction of the stage, those of
// the stages it is built from first: what its image carries.
func (s *stage) all(cmd string) []string {
	var out []string
	for _, st := range s.chain() {
		for _, in := range st.ins {
			if in.cmd == cmd {
				out = append(out, in.args)
			}
		}
	}
	return out
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	if !strings.HasPrefix(text, "# syntax=docker/dockerfile:1") {
		t.Error("the first line must be # syntax=docker/dockerfile:1 (RUN --mount needs it)")
	}
	stages, _ := parseDockerfile(t, text)
	byName := map[string]*stage{}
	for _, s := range stages {
		byName[s.name] = s
	}
	builder := byName["builder"]
	if builder == nil || !regexp.MustCompile(`^golang:1\.26(\.\d+)?(@sha256:[0-9a-f]{64})?$`).MatchString(builder.image) {
		t.Fatalf("no builder stage FROM golang:1.26 (stages: %v)", stages)
	}

	// Every compile goes through deploy/gobuild.sh, with both caches, and
	// builds both commands in this one stage.
	var built []string
	for _, r := range builder.all("RUN") {
		if strings.Contains(r, "go build") {
			t.Errorf("RUN %q: build with deploy/gobuild.sh, not go build", r)
		}
		if strings.Contains(r, "go mod download") && !strings.Contains(r, "--mount=type=cache,target=/go/pkg/mod") {
			t.Errorf("RUN %q: go mod download without the module cache mount", r)
		}
		if !strings.Contains(r, "deploy/gobuild.sh") {
			continue
		}
		for _, m := range []string{"--mount=type=cache,target=/go/pkg/mod", "--mount=type=cache,target=/root/.cache/go-build"} {
			if !strings.Contains(r, m) {
				t.Errorf("RUN %q lacks %s", r, m)
			}
		}
		for _, v := range []string{`VERSION="$VERSION"`, `COMMIT="$COMMIT"`} {
			if !strings.Contains(r, v) {
				t.Errorf("RUN %q does not pass %s to the script", r, v)
			}
		}
		if !strings.Contains(r, "sh deploy/gobuild.sh /out ") {
			t.Errorf("RUN %q: want sh deploy/gobuild.sh /out PACKAGE…", r)
		}
		for _, p := range []string{"./cmd/worker", "./cmd/enqueue"} {
			if strings.Contains(r, p) {
				built = append(built, p)
			}
		}
	}
	if !slices.Contains(built, "./cmd/worker") || !slices.Contains(built, "./cmd/enqueue") {
		t.Errorf("the builder stage builds %v, want ./cmd/worker and ./cmd/enqueue", built)
	}
	args := builder.all("ARG")
	for _, a := range []string{"VERSION", "COMMIT"} {
		if !slices.ContainsFunc(args, func(s string) bool { return s == a || strings.HasPrefix(s, a+"=") }) {
			t.Errorf("builder stage lacks ARG %s", a)
		}
	}
	if !slices.Contains(builder.all("COPY"), "deploy/gobuild.sh deploy/gobuild.sh") {
		t.Error("the builder stage does not COPY deploy/gobuild.sh")
	}

	final := map[string][]string{
		"worker":  {"/out/worker /usr/local/bin/worker"},
		"enqueue": {"/out/enqueue /usr/local/bin/enqueue"},
	}
	for name, copies := range final {
		s := byName[name]
		if s == nil {
			t.Errorf("no %s stage", name)
			continue
		}
		if !regexp.MustCompile(`^` + regexp.QuoteMeta(runtimeImage) + `(@sha256:[0-9a-f]{64})?$`).MatchString(s.image) {
			t.Errorf("stage %s FROM %s, want %s", name, s.image, runtimeImage)
		}
		users := s.all("USER")
		if len(users) == 0 || users[len(users)-1] != nonrootUser {
			t.Errorf("stage %s: USER %v, want %s last", name, users, nonrootUser)
		}
		var got []string
		for _, c := range s.all("COPY") {
			from, rest, ok := strings.Cut(c, " ")
			if !ok || from != "--from=builder" {
				t.Errorf("stage %s: COPY %s: only binaries from the builder belong here", name, c)
				continue
			}
			got = append(got, rest)
		}
		if !slices.Equal(got, copies) {
			t.Errorf("stage %s copies %v, want only %v", name, got, copies)
		}
		if len(s.all("RUN")) > 0 || len(s.all("ADD")) > 0 {
			t.Errorf("stage %s runs or adds something; distroless has no shell", name)
		}
		ep := s.all("ENTRYPOINT")
		if want := `["/usr/local/bin/` + name + `"]`; len(ep) != 1 || ep[0] != want {
			t.Errorf("stage %s ENTRYPOINT %v, want %s", name, ep, want)
		}
	}
	if w := byName["worker"]; w != nil && !slices.Equal(w.all("EXPOSE"), []string{"9090"}) {
		t.Errorf("worker EXPOSE %v, want 9090", w.all("EXPOSE"))
	}
	if e := byName["enqueue"]; e != nil && len(e.all("EXPOSE")) > 0 {
		t.Error("the enqueue image serves nothing")
	}
	for _, s := range stages {
		for _, a := range s.all("ARG") {
			if secretKey.MatchString(a) {
				t.Errorf("ARG %s: build arguments are kept in the image history", a)
			}
		}
		for _, a := range s.all("ADD") {
			if strings.Contains(a, "://") {
				t.Errorf("ADD %s: nothing is downloaded unpinned", a)
			}
		}
	}
}

// The build context, as BuildKit sends it: .dockerignore at the repository
// root, matched the way docker does.
func TestDockerignore(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	patterns, err := ignorefile.ReadAll(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	// Docker's classic builder matches each path with its parents;
	// BuildKit walks the tree and carries each directory's result down.
	// Both must agree.
	sent := func(p string) bool {
		ex, err := pm.MatchesOrParentMatches(p)
		if err != nil {
			t.Fatal(err)
		}
		var info patternmatcher.MatchInfo
		var walked bool
		parts := strings.Split(p, "/")
		for i := range parts {
			walked, info, err = pm.MatchesUsingParentResults(strings.Join(parts[:i+1], "/"), info)
			if err != nil {
				t.Fatal(err)
			}
		}
		if walked != ex {
			t.Errorf("%s: excluded=%v by parent matching, %v by BuildKit's walk", p, ex, walked)
		}
		return !ex
	}

	// Everything the Dockerfile copies is in the context.
	must := []string{"go.mod", "go.sum", "deploy/gobuild.sh"}
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() && rel == ".git" {
			return filepath.SkipDir
		}
		top, _, _ := strings.Cut(rel, "/")
		if !d.IsDir() && strings.HasSuffix(rel, ".go") && !strings.HasSuffix(rel, "_test.go") &&
			(top == "cmd" || top == "internal" || top == "tasks") {
			must = append(must, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(must) < 10 {
		t.Fatalf("found only %v to build", must)
	}
	for _, p := range must {
		if !sent(p) {
			t.Errorf("%s is excluded from the build context, but the build needs it", p)
		}
	}
	// Nothing else: no history, no build output, no credentials, and not
	// the manifests (changing a YAML file must not rebuild the image).
	for _, p := range []string{
		".git", ".git/config", "bin/worker", "out/demo/report.html", "README.md", "Makefile",
		"deploy/Dockerfile", "deploy/overlays/dev/kustomization.yaml", "deploy/go.mod",
		"cmd/worker/root_test.go", "internal/realm/testdata/answer.json",
		"app.pem", "cmd/enqueue/app.pem", "internal/x/client.key", "cert.pfx", ".env", "internal/x/.env",
	} {
		if sent(p) {
			t.Errorf("%s would be sent in the build context", p)
		}
	}
}
