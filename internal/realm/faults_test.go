package realm_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/msaudit/msaudit/internal/realm"
	"github.com/msaudit/msaudit/internal/realmtest"
)

// TestClientFaults: every way the endpoint can misbehave is an error that
// names the fault — never a Result with an answer, never "absent".
func TestClientFaults(t *testing.T) {
	t.Parallel()
	const addr = "someone@contoso.com"
	for _, f := range realmtest.Faults() {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			ep := f.Start(t)
			c, err := realm.NewClient(ep.URL, ep.Client, realmtest.Timeout)
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.Check(t.Context(), addr)
			if err == nil {
				t.Fatalf("Check = %+v, nil error", res)
			}
			if res.Status != "" {
				t.Errorf("an error came with status %q", res.Status)
			}
			if !strings.Contains(err.Error(), f.Want) {
				t.Errorf("error %q does not name the fault (want %q)", err, f.Want)
			}
			if strings.Contains(err.Error(), "someone") {
				t.Errorf("error %q carries the address", err)
			}
			want := realm.ErrNoAnswer
			if f.Throttle {
				want = realm.ErrThrottled
			}
			if !errors.Is(err, want) {
				t.Errorf("error %q is not %v", err, want)
			}
			if ep.Hits() == 0 {
				t.Error("the fault endpoint was never reached")
			}
		})
	}
}

// TestClientCorrectAnswersStillPass keeps the strict decoding honest: the
// service's real answers, in any field order with extra fields, are read.
func TestClientCorrectAnswersStillPass(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		body string
		want realm.Status
	}{
		{realmtest.Answer("1", "true"), realm.Absent},
		{realmtest.Answer("0", "true"), realm.Present},
		{`{"MicrosoftAccount":1,"IsMicrosoftAccountSet":true,"NameSpaceType":"Managed","Nested":{"MicrosoftAccount":0}}` + "\n", realm.Absent},
	} {
		got, err := realm.Classify(200, "", []byte(tt.body))
		if err != nil || got != tt.want {
			t.Errorf("Classify(%s) = %q, %v; want %q", tt.body, got, err, tt.want)
		}
	}
}
