package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/msaudit/msaudit/internal/report"
	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/internal/spill"
)

// TestStreamedJSONIsWhatTheEncoderWrites: the comparison and the dead
// letters written an element at a time are byte for byte what
// json.Encoder writes of the whole value, empty lists included, from a
// sorter that spilled.
func TestStreamedJSONIsWhatTheEncoderWrites(t *testing.T) {
	t.Parallel()
	type comparison struct {
		Old          string         `json:"old_run"`
		New          string         `json:"new_run"`
		Resolved     []report.Entry `json:"resolved"`
		StillPresent []report.Entry `json:"still_present"`
		NewlyPresent []report.Entry `json:"newly_present"`
		Unconfirmed  []report.Entry `json:"unconfirmed"`
	}
	want := comparison{Old: "r0", New: "r1", Resolved: []report.Entry{}, StillPresent: []report.Entry{}, NewlyPresent: []report.Entry{}, Unconfirmed: []report.Entry{}}
	lists := spill.Config{Dir: t.TempDir(), Budget: 4 << 10}.New()
	defer lists.Close()
	var seq uint64
	for i := range 500 {
		e := report.Entry{Address: "a" + strconv.Itoa(i) + "@x.com", UserID: "u" + strconv.Itoa(i), UPN: "<upn&>", DisplayName: "Ann \"A\""}
		c := []report.Class{report.Resolved, report.Unconfirmed}[i%2]
		if c == report.Resolved {
			want.Resolved = append(want.Resolved, e)
		} else {
			want.Unconfirmed = append(want.Unconfirmed, e)
		}
		v, _ := json.Marshal(e)
		seq++
		if err := lists.Add(binary.BigEndian.AppendUint64([]byte{byte(c)}, seq), v); err != nil {
			t.Fatal(err)
		}
	}
	if !lists.Spilled() {
		t.Fatal("the sorter did not spill: the test would not cover it")
	}
	var got, exp bytes.Buffer
	w := bufio.NewWriter(&got)
	if err := writeComparisonJSON(w, "r0", "r1", lists); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	json.NewEncoder(&exp).Encode(want)
	if got.String() != exp.String() {
		t.Errorf("comparison JSON:\n%.300s\nwant\n%.300s", got.String(), exp.String())
	}

	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, n := range []int{0, 2500} {
		var dead []runstore.DeadLetter
		for i := range n {
			dead = append(dead, runstore.DeadLetter{Address: "d" + strconv.Itoa(i), Attempts: i % 9, Detail: runstore.Detail{CheckedAt: at, Error: "HTTP <500>"}})
		}
		src := func(fn func([]runstore.DeadLetter) error) error {
			for start := 0; start < len(dead); start += 1000 {
				if err := fn(dead[start:min(start+1000, len(dead))]); err != nil {
					return err
				}
			}
			return nil
		}
		type item struct {
			Address  string `json:"address"`
			Attempts int    `json:"attempts"`
			Error    string `json:"error"`
			LastTry  string `json:"last_try"`
		}
		items := make([]item, len(dead))
		for i, d := range dead {
			items[i] = item{d.Address, d.Attempts, d.Error, d.CheckedAt.Format(time.RFC3339)}
		}
		got.Reset()
		exp.Reset()
		if err := writeDeadJSON(&got, src); err != nil {
			t.Fatal(err)
		}
		json.NewEncoder(&exp).Encode(items)
		if got.String() != exp.String() {
			t.Errorf("%d dead letters as JSON:\n%.300s\nwant\n%.300s", n, got.String(), exp.String())
		}
	}
}

// TestColumnsLayOutAsTabwriter: a table measured then written line by line
// is what tabwriter makes of it whole.
func TestColumnsLayOutAsTabwriter(t *testing.T) {
	t.Parallel()
	rows := [][]string{{"ADDRESS", "DISPLAY NAME", "UPN", "USER ID"}, {"a@x.com", "", "ü@x.com", "u1"},
		{"very.long.address@contoso.com", "Zoë Ünlü", "z", ""}, {"", "名前", "b@x.com", "u3"}}
	var want, got bytes.Buffer
	tw := tabwriter.NewWriter(&want, 2, 4, 2, ' ', 0)
	c := make(columns, 3)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
		c.note(r...)
	}
	tw.Flush()
	w := bufio.NewWriter(&got)
	for _, r := range rows {
		c.line(w, r...)
	}
	w.Flush()
	if got.String() != want.String() {
		t.Errorf("columns:\n%s\ntabwriter:\n%s", got.String(), want.String())
	}
}
