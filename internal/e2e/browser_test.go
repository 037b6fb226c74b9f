package e2e

import (
	"context"
	"encoding/csv"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// chromium finds Debian's headless browser. CI installs it, so there a
// missing browser fails the test; elsewhere it skips.
func chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "" {
		t.Skip("chromium not installed (apt-get install chromium); CI requires it")
	}
	t.Fatal("chromium not installed: CI must install it (apt-get install chromium)")
	return ""
}

// renderDOM loads a file in headless Chromium, after its scripts ran, and
// returns the DOM; it also leaves a screenshot next to the file.
func renderDOM(t testing.TB, path string) string {
	t.Helper()
	bin := chromium(t)
	run := func(args ...string) []byte {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		args = append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + t.TempDir()}, args...)
		out, err := exec.CommandContext(ctx, bin, append(args, "file://"+path)...).Output()
		if err != nil {
			t.Fatalf("chromium %v: %v", args, err)
		}
		return out
	}
	dom := run("--dump-dom")
	shot := strings.TrimSuffix(path, filepath.Ext(path)) + ".png"
	run("--window-size=1280,1800", "--screenshot="+shot)
	if os.Getenv("MSAUDIT_KEEP_SCREENSHOTS") != "" {
		b, _ := os.ReadFile(shot)
		os.WriteFile(filepath.Join(os.Getenv("MSAUDIT_KEEP_SCREENSHOTS"), filepath.Base(shot)), b, 0o644)
	}
	return string(dom)
}

// elementText is the text of the element with the given id.
func elementText(t testing.TB, dom, id string) string {
	t.Helper()
	m := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `"[^>]*>([^<]*)<`).FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("no element %q in the rendered report", id)
	}
	return strings.TrimSpace(m[1])
}

// domainSum adds up the addresses column of the per-domain table.
func domainSum(t testing.TB, dom string) int {
	t.Helper()
	start := strings.Index(dom, `id="domains"`)
	end := strings.Index(dom[max(start, 0):], "</table>")
	if start < 0 || end < 0 {
		t.Fatal("no per-domain table in the rendered report")
	}
	sum := 0
	for _, m := range regexp.MustCompile(`<tr><td>[^<]*</td><td class="num">(\d+)</td>`).FindAllStringSubmatch(dom[start:start+end], -1) {
		n, _ := strconv.Atoi(m[1])
		sum += n
	}
	return sum
}

// checkSafeCSV checks the BOM and that no cell starts with a formula
// character.
func checkSafeCSV(t testing.TB, name string, b []byte) {
	t.Helper()
	s := string(b)
	if !strings.HasPrefix(s, "\uFEFF") {
		t.Errorf("%s: no UTF-8 BOM", name)
	}
	recs, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(s, "\uFEFF"))).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defused := 0
	for _, rec := range recs {
		for _, c := range rec {
			if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
				t.Errorf("%s: cell %q starts with a formula character", name, c)
			}
			if strings.HasPrefix(c, "'=") || strings.HasPrefix(c, "'+") || strings.HasPrefix(c, "'-") {
				defused++
			}
		}
	}
	if defused == 0 {
		t.Errorf("%s: no defused cell, but the hostile users' addresses start with =, + and -", name)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
