package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// imagePinned: a tag other than latest, or a digest.
func imagePinned(image string) bool {
	name, digest, hasDigest := strings.Cut(image, "@")
	if hasDigest {
		return regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(digest)
	}
	// The tag follows the last colon after the last slash (a registry
	// host may carry a port).
	last := name[strings.LastIndex(name, "/")+1:]
	_, tag, ok := strings.Cut(last, ":")
	return ok && tag != "" && tag != "latest"
}

func TestImagePinned(t *testing.T) {
	for img, want := range map[string]bool{
		"ghcr.io/msaudit/msaudit-worker:v1.2.3": true,
		"redis:7.4":                             true,
		"registry.local:5000/msaudit-worker:v1": true,
		"ghcr.io/msaudit/msaudit-worker@sha256:" + strings.Repeat("0", 64): true,
		"ghcr.io/msaudit/msaudit-worker":                                   false,
		"ghcr.io/msaudit/msaudit-worker:latest":                            false,
		"registry.local:5000/msaudit-worker":                               false,
		"redis":                                                            false,
		"redis:":                                                           false,
	} {
		if got := imagePinned(img); got != want {
			t.Errorf("imagePinned(%q) = %v", img, got)
		}
	}
}

// No rendered manifest (overlays, examples, the base, the chart in every
// case) runs an untagged or :latest image.
func TestNoLatestOrUntaggedImage(t *testing.T) {
	check := func(t *testing.T, objs []object) {
		n := 0
		for _, pt := range podTemplates(objs) {
			for _, c := range slices.Concat(pt.spec.InitContainers, pt.spec.Containers) {
				n++
				if !imagePinned(c.Image) {
					t.Errorf("%s container %s: image %q is not pinned to a tag or digest", pt.owner, c.Name, c.Image)
				}
			}
		}
		if n == 0 {
			t.Error("no container found")
		}
	}
	for _, in := range installs() {
		t.Run(in.name, func(t *testing.T) { check(t, in.objs(t)) })
	}
	t.Run("base", func(t *testing.T) { check(t, render(t, "base")) })
}

// ":latest" appears nowhere under deploy/ (the tests aside), in a manifest,
// a template, a value, the Dockerfile or the docs; nor a newTag of latest.
func TestNoLatestAnywhere(t *testing.T) {
	latest := regexp.MustCompile(`[A-Za-z0-9_./-]:latest\b|newTag:\s*["']?latest\b|tag:\s*["']?latest\b`)
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, "_test.go") {
			return err
		}
		if filepath.Ext(p) == ".sum" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if latest.MatchString(line) {
				t.Errorf("%s:%d: %s", p, i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

type chartMeta struct {
	Version    string `json:"version"`
	AppVersion string `json:"appVersion"`
}

func readChartMeta(t *testing.T) chartMeta {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var m chartMeta
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// One release is pinned everywhere: the chart's version is its appVersion
// without the v, and every kustomization's images: tag is that appVersion
// (make pin-version sets them all).
func TestOneReleasePinned(t *testing.T) {
	m := readChartMeta(t)
	if !regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+$`).MatchString(m.AppVersion) || m.Version != strings.TrimPrefix(m.AppVersion, "v") {
		t.Errorf("Chart.yaml version %q, appVersion %q: want X.Y.Z and vX.Y.Z, the product's release", m.Version, m.AppVersion)
	}
	var tags int
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "kustomization.yaml" {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var k struct {
			Images []struct {
				Name   string `json:"name"`
				NewTag string `json:"newTag"`
				Digest string `json:"digest"`
			} `json:"images"`
		}
		if err := yaml.Unmarshal(b, &k); err != nil {
			return err
		}
		for _, img := range k.Images {
			if strings.HasPrefix(img.Name, "ghcr.io/msaudit/") && img.Digest == "" {
				tags++
				if img.NewTag != m.AppVersion {
					t.Errorf("%s: %s newTag %q, the chart's appVersion is %q", p, img.Name, img.NewTag, m.AppVersion)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if tags < 5 {
		t.Errorf("%d images: tags found, want the base's and each example's", tags)
	}
	// The chart's own images default to its appVersion.
	w := worker(t, renderChart(t, chartCases[0]).objects)
	if want := workerImage + ":" + m.AppVersion; w.container.Image != want {
		t.Errorf("chart default worker image %s, want %s", w.container.Image, want)
	}
}
