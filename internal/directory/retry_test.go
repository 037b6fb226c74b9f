package directory

import (
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/msaudit/msaudit/internal/addresses"
)

// A page throttled several times in a row is still read: kiota's default of
// three retries would give up on the fourth 429.
func TestUsersPageSurvivesRepeated429(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	c := newFakeClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 6 {
			w.Header().Set("Retry-After", "0")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"error":{"code":"TooManyRequests","message":"throttled"}}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"value":[{"id":"u1","userPrincipalName":"a@contoso.com"}]}`))
	}))
	got, _ := collectUsers(t, c, UserQuery{})
	if len(got) != 1 || calls.Load() != 7 {
		t.Errorf("got %d users after %d calls, want 1 after 7", len(got), calls.Load())
	}
}

func TestUsersGiveUpAfterMaxRetries(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	c := newFakeClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Retry-After", "0")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"error":{"code":"TooManyRequests","message":"throttled"}}`))
	}))
	err := c.Users(t.Context(), UserQuery{}, func(page []addresses.User) error { return nil })
	if err == nil {
		t.Fatal("Users succeeded against a Graph that always throttles")
	}
	if n := calls.Load(); n != graphMaxRetries+1 {
		t.Errorf("%d calls, want %d (one try and %d retries)", n, graphMaxRetries+1, graphMaxRetries)
	}
}
