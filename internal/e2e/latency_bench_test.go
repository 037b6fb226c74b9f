package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/msaudit/msaudit/internal/realm"
	"github.com/msaudit/msaudit/internal/runstore"
	workerpkg "github.com/msaudit/msaudit/internal/worker"
)

// simTransport is the worker's realm transport, trusting the simulator's
// CA, with the connections it opens counted: a count near the number of
// requests would mean connections churn and every request pays a handshake.
func simTransport(b *testing.B, s *sim) (*http.Transport, *atomic.Int64) {
	ca, err := os.ReadFile(s.CAFile)
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	tr := realm.NewTransport()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	var dials atomic.Int64
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return d.DialContext(ctx, network, addr)
	}
	return tr, &dials
}

// delayed makes the simulator answer in realistic time: 100 to 400 ms, and
// 1 to 2 s for 2 % of the requests.
type delayed struct {
	next http.RoundTripper
	mu   sync.Mutex
	rnd  *rand.Rand
}

func (d *delayed) latency() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.rnd.Float64() < 0.02 {
		return time.Second + time.Duration(d.rnd.Int64N(int64(time.Second)))
	}
	return 100*time.Millisecond + time.Duration(d.rnd.Int64N(int64(300*time.Millisecond)))
}

func (d *delayed) RoundTrip(req *http.Request) (*http.Response, error) {
	t := time.NewTimer(d.latency())
	defer t.Stop()
	select {
	case <-req.Context().Done():
		return nil, req.Context().Err()
	case <-t.C:
	}
	return d.next.RoundTrip(req)
}

// latencyRate is the rate, requests/s, one worker is asked to reach.
const latencyRate = 100

// measureLatency runs one worker with the default settings against the
// simulator answering in realistic time, the tenant's rate pinned at
// latencyRate (not adaptive, so this measures the worker, not the limiter),
// and reports the rate it reaches between 10 % and 90 % of the run, apart
// from the start and the end of the run.
func measureLatency(b *testing.B) {
	asCmdWorker(b)
	const n = 5000
	s, redisURL, run := submitGenerated(b, "slow", n)
	store := runstore.New(plainClient(b, redisURL))
	rdb, rt := countingClient(b, redisURL)
	tr, dials := simTransport(b, s)

	cfg := workerpkg.DefaultConfig()
	cfg.RealmURL = s.RealmURL
	cfg.RealmClient = &http.Client{Transport: &delayed{next: tr, rnd: rand.New(rand.NewPCG(1, 2))}}
	cfg.Limits.TenantRate, cfg.Limits.Adaptive = latencyRate, false
	cpu0, start := cpuTime(b), time.Now()
	w, err := workerpkg.New(rdb, cfg, zap.NewNop(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Shutdown()
	var t10, t90 time.Time
	for {
		st, err := store.GetRun(context.Background(), run)
		if err != nil {
			b.Fatal(err)
		}
		if t10.IsZero() && st.Checked >= n/10 {
			t10 = time.Now()
		}
		if t90.IsZero() && st.Checked >= n*9/10 {
			t90 = time.Now()
		}
		if st.State() == runstore.StateCompleted {
			break
		}
		if time.Since(start) > 10*time.Minute {
			b.Fatalf("run not completed: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	wall, cpu, trips := time.Since(start), cpuTime(b)-cpu0, rt.n.Load()
	rate := 0.8 * n / t90.Sub(t10).Seconds()
	fmt.Printf("\none worker, realistic latency (100-400 ms, 2 %% at 1-2 s), default settings (%d slots), rate pinned at C = %d/s:\n",
		cfg.Concurrency, latencyRate)
	fmt.Printf("%d addresses in %s; rate from 10 %% to 90 %% of the run: %.1f/s = %.2f·C (bar >= 0.9·C)\n",
		n, wall.Round(time.Millisecond), rate, rate/latencyRate)
	fmt.Printf("redis round trips: %.2f per address; CPU: %.3f ms per address; realm connections opened: %d\n",
		float64(trips)/n, float64(cpu.Microseconds())/1000/n, dials.Load())
	b.ReportMetric(rate/latencyRate, "rate/C")
}
