package deploy

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"
)

// The OCI labels each image carries, and the build argument each comes
// from ("" for the ones fixed per image).
var ociLabels = map[string]string{
	"org.opencontainers.image.title":       "",
	"org.opencontainers.image.description": "",
	"org.opencontainers.image.version":     "VERSION",
	"org.opencontainers.image.revision":    "COMMIT",
	"org.opencontainers.image.created":     "CREATED",
	"org.opencontainers.image.source":      "SOURCE",
	"org.opencontainers.image.licenses":    "LICENSES",
}

func TestDockerfileOCILabels(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	stages, _ := parseDockerfile(t, string(b))
	pair := regexp.MustCompile(`([A-Za-z0-9_.-]+)="([^"]*)"`)
	for _, name := range []string{"worker", "enqueue"} {
		var s *stage
		for _, st := range stages {
			if st.name == name {
				s = st
			}
		}
		if s == nil {
			t.Fatalf("no %s stage", name)
		}
		// A label's value is expanded where it is set, and an ARG is
		// visible only in the stage that declares it (not in stages built
		// FROM that one): note, for each label, the ARGs its stage declares.
		labels := map[string]string{}
		argsOf := map[string][]string{}
		for _, st := range s.chain() {
			var args []string
			for _, in := range st.ins {
				switch in.cmd {
				case "ARG":
					k, _, _ := strings.Cut(in.args, "=")
					args = append(args, k)
				case "LABEL":
					for _, m := range pair.FindAllStringSubmatch(in.args, -1) {
						labels[m[1]], argsOf[m[1]] = m[2], slices.Clone(args)
					}
				}
			}
		}
		for k, arg := range ociLabels {
			v, ok := labels[k]
			switch {
			case !ok:
				t.Errorf("stage %s: no LABEL %s", name, k)
			case arg == "" && v == "":
				t.Errorf("stage %s: LABEL %s is empty", name, k)
			case arg != "" && v != "${"+arg+"}":
				t.Errorf("stage %s: LABEL %s=%q, want ${%s}", name, k, v, arg)
			case arg != "" && !slices.Contains(argsOf[k], arg):
				t.Errorf("stage %s: LABEL %s uses ARG %s, which is not declared before it in the stage that sets it (it would be empty)", name, k, arg)
			}
		}
		if labels["org.opencontainers.image.title"] != "msaudit-"+name {
			t.Errorf("stage %s: title %q, want msaudit-%s (the image's name)", name, labels["org.opencontainers.image.title"], name)
		}
	}
}

// makeN prints what a make target would run, from the repository root.
func makeN(t *testing.T, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make is not installed")
	}
	cmd := exec.Command("make", append([]string{"-s", "-n"}, args...)...)
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// `make image` passes every build argument the labels use, for both images.
func TestMakeImagePassesLabels(t *testing.T) {
	out := makeN(t, "image", "CONTAINER=docker", "VERSION=v9.8.7", "COMMIT=c0ffee123456", "CREATED=2026-01-02T03:04:05Z")
	var builds []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, " build ") {
			builds = append(builds, l)
		}
	}
	if len(builds) != 2 {
		t.Fatalf("make image runs %d builds, want 2:\n%s", len(builds), out)
	}
	for _, b := range builds {
		for _, want := range []string{
			"--build-arg VERSION=v9.8.7", "--build-arg COMMIT=c0ffee123456", "--build-arg CREATED=2026-01-02T03:04:05Z",
			"--build-arg SOURCE=https://", "--build-arg LICENSES=",
		} {
			if !strings.Contains(b, want) {
				t.Errorf("%s\n  lacks %s", b, want)
			}
		}
		if !strings.Contains(b, ":v9.8.7 ") {
			t.Errorf("%s\n  does not tag the image with VERSION", b)
		}
	}
	// CREATED defaults to an RFC 3339 UTC time.
	out = makeN(t, "image", "CONTAINER=docker")
	if !regexp.MustCompile(`--build-arg CREATED=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ `).MatchString(out) {
		t.Errorf("the default CREATED is not an RFC 3339 UTC time:\n%s", out)
	}
}

// `make chart` stamps the chart with the version being built: a release's
// vX.Y.Z as X.Y.Z (appVersion vX.Y.Z, the image tag), anything else as a
// SemVer pre-release Helm accepts.
func TestMakeChartVersion(t *testing.T) {
	for version, want := range map[string]string{
		"v1.2.3":                 "1.2.3",
		"v1.2.3-4-gabcdef":       "1.2.3-4-gabcdef",
		"v1.2.3-4-gabcdef-dirty": "1.2.3-4-gabcdef-dirty",
		"3b4e0f3":                "",
		"0123456-dirty":          "",
		"dev":                    "",
	} {
		out := makeN(t, "chart", "VERSION="+version)
		m := regexp.MustCompile(`package deploy/chart/msaudit --version (\S+) --app-version (\S+) -d bin`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("make chart VERSION=%s:\n%s", version, out)
		}
		if m[2] != version {
			t.Errorf("VERSION=%s: appVersion %s", version, m[2])
		}
		if want != "" && m[1] != want {
			t.Errorf("VERSION=%s: chart version %s, want %s", version, m[1], want)
		}
		if _, err := semver.StrictNewVersion(m[1]); err != nil {
			t.Errorf("VERSION=%s: chart version %s is not strict SemVer 2: %v", version, m[1], err)
		}
		if !strings.Contains(out, "lint --strict deploy/chart/msaudit") {
			t.Errorf("make chart does not lint first:\n%s", out)
		}
	}
}
