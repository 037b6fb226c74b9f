package runstore

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkRecordBatch measures the one Lua call that records a 50-address
// batch: reported per address.
func BenchmarkRecordBatch(b *testing.B) {
	ctx := b.Context()
	s, id := newRunB(b)
	outs := make([]Outcome, 50)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		addrs := make([]string, 50)
		for j := range addrs {
			addrs[j] = fmt.Sprintf("u%d-%d@contoso.com", i, j)
			outs[j] = Outcome{Address: addrs[j], Status: StateAbsent, Detail: Detail{RequestID: "rq", CheckedAt: time.Now()}}
		}
		s.Register(ctx, id, i, nil, addrs, nil, nil)
		b.StartTimer()
		if _, err := s.Record(ctx, id, 8, time.Now(), outs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*50), "ns/address")
}
