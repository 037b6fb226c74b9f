package baseline

import (
	"strings"
	"testing"
	"time"
)

// TestReportBaselineAndAge: a report's absent rows are reusable while their
// first answer is younger than the age limit; present, dead and pending
// rows never are.
func TestReportBaselineAndAge(t *testing.T) {
	t.Parallel()
	report := `[
  {"address": "a@contoso.com", "status": "absent", "ms_request_id": "r1", "checked_at": "2026-11-01T00:00:00Z", "attempts": 0, "reused_from": "20261001T000000Z-000000", "run_id": "20261101T000000Z-aaaaaa", "tenant_id": "T"},
  {"address": "a@contoso.com", "user_id": "u2", "status": "absent", "ms_request_id": "r1", "checked_at": "2026-11-01T00:00:00Z", "attempts": 0, "run_id": "20261101T000000Z-aaaaaa", "tenant_id": "t"},
  {"address": "b@contoso.com", "status": "present", "checked_at": "2026-11-01T00:00:00Z", "run_id": "20261101T000000Z-aaaaaa", "tenant_id": "T"},
  {"address": "c@contoso.com", "status": "dead", "checked_at": "", "run_id": "20261101T000000Z-aaaaaa", "tenant_id": "T", "a_field_of_a_later_version": 1},
  {"address": "d@contoso.com", "status": "absent", "ms_request_id": "r4", "checked_at": "2026-12-01T00:00:00Z", "run_id": "20261101T000000Z-aaaaaa", "tenant_id": "T"}
]`
	b, err := readReport(strings.NewReader(report))
	if err != nil {
		t.Fatal(err)
	}
	if b.RunID != "20261101T000000Z-aaaaaa" || b.TenantID != "T" || len(b.Absent) != 2 {
		t.Fatalf("baseline %+v", b)
	}
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		addr   string
		maxAge time.Duration
		ok     bool
	}{
		{"a@contoso.com", 90 * 24 * time.Hour, true},
		{"a@contoso.com", 30 * 24 * time.Hour, false}, // first answered 36 days ago
		{"d@contoso.com", 30 * 24 * time.Hour, true},
		{"b@contoso.com", 90 * 24 * time.Hour, false},
		{"c@contoso.com", 90 * 24 * time.Hour, false},
		{"new@contoso.com", 90 * 24 * time.Hour, false},
	} {
		d, ok := b.Reuse(c.addr, now, c.maxAge)
		if ok != c.ok || ok && (d.RequestID == "" || d.CheckedAt.IsZero()) {
			t.Errorf("Reuse(%s, %s) = %+v, %v; want %v", c.addr, c.maxAge, d, ok, c.ok)
		}
	}
}
