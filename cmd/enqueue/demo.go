package main

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/internal/submit"
	"github.com/msaudit/msaudit/internal/tenantsim"
	"github.com/msaudit/msaudit/internal/worker"
)

type demoOptions struct {
	Users       int
	Seed        int64
	Concurrency int
	RealmRate   float64
	FaultRate   float64
	ReportDir   string
}

func (o *demoOptions) Validate() error {
	switch {
	case o.Users < 1 || o.Users > 200000:
		return fmt.Errorf("--users %d: want 1 to 200000", o.Users)
	case o.Concurrency < 1:
		return fmt.Errorf("--concurrency %d: want >= 1", o.Concurrency)
	case o.RealmRate <= 0:
		return fmt.Errorf("--realm-rate %g: want > 0", o.RealmRate)
	case o.FaultRate < 0 || o.FaultRate > 0.5:
		return fmt.Errorf("--fault-rate %g: want 0 to 0.5", o.FaultRate)
	}
	return nil
}

func newDemoCommand(a *app) *cobra.Command {
	o := &demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Audit a simulated tenant end to end, with no Azure account and no Redis",
		Long: `demo starts the built-in tenant simulator (Entra ID login, Microsoft Graph and the
realm service, over HTTPS, with throttling and faults), then runs a complete
local audit of it: embedded Redis, submit, in-process workers, progress, and
the reports. At the end it compares the result with the simulator's ground
truth.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := a.start(o)
			if err != nil {
				return err
			}
			return runDemo(cmd, a, log, o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Users, "users", 3000, "users in the simulated tenant")
	f.Int64Var(&o.Seed, "seed", 1, "seed of the simulated tenant")
	f.IntVar(&o.Concurrency, "concurrency", worker.DefaultConfig().Concurrency, "batches checked at once")
	f.Float64Var(&o.RealmRate, "realm-rate", 400, "requests/s the simulated realm service sustains before it throttles")
	f.Float64Var(&o.FaultRate, "fault-rate", 0.01, "share of realm requests that fail (5xx, bad JSON, code 4, ...)")
	f.StringVar(&o.ReportDir, "report-dir", "out/demo", "directory for the reports")
	return cmd
}

func runDemo(cmd *cobra.Command, a *app, log *zap.Logger, o *demoOptions) error {
	secret := randomSecret()
	tenant := tenantsim.Generate(o.Seed, o.Users)
	f := o.FaultRate / 4
	sim, err := tenantsim.NewServer(tenant, tenantsim.Config{
		ClientID: "11111111-2222-3333-4444-555555555555", ClientSecret: secret, Seed: o.Seed,
		Realm: tenantsim.RealmConfig{
			Rate: o.RealmRate, Burst: int(o.RealmRate / 4), Penalty: 500 * time.Millisecond,
			Faults: tenantsim.Faults{ServerError: f, BadJSON: f, Code4: f, MissingFlag: f},
		},
	}, log.Named("sim"))
	if err != nil {
		return err
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		return err
	}
	defer sim.Close()
	fmt.Fprintf(a.stderr, "simulated tenant %s: %d users at %s\n", tenant.ID, len(tenant.Users), sim.URL())

	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: sim.CertPool()}, MaxIdleConnsPerHost: 64}}
	lo := &localOptions{
		submitOptions: submitOptions{
			TenantID: tenant.ID, Environment: "Global", ClientID: "11111111-2222-3333-4444-555555555555",
			GraphURL: sim.GraphURL(), AuthorityHost: sim.URL() + "/", Addresses: "all", BatchSize: submit.DefaultBatchSize,
			Output: "text", Retention: 24 * time.Hour, clientSecret: secret, httpClient: hc,
		},
		Worker: worker.DefaultConfig(), ReportDir: o.ReportDir,
	}
	// The simulated service answers in microseconds and fails often: pace
	// and retry on its scale, not the real service's.
	w := &lo.Worker
	w.Concurrency, w.RealmURL, w.RealmTimeout, w.RealmClient = o.Concurrency, sim.URL()+"/common/userrealm", 2*time.Second, hc
	w.Limits.TenantRate, w.Limits.Initial = o.RealmRate*2, o.RealmRate/4
	w.Checker.MaxAttempts, w.Checker.BackoffBase, w.Checker.BackoffMax = 6, 100*time.Millisecond, 2*time.Second
	w.ShutdownTimeout, w.ReconcileEvery = 5*time.Second, 0
	if err := lo.Validate(); err != nil {
		return err
	}
	res, err := runLocal(cmd.Context(), a, log, lo)
	if err != nil {
		return err
	}
	st := sim.Stats()
	fmt.Fprintf(a.stdout, "realm requests: %d (%d answered, %d throttled, %d faults)\n",
		st.RealmRequests, st.RealmAnswered, st.RealmThrottled, st.RealmFaults)
	mismatches := compareTruth(tenant.GroundTruth(), res.Results)
	if mismatches == 0 {
		fmt.Fprintln(a.stdout, "ground truth: every address in exactly one final state, present/absent identical to the simulator's")
		return nil
	}
	return fmt.Errorf("ground truth: %d mismatches", mismatches)
}

// compareTruth counts addresses whose outcome contradicts the ground truth,
// or that the run missed or invented. Dead-lettered addresses are not
// contradictions: they are the honest "no answer".
func compareTruth(gt tenantsim.GroundTruth, results []runstore.Result) int {
	got := make(map[string]runstore.AddressStatus)
	for _, r := range results {
		got[r.Address] = r.State
	}
	bad := 0
	for _, t := range gt.Addresses {
		st, ok := got[t.Address]
		delete(got, t.Address)
		want := runstore.StateAbsent
		if t.ConsumerAccount {
			want = runstore.StatePresent
		}
		if !ok || (st != want && st != runstore.StateDead) {
			bad++
		}
	}
	return bad + len(got)
}

func randomSecret() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
