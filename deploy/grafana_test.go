package deploy

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The metrics a worker exports (README.md, "How workers pace themselves").
var workerMetrics = []string{
	"msaudit_checks_total", "msaudit_throttle_signals_total", "msaudit_tenant_rate",
	"msaudit_limiter_wait_seconds", "msaudit_batch_retries_total", "msaudit_dead_letters_total",
	"msaudit_inflight_batches", "msaudit_scaler_desired_workers", "msaudit_scaler_usable_slots",
	"msaudit_open_runs", "msaudit_outstanding_batches",
}

type dashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *datasourceRef  `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int            `json:"id"`
		Type       string         `json:"type"`
		Title      string         `json:"title"`
		Datasource *datasourceRef `json:"datasource"`
		GridPos    struct{ X, Y, W, H int }
		Targets    []struct {
			Expr       string         `json:"expr"`
			Datasource *datasourceRef `json:"datasource"`
		} `json:"targets"`
	} `json:"panels"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana/msaudit-workers.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("not valid JSON: %v", err)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, b, "", "  "); err != nil || !bytes.Equal(pretty.Bytes(), b) {
		t.Error("keep the dashboard indented with two spaces (json.Indent), so diffs stay readable")
	}
	if d.Title == "" || d.UID == "" {
		t.Error("dashboard needs a title and a fixed uid (links survive re-imports)")
	}
	var hasDS bool
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && string(v.Query) == `"prometheus"` {
			hasDS = true
		}
		if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}") {
			t.Errorf("variable %s does not query ${datasource}", v.Name)
		}
	}
	if !hasDS {
		t.Fatal("no Prometheus datasource variable named datasource")
	}
	metric := regexp.MustCompile(`\bmsaudit_[a-z_]+`)
	used := map[string]bool{}
	ids := map[int]bool{}
	type rect struct{ x, y, w, h int }
	var rects []rect
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not use ${datasource}", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: a query not on ${datasource}", p.Title)
			}
			if strings.Count(tg.Expr, "(") != strings.Count(tg.Expr, ")") || strings.Count(tg.Expr, "{") != strings.Count(tg.Expr, "}") {
				t.Errorf("panel %q: unbalanced %s", p.Title, tg.Expr)
			}
			for _, m := range metric.FindAllString(tg.Expr, -1) {
				base := m
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(m, suf); ok && slices.Contains(workerMetrics, b) {
						base = b
					}
				}
				if !slices.Contains(workerMetrics, base) {
					t.Errorf("panel %q queries %s, which workers do not export", p.Title, m)
				}
				used[base] = true
			}
		}
		r := rect{p.GridPos.X, p.GridPos.Y, p.GridPos.W, p.GridPos.H}
		if r.w <= 0 || r.h <= 0 || r.x+r.w > 24 {
			t.Errorf("panel %q: gridPos %+v", p.Title, r)
		}
		for _, o := range rects {
			if r.x < o.x+o.w && o.x < r.x+r.w && r.y < o.y+o.h && o.y < r.y+r.h {
				t.Errorf("panel %q overlaps another", p.Title)
			}
		}
		rects = append(rects, r)
	}
	for _, m := range []string{"msaudit_tenant_rate", "msaudit_checks_total", "msaudit_throttle_signals_total",
		"msaudit_outstanding_batches", "msaudit_scaler_desired_workers", "msaudit_inflight_batches", "msaudit_dead_letters_total"} {
		if !used[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
	if !bytes.Contains(b, []byte(`count(up{`)) {
		t.Error("no panel counts the running workers (count(up{…}))")
	}
}
