package report

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/internal/spill"
)

// The page, its style and its script are embedded and inlined, so that the
// report is one file that works offline, by mail and printed.
var (
	//go:embed assets/report.html.tmpl
	pageTemplate string
	//go:embed assets/report.css
	pageCSS string
	//go:embed assets/report.js
	pageJS string
)

var tmpl = template.Must(template.New("report").Parse(pageTemplate))

type summary struct {
	Addresses, Users, Checked, Present, Absent, Dead, Pending, UsersPresent int64
	CheckedPct, PresentPct, UsersPresentPct                                 string
}

type domainRow struct {
	Name             string
	Addresses, Found int64
	Pct              string
	Width            float64 // of the bar, percent
}

type option struct{ Name, Value string }

type phase struct{ Name, At, After string }

type compareView struct {
	Old, NewRun                       string
	Since                             bool // Old is the baseline of a re-audit, not a re-checked run
	Resolved, Still, New, Unconfirmed int
	ResolvedRows, NewRows             []Entry
	// ResolvedAll and NewAll are the entries of the lists in all, more
	// than the rows shown when the lists are capped.
	ResolvedAll, NewAll int
}

type page struct {
	Run                       *runstore.Run
	State                     runstore.RunState
	Made                      string
	S                         summary
	Domains                   []domainRow
	Options                   []option
	Chart                     *chart
	Trend                     *trend
	Compare                   *compareView
	Present, Failed           []Row // the first rows of each, at most Data.Limit
	PresentPairs, FailedPairs int   // the rows of each in all
	AbsentPairs, PendingPairs int
	Timeline                  []phase
	CSS                       template.CSS
	JS                        template.JS
}

func writeHTML(w io.Writer, d Data) error {
	run := d.Run
	p := page{Run: run, State: run.State(), Made: d.Now.UTC().Format("2006-01-02 15:04 UTC"),
		CSS: template.CSS(pageCSS), JS: template.JS(pageJS)}
	sc := &scan{limit: d.Limit, domainIdx: make(map[string]int), users: d.Spill.New()}
	defer sc.users.Close()
	if err := d.Rows(sc.add); err != nil {
		return err
	}
	usersPresent, err := sc.distinctUsers()
	if err != nil {
		return err
	}
	p.S = summarize(run, usersPresent)
	p.Domains = sc.sortedDomains()
	p.Options = options(run, d.Now)
	if run.Since != "" {
		p.Options = append(p.Options, reusedOption(run, sc.firstReused, sc.lastReused))
	}
	p.Chart = newChart(run.Chart)
	p.Present, p.PresentPairs, p.Failed, p.FailedPairs = sc.present, sc.presentPairs, sc.failed, sc.failedPairs
	p.AbsentPairs, p.PendingPairs = sc.absentPairs, sc.pendingPairs
	if c := d.Compare; c != nil {
		p.Compare = &compareView{Old: c.Old, NewRun: c.New, Since: run.Since == c.Old, Resolved: c.Counts[Resolved], Still: c.Counts[StillPresent],
			New: c.Counts[NewlyPresent], Unconfirmed: c.Counts[Unconfirmed], ResolvedRows: c.Resolved, ResolvedAll: c.Entries[Resolved]}
		if p.Compare.Since {
			p.Compare.NewRows, p.Compare.NewAll = c.NewlyPresent, c.Entries[NewlyPresent]
		}
	}
	p.Trend = newTrend(d.Trend, run.ID)
	p.Timeline = timeline(run)
	bw := bufio.NewWriterSize(w, 1<<16)
	if err := tmpl.Execute(bw, p); err != nil {
		return fmt.Errorf("render html report: %w", err)
	}
	return bw.Flush()
}

// scan gathers what the HTML report shows of the rows, in one pass:
// counts, the first rows of each list, the domains, and the users with a
// consumer account, which a sorter counts.
type scan struct {
	limit                     int
	domainIdx                 map[string]int
	domains                   []domainRow
	lastAddr                  string
	firstReused, lastReused   string
	present, failed           []Row
	presentPairs, failedPairs int
	absentPairs, pendingPairs int
	users                     *spill.Sorter // the user IDs of present rows
}

func (sc *scan) add(part []Row) error {
	for _, r := range part {
		sc.domain(r)
		if r.ReusedFrom != "" && r.CheckedAt != "" {
			if sc.firstReused == "" || r.CheckedAt < sc.firstReused { // RFC 3339 UTC sorts as text
				sc.firstReused = r.CheckedAt
			}
			sc.lastReused = max(sc.lastReused, r.CheckedAt)
		}
		switch r.Status {
		case runstore.StatePresent:
			if sc.presentPairs++; len(sc.present) < sc.limit {
				sc.present = append(sc.present, r)
			}
			if r.UserID != "" {
				if err := sc.users.Add([]byte(r.UserID), nil); err != nil {
					return err
				}
			}
		case runstore.StateDead:
			if sc.failedPairs++; len(sc.failed) < sc.limit {
				sc.failed = append(sc.failed, r)
			}
		case runstore.StateAbsent:
			sc.absentPairs++
		default:
			sc.pendingPairs++
		}
	}
	return nil
}

// domain counts a distinct address and whether it was found present in its
// domain; rows are sorted by address, so an address's pairs are adjacent.
func (sc *scan) domain(r Row) {
	if r.Address == sc.lastAddr {
		return
	}
	sc.lastAddr = r.Address
	d := r.Address[strings.LastIndexByte(r.Address, '@')+1:]
	j, ok := sc.domainIdx[d]
	if !ok {
		j = len(sc.domains)
		sc.domainIdx[d] = j
		sc.domains = append(sc.domains, domainRow{Name: d})
	}
	sc.domains[j].Addresses++
	if r.Status == runstore.StatePresent {
		sc.domains[j].Found++
	}
}

// distinctUsers counts the users with a consumer account.
func (sc *scan) distinctUsers() (int64, error) {
	var n int64
	var last []byte
	err := sc.users.Each(func(id, _ []byte) error {
		if n == 0 || !bytes.Equal(id, last) {
			n++
			last = append(last[:0], id...)
		}
		return nil
	})
	return n, err
}

// sortedDomains is the domains, most addresses first.
func (sc *scan) sortedDomains() []domainRow {
	out := sc.domains
	sort.Slice(out, func(i, j int) bool {
		if out[i].Addresses != out[j].Addresses {
			return out[i].Addresses > out[j].Addresses
		}
		return out[i].Name < out[j].Name
	})
	for i := range out {
		out[i].Pct = pct(out[i].Found, out[i].Addresses)
		out[i].Width = 100 * float64(out[i].Found) / float64(max(out[i].Addresses, 1))
	}
	return out
}

// summarize takes the counts from the run record, the system of record,
// and the users with a consumer account from the rows.
func summarize(run *runstore.Run, usersPresent int64) summary {
	s := summary{Addresses: run.AddressesTotal, Users: run.UsersTotal, Present: run.Present, Absent: run.Absent,
		Dead: run.DeadLettered, Checked: run.Checked, UsersPresent: usersPresent}
	s.Pending = max(0, s.Addresses-s.Checked-s.Dead)
	if s.Users == 0 {
		s.Users = run.UsersSeen
	}
	s.CheckedPct, s.PresentPct, s.UsersPresentPct = pct(s.Checked, s.Addresses), pct(s.Present, s.Checked), pct(s.UsersPresent, s.Users)
	return s
}

func pct(n, of int64) string {
	if of <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f %%", 100*float64(n)/float64(of))
}

// options describes what the run checked, from the submit options it keeps.
func options(run *runstore.Run, now time.Time) []option {
	var o struct {
		Addresses     string   `json:"addresses"`
		Domains       []string `json:"domains"`
		Filter        string   `json:"filter"`
		UsersFile     bool     `json:"users_file"`
		AddressesFile bool     `json:"addresses_file"`
	}
	_ = json.Unmarshal([]byte(run.Options), &o) // an old or empty record shows defaults
	var out []option
	add := func(n, v string) { out = append(out, option{n, v}) }
	switch {
	case run.RecheckOf != "":
		add("Addresses", "those run "+run.RecheckOf+" found with a consumer account")
	case o.AddressesFile:
		add("Addresses", "an address list")
	case o.Addresses == "primary":
		add("Addresses", "primary: UPN and mail")
	default:
		add("Addresses", "all: UPN, mail and SMTP proxy addresses")
	}
	if !o.AddressesFile && run.RecheckOf == "" {
		if len(o.Domains) == 0 {
			add("Domains", "every verified domain except *.onmicrosoft.com")
		} else {
			add("Domains", strings.Join(o.Domains, ", "))
		}
		switch {
		case o.Filter != "":
			add("Users", "filter "+o.Filter)
		case o.UsersFile:
			add("Users", "a list of users")
		default:
			add("Users", "every member user (guests skipped)")
		}
	}
	end := run.CompletedAt
	if end.IsZero() {
		end = now
	}
	if !run.CreatedAt.IsZero() {
		d := humanDuration(end.Sub(run.CreatedAt))
		if run.CompletedAt.IsZero() {
			d += " so far"
		}
		add("Duration", d)
	}
	add("Realm requests", fmt.Sprint(run.Requests))
	add("Throttle signals", fmt.Sprint(run.Throttles))
	add("Retries", fmt.Sprint(max(0, run.Requests-run.Checked-run.DeadLettered)))
	return out
}

// reusedOption says how many answers a re-audit reused, of which run, and
// when they were first given (first and last: RFC 3339, empty if none).
func reusedOption(run *runstore.Run, first, last string) option {
	v := fmt.Sprintf("%d addresses run %s found without a consumer account, not asked again (reused_from in the JSON and CSV reports)", run.Reused, run.Since)
	if first != "" {
		v += fmt.Sprintf("; first answered between %s and %s", first[:10], last[:10])
	}
	return option{"Reused answers", v}
}

func timeline(run *runstore.Run) []phase {
	var out []phase
	for _, ph := range []struct {
		name string
		at   time.Time
	}{
		{"Run created", run.CreatedAt},
		{"Enumeration started", run.EnumerationStartedAt},
		{"First address checked", run.FirstCheckAt},
		{"Enumeration finished, all addresses queued", run.EnumerationFinishedAt},
		{"Paused", run.PausedAt},
		{"Run completed", run.CompletedAt},
	} {
		if ph.at.IsZero() {
			continue
		}
		after := ""
		if !run.CreatedAt.IsZero() && ph.at.After(run.CreatedAt) {
			after = humanDuration(ph.at.Sub(run.CreatedAt))
		}
		out = append(out, phase{ph.name, ph.at.UTC().Format("2006-01-02 15:04:05"), after})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}

// humanDuration is d rounded to what a person reads: 3d 4h, 2h 5m, 4m 10s.
func humanDuration(d time.Duration) string {
	switch {
	case d >= 24*time.Hour:
		return fmt.Sprintf("%dd %dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
	case d >= time.Hour:
		return fmt.Sprintf("%dh %dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	case d >= time.Minute:
		return fmt.Sprintf("%dm %ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	}
	return d.Round(100 * time.Millisecond).String()
}
