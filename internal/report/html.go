package report

import (
	"html/template"
	"io"
	"time"

	"github.com/msaudit/msaudit/internal/runstore"
)

type phase struct {
	Name string
	At   string
}

type page struct {
	Run      *runstore.Run
	State    string
	Present  []Row
	Failed   []Row
	Pending  int
	Timeline []phase
	Made     string
}

var tmpl = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Consumer account audit — run {{.Run.ID}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}
th{background:#f3f3f3}.num{text-align:right}.muted{color:#666}
</style></head><body>
<h1>Consumer account audit</h1>
<p>Run <code>{{.Run.ID}}</code>, tenant <code>{{.Run.TenantID}}</code>: <strong>{{.State}}</strong>.
{{.Run.AddressesTotal}} addresses; {{.Run.Present}} with a consumer account, {{.Run.Absent}} without,
{{.Run.DeadLettered}} dead-lettered{{if .Pending}}, {{.Pending}} user-address pairs still pending{{end}}.</p>

<h2>Consumer accounts found ({{len .Present}})</h2>
{{if .Present}}<table><tr><th>Address</th><th>User</th><th>User ID</th><th>Checked (UTC)</th><th>Request ID</th></tr>
{{range .Present}}<tr><td>{{.Address}}</td><td>{{.UPN}}</td><td>{{.UserID}}</td><td>{{.CheckedAt}}</td><td><code>{{.MSRequestID}}</code></td></tr>
{{end}}</table>{{else}}<p class="muted">None.</p>{{end}}

<h2>Addresses whose test failed ({{len .Failed}})</h2>
{{if .Failed}}<p>Export them with <code>enqueue deadletters {{.Run.ID}} --export FILE</code>; re-check them with <code>enqueue requeue {{.Run.ID}}</code>.</p>
<table><tr><th>Address</th><th>User</th><th class="num">Attempts</th><th>Last error</th><th>Last try (UTC)</th></tr>
{{range .Failed}}<tr><td>{{.Address}}</td><td>{{.UPN}}</td><td class="num">{{.Attempts}}</td><td>{{.Error}}</td><td>{{.CheckedAt}}</td></tr>
{{end}}</table>{{else}}<p class="muted">None.</p>{{end}}

<h2>Timeline</h2>
<table><tr><th>Phase</th><th>At (UTC)</th></tr>
{{range .Timeline}}<tr><td>{{.Name}}</td><td>{{.At}}</td></tr>
{{end}}</table>
<p class="muted">Report made {{.Made}}.</p>
</body></html>
`))

func writeHTML(w io.Writer, run *runstore.Run, rows []Row) error {
	p := page{Run: run, State: run.State(), Made: time.Now().UTC().Format(time.RFC3339)}
	for _, r := range rows {
		switch r.Status {
		case runstore.StatePresent:
			p.Present = append(p.Present, r)
		case runstore.StateDead:
			p.Failed = append(p.Failed, r)
		case "pending":
			p.Pending++
		}
	}
	for _, ph := range []struct {
		name string
		at   time.Time
	}{
		{"Run created", run.CreatedAt},
		{"Enumeration started", run.EnumerationStartedAt},
		{"First address checked", run.FirstCheckAt},
		{"Enumeration finished, all addresses queued", run.EnumerationFinishedAt},
		{"Run completed", run.CompletedAt},
	} {
		if !ph.at.IsZero() {
			p.Timeline = append(p.Timeline, phase{ph.name, ph.at.UTC().Format(time.RFC3339)})
		}
	}
	return tmpl.Execute(w, p)
}
