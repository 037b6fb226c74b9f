package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/msaudit/msaudit/internal/addresses"
	"github.com/msaudit/msaudit/internal/baseline"
	"github.com/msaudit/msaudit/internal/directory"
	"github.com/msaudit/msaudit/internal/envflag"
	"github.com/msaudit/msaudit/internal/intake"
	"github.com/msaudit/msaudit/internal/runstore"
	"github.com/msaudit/msaudit/internal/submit"
)

// submitOptions are the flags of 'submit' (and of 'local').
type submitOptions struct {
	TenantID         string
	Environment      string
	Auth             string
	ClientID         string
	ClientSecretFile string
	// ClientSecretArg is the hidden --client-secret, defined only to refuse it.
	ClientSecretArg         string
	CertificateFile         string
	CertificatePasswordFile string
	FederatedTokenFile      string
	DomainPermission        string
	UserPermission          string
	AdvancedQuery           bool
	GraphURL                string
	AuthorityHost           string
	Addresses               string
	Domains                 []string
	Filter                  string
	UsersFile               string
	AddressesFile           string
	BatchSize               int
	RunID                   string
	Recheck                 string
	Since                   string
	ReuseMaxAge             time.Duration
	DryRun                  bool
	Output                  string
	Retention               time.Duration

	// Set by tests and the demo, not by flags.
	clientSecret string
	httpClient   *http.Client
	prompt       ioWriter // device-code instructions; nil = stderr

	// authPicked says why Auth was chosen when --auth was omitted.
	authPicked string
	// fromEnv reports whether a flag's value came from its environment
	// variable (nil: none did, as when tests fill the options).
	fromEnv func(flag string) bool
}

// Validate checks the options, fills in what follows from them (the
// authentication method, the permission names) and checks that the named
// list files exist.
func (o *submitOptions) Validate() error {
	if err := o.validateFlags(); err != nil {
		return err
	}
	// A mistyped file name is a bad flag too: say so before connecting
	// to anything.
	for _, f := range []struct{ flag, name string }{{"--users-file", o.UsersFile}, {"--addresses-file", o.AddressesFile}} {
		if f.name == "" {
			continue
		}
		if _, err := os.Stat(f.name); err != nil {
			return fmt.Errorf("%s: %w", f.flag, err)
		}
	}
	return nil
}

// tenantPattern is a directory (tenant) ID: a GUID.
var tenantPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func (o *submitOptions) validateFlags() error {
	if strings.TrimSpace(o.TenantID) == "" {
		return errors.New("--tenant-id is required (the directory (tenant) ID, or AZURE_TENANT_ID)")
	}
	if !tenantPattern.MatchString(o.TenantID) && !addresses.Valid("x@"+o.TenantID) {
		return fmt.Errorf("--tenant-id %q: want the directory (tenant) ID, a GUID, or a domain of the tenant such as contoso.onmicrosoft.com", o.TenantID)
	}
	if _, err := directory.CloudByName(o.Environment); err != nil {
		return fmt.Errorf("--environment: %w", err)
	}
	if _, ok := addresses.ParseMode(o.Addresses); !ok {
		return fmt.Errorf("--addresses %q: want all or primary", o.Addresses)
	}
	if err := checkBatchSize(o.BatchSize); err != nil {
		return err
	}
	if err := checkOutput(o.Output); err != nil {
		return err
	}
	if o.Retention < time.Hour {
		return fmt.Errorf("--retention %s: want at least 1h", o.Retention)
	}
	if o.Since != "" && o.ReuseMaxAge <= 0 {
		return fmt.Errorf("--reuse-max-age %s: want a positive duration", o.ReuseMaxAge)
	}
	if o.Since != "" && o.Recheck != "" {
		return errors.New("--since and --recheck exclude each other: a re-check asks only what its run found present")
	}
	if o.Recheck != "" {
		switch {
		case o.Filter != "" || o.UsersFile != "" || o.AddressesFile != "" || len(o.Domains) > 0:
			return errors.New("--recheck checks what the earlier run found: it takes no --filter, --users-file, --addresses-file or --domain")
		case o.RunID != "":
			return errors.New("--recheck starts a new run: it cannot be used with --run-id")
		case o.DryRun:
			return errors.New("--recheck cannot be used with --dry-run")
		}
		return nil // no Graph access needed
	}
	sources := 0
	for _, s := range []string{o.Filter, o.UsersFile, o.AddressesFile} {
		if s != "" {
			sources++
		}
	}
	if sources > 1 {
		return errors.New("--filter, --users-file and --addresses-file exclude each other")
	}
	if o.AddressesFile != "" {
		if len(o.Domains) > 0 {
			return errors.New("--domain cannot be used with --addresses-file (the list is checked as given)")
		}
		return nil // no Graph access needed
	}
	for _, d := range o.Domains {
		if !addresses.Valid("x@" + strings.TrimSpace(d)) {
			return fmt.Errorf("--domain %q: not a domain name", d)
		}
	}
	if err := o.validateAuth(); err != nil {
		return err
	}
	if o.DomainPermission == "" {
		o.DomainPermission = directory.DomainPermissions[0]
	}
	if o.UserPermission == "" {
		o.UserPermission = directory.UserPermissions[0]
	}
	var err error
	if o.DomainPermission, err = directory.CanonicalPermission(o.DomainPermission, directory.DomainPermissions); err != nil {
		return fmt.Errorf("--domain-permission: %w", err)
	}
	if o.UserPermission, err = directory.CanonicalPermission(o.UserPermission, directory.UserPermissions); err != nil {
		return fmt.Errorf("--user-permission: %w", err)
	}
	if o.UsersFile != "" && o.AdvancedQuery {
		return errors.New("--advanced-query applies to --filter or the full user list, not --users-file")
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// addSubmitFlags defines the submit flags on cmd.
func addSubmitFlags(cmd *cobra.Command, a *app, o *submitOptions) {
	f := cmd.Flags()
	f.StringVar(&o.TenantID, "tenant-id", "", "directory (tenant) ID to audit")
	f.StringVar(&o.Environment, "environment", "Global", "cloud: Global, USGov, USGovDoD or China")
	f.StringVar(&o.Auth, "auth", "", "authentication method: "+strings.Join(authMethods, ", ")+
		" (default: picked from the credential given: secret, certificate or federated token)")
	f.StringVar(&o.ClientID, "client-id", "", "application (client) ID of the app registration (for managed-identity: a user-assigned identity)")
	f.StringVar(&o.ClientSecretFile, "client-secret-file", "", "file holding the client secret (else env AZURE_CLIENT_SECRET; never pass a secret as an argument)")
	f.StringVar(&o.ClientSecretArg, "client-secret", "", "refused: use AZURE_CLIENT_SECRET or --client-secret-file")
	_ = f.MarkHidden("client-secret")
	f.StringVar(&o.CertificateFile, "certificate-file", "", "certificate auth: PEM (certificate and key) or PFX file")
	f.StringVar(&o.CertificatePasswordFile, "certificate-password-file", "", "file holding the PFX password (else env AZURE_CLIENT_CERTIFICATE_PASSWORD)")
	f.StringVar(&o.FederatedTokenFile, "federated-token-file", "", "workload-identity: the projected service account token file")
	f.StringVar(&o.DomainPermission, "domain-permission", "Domain.Read.All", "Graph permission used to read domains: "+strings.Join(directory.DomainPermissions, " or ")+"; verified after connecting")
	f.StringVar(&o.UserPermission, "user-permission", "User.Read.All", "Graph permission used to read users: "+strings.Join(directory.UserPermissions, ", ")+"; verified after connecting")
	f.BoolVar(&o.AdvancedQuery, "advanced-query", false, "send --filter as an advanced query (ConsistencyLevel: eventual, $count=true); implied by endsWith, ne, not(…) and similar")
	f.StringVar(&o.GraphURL, "graph-url", "", "override the cloud's Graph base URL, e.g. https://host:port/v1.0")
	f.StringVar(&o.AuthorityHost, "authority-host", "", "override the cloud's login authority host, e.g. https://host:port/")
	f.StringVar(&o.Addresses, "addresses", "all", "which addresses of a user: all (UPN, mail, SMTP proxies) or primary (UPN and mail)")
	f.StringArrayVar(&o.Domains, "domain", nil, "audit only addresses at this verified domain (repeatable; default: all verified non-onmicrosoft domains)")
	f.StringVar(&o.Filter, "filter", "", "Graph $filter selecting users, e.g. \"startsWith(displayName,'a')\"")
	f.StringVar(&o.UsersFile, "users-file", "", "file of user UPNs or object IDs, one a line (blank lines and lines starting with '#' ignored; a UPN may contain '#')")
	f.StringVar(&o.AddressesFile, "addresses-file", "", "file of addresses, one a line (or a 'deadletters --export' file): no Graph access")
	addBatchSizeFlag(f, &o.BatchSize, "addresses per task")
	f.StringVar(&o.RunID, "run-id", "", "resume or extend this run instead of starting a new one (addresses already in it are not checked again)")
	f.StringVar(&o.Since, "since", "", "re-audit: reuse the answers this earlier run (its ID, its 'report --format json' file, or 'latest': the tenant's newest completed audit kept, if any) found absent instead of asking them again; new, present and unanswered addresses are asked")
	f.DurationVar(&o.ReuseMaxAge, "reuse-max-age", 90*24*time.Hour, "with --since: reuse an answer only if first given no longer ago than this (2160h = 90 days: a monthly re-audit asks everything again each quarter)")
	f.StringVar(&o.Recheck, "recheck", "", "start a new run that checks only the addresses this earlier run found with a consumer account, with their users (no Graph access); 'compare' then shows who renamed theirs")
	f.BoolVar(&o.DryRun, "dry-run", false, "connect and count users, addresses and batches; queue nothing")
	f.StringVarP(&o.Output, "output", "o", "text", "text (the run ID) or json")
	f.DurationVar(&o.Retention, "retention", 30*24*time.Hour, "keep the run's results this long after it completes (addresses are personal data)")
	// The Azure SDKs' conventional variables, so that what the AKS workload
	// identity webhook injects works as it is.
	for flag, env := range map[string]string{
		"tenant-id": "AZURE_TENANT_ID", "client-id": "AZURE_CLIENT_ID", "authority-host": "AZURE_AUTHORITY_HOST",
		"environment": "AZURE_ENVIRONMENT", "certificate-file": "AZURE_CLIENT_CERTIFICATE_PATH",
		"federated-token-file": "AZURE_FEDERATED_TOKEN_FILE",
	} {
		envflag.BindTo(f, flag, env)
	}
	envflag.Bind(f, "auth", "graph-url", "retention")
	o.fromEnv = func(flag string) bool { return envflag.FromEnv(f, flag) }
}

func newSubmitCommand(a *app) *cobra.Command {
	o := &submitOptions{}
	cmd := &cobra.Command{
		Use:   "submit",
		Short: "Read a tenant and queue its addresses for checking",
		Long: `submit connects to Microsoft Graph, lists the tenant's verified domains and users,
builds the addresses to check (the UPN, mail and SMTP proxy addresses at the
run's domains; guests skipped; each address once per run) and queues them in
batches while it reads. It prints the run ID when everything is queued.

Sign-in (--auth): client-secret (AZURE_CLIENT_SECRET or --client-secret-file),
certificate (--certificate-file PEM or PFX, --certificate-password-file),
device-code (prints a code and URL on stderr), browser, workload-identity
(--federated-token-file or AZURE_FEDERATED_TOKEN_FILE), managed-identity
(--client-id for a user-assigned one) or azure-cli. Without --auth the method
follows from the credential given. After connecting, the token must grant
--domain-permission and --user-permission (or a broader permission); if not,
submit stops and says how to grant admin consent.

If submit stops half-way (Ctrl-C, a Graph error), run it again with
--run-id RUN and the same options: it continues without checking any address
twice.`,
		Example: `  export AZURE_CLIENT_SECRET=...   # or --client-secret-file
  enqueue submit --tenant-id $TENANT --client-id $APP
  enqueue submit --tenant-id $TENANT --client-id $APP --domain contoso.com --addresses primary
  enqueue submit --tenant-id $TENANT --addresses-file failed.txt      # no Graph access
  enqueue submit --tenant-id $TENANT --recheck RUN                    # re-audit what RUN found; no Graph access
  enqueue submit --tenant-id $TENANT --client-id $APP --certificate-file app.pfx --certificate-password-file pw.txt
  enqueue submit --tenant-id $TENANT --client-id $APP --auth device-code --user-permission Directory.Read.All
  enqueue submit --tenant-id $TENANT --client-id $APP --filter "endsWith(mail,'@contoso.com')"
  enqueue submit --tenant-id $TENANT --client-id $APP --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := a.start(o)
			if err != nil {
				return err
			}
			var sess *session
			if !o.DryRun || o.Since == sinceLatest || runIDPattern.MatchString(o.Since) {
				if sess, err = a.open(cmd.Context()); err != nil {
					return err
				}
				defer sess.Close()
			}
			sum, err := runSubmit(cmd.Context(), sess, log, o, a.stderr)
			if err != nil {
				return err
			}
			if sess != nil {
				// Retention: the tasks of runs whose data expired go too.
				if n, err := sweepLeftovers(cmd.Context(), sess); err != nil {
					log.Warn("delete the tasks of expired runs", zap.Error(err))
				} else if n > 0 {
					log.Info("deleted the tasks of expired runs", zap.Int("tasks", n))
				}
			}
			return printSubmit(a, o, sum)
		},
	}
	addSubmitFlags(cmd, a, o)
	return cmd
}

// runSubmit does the submit; sess is nil for a dry run.
func runSubmit(ctx context.Context, sess *session, log *zap.Logger, o *submitOptions, progress ioWriter) (submit.Summary, error) {
	if o.prompt == nil {
		o.prompt = progress // the device code goes where the operator looks
	}
	var (
		src  submit.Source
		base *baseline.Baseline
		err  error
	)
	// The baseline first: a bad one is refused before anything else is
	// read or written.
	if o.Since != "" {
		if base, err = loadBaseline(ctx, sess, o, progress); err != nil {
			return submit.Summary{}, err
		}
	}
	if o.Recheck != "" {
		src, err = recheckSource(ctx, sess.store, o)
	} else {
		src, err = buildSource(ctx, log, o)
	}
	if err != nil {
		return submit.Summary{}, err
	}
	req := submit.Request{BatchSize: o.BatchSize, DryRun: o.DryRun, Samples: 5}
	req.Run = runstore.Run{TenantID: o.TenantID, Source: "graph", Retention: o.Retention, RecheckOf: o.Recheck}
	if base != nil {
		now := time.Now()
		req.Reuse = func(a string) (runstore.Detail, bool) { return base.Reuse(a, now, o.ReuseMaxAge) }
		req.Run.Since = base.RunID
	}
	switch {
	case o.AddressesFile != "":
		req.Run.Source = "file"
	case o.Recheck != "":
		req.Run.Source = "recheck"
	}
	opts, _ := json.Marshal(map[string]any{"addresses": o.Addresses, "domains": o.Domains, "filter": o.Filter,
		"users_file": o.UsersFile != "", "addresses_file": o.AddressesFile != "", "batch_size": o.BatchSize, "environment": o.Environment,
		"recheck": o.Recheck})
	req.Run.Options = string(opts)
	sub := &submit.Submitter{Log: log}
	if !o.DryRun {
		sub.Store, sub.Queue, sub.ChooseLane = sess.store, sess.queue, submit.LeastBusyLane(sess.inspector)
		if o.RunID != "" {
			run, err := sess.store.GetRun(ctx, o.RunID)
			if err != nil {
				return submit.Summary{}, err
			}
			if !strings.EqualFold(run.TenantID, o.TenantID) {
				return submit.Summary{}, fmt.Errorf("--run-id %s belongs to tenant %s, not %s", o.RunID, run.TenantID, o.TenantID)
			}
			if err := sameBaseline(run, req.Run.Since); err != nil {
				return submit.Summary{}, err
			}
			req.Run.ID, req.Resume = o.RunID, true
		} else {
			req.Run.ID = runstore.NewRunID(time.Now())
		}
	}
	p := newProgressPrinter(progress, 2*time.Second)
	sub.OnProgress = p.update
	sum, err := sub.Submit(ctx, req, src)
	p.done(sum.Progress)
	if err != nil {
		if req.Run.ID != "" && sum.Addresses > 0 {
			return sum, fmt.Errorf("%w\nrun %s is incomplete: fix the cause and resume with --run-id %s", err, req.Run.ID, req.Run.ID)
		}
		return sum, err
	}
	return sum, nil
}

// runIDPattern matches a run ID (runstore.NewRunID); any other --since is
// the path of a report.
var runIDPattern = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$`)

// sinceLatest is the --since of a scheduled re-audit: the tenant's newest
// completed audit the store keeps, or none.
const sinceLatest = "latest"

// loadBaseline reads --since, a run ID, "latest" or a report file, and
// checks that it is of the tenant audited. It is nil for "latest" when the
// store keeps no completed audit of the tenant: a full audit.
func loadBaseline(ctx context.Context, sess *session, o *submitOptions, notes io.Writer) (*baseline.Baseline, error) {
	var (
		b   *baseline.Baseline
		err error
	)
	switch {
	case o.Since == sinceLatest:
		var runs []*runstore.Run
		if runs, err = tenantRuns(ctx, sess.store, o.TenantID); err != nil {
			return nil, err
		}
		var latest *runstore.Run
		for _, r := range runs {
			if r.State() == runstore.StateCompleted && r.RecheckOf == "" {
				latest = r
			}
		}
		if latest == nil {
			fmt.Fprintf(notes, "--since latest: no completed audit of tenant %s is kept: asking every address\n", o.TenantID)
			return nil, nil
		}
		fmt.Fprintf(notes, "--since latest: run %s, completed %s\n", latest.ID, latest.CompletedAt.Format(time.RFC3339))
		b, err = baseline.FromRun(ctx, sess.store, latest.ID)
	case runIDPattern.MatchString(o.Since):
		b, err = baseline.FromRun(ctx, sess.store, o.Since)
	default:
		b, err = baseline.FromReport(o.Since)
	}
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(b.TenantID, o.TenantID) {
		return nil, fmt.Errorf("--since %s: run %s is of tenant %s, not %s", o.Since, b.RunID, b.TenantID, o.TenantID)
	}
	return b, nil
}

// sameBaseline checks that a resumed run keeps the baseline it started
// with: its answers were reused from that run, or none were.
func sameBaseline(run *runstore.Run, since string) error {
	switch {
	case run.Since == since:
		return nil
	case since == "":
		return fmt.Errorf("run %s reuses the answers of run %s: resume it with --since %s (or that run's JSON report)", run.ID, run.Since, run.Since)
	case run.Since == "":
		return fmt.Errorf("run %s asks every address: resume it without --since", run.ID)
	}
	return fmt.Errorf("run %s reuses the answers of run %s, not of %s", run.ID, run.Since, since)
}

// recheckSource reads what the earlier run found, after checking it is the
// same tenant's.
func recheckSource(ctx context.Context, store *runstore.Store, o *submitOptions) (submit.Source, error) {
	old, err := store.GetRun(ctx, o.Recheck)
	if err != nil {
		return nil, fmt.Errorf("--recheck: %w", err)
	}
	if !strings.EqualFold(old.TenantID, o.TenantID) {
		return nil, fmt.Errorf("--recheck %s belongs to tenant %s, not %s", o.Recheck, old.TenantID, o.TenantID)
	}
	src, err := intake.RecheckSource(ctx, store, o.Recheck)
	if err != nil {
		return nil, fmt.Errorf("--recheck: %w", err)
	}
	return src, nil
}

// buildSource validates everything it can against Graph (or reads the
// address list) and returns the candidate stream. Nothing is written yet.
func buildSource(ctx context.Context, log *zap.Logger, o *submitOptions) (submit.Source, error) {
	mode, _ := addresses.ParseMode(o.Addresses)
	if o.AddressesFile != "" {
		addrs, err := readListFile(o.AddressesFile, addresses.ReadList)
		if err != nil {
			return nil, err
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("--addresses-file %s: no addresses", o.AddressesFile)
		}
		return intake.AddressSource(addrs), nil
	}
	var ids []string
	if o.UsersFile != "" {
		var err error
		if ids, err = readListFile(o.UsersFile, readIdentities); err != nil {
			return nil, err
		}
	}
	dopts, err := o.directoryOptions(log)
	if err != nil {
		return nil, err
	}
	dir, err := directory.Connect(ctx, dopts)
	if err != nil {
		return nil, err
	}
	// Both permissions are checked before anything else, so that an app
	// missing one is told so at once instead of after reading the domains.
	if err := dir.CheckPermissions(o.DomainPermission, o.UserPermission); err != nil {
		return nil, err
	}
	doms, err := intake.Domains(ctx, dir, o.Domains)
	var listErr *intake.ListError
	if errors.As(err, &listErr) {
		err = fmt.Errorf("--domain: %w", err)
	}
	if err != nil {
		return nil, dir.ExplainForbidden(err, o.DomainPermission)
	}
	log.Info("domains of the run", zap.Strings("domains", intake.DomainNames(doms)))
	if ids != nil {
		users, err := intake.ResolveUsers(ctx, dir, ids)
		if errors.As(err, &listErr) {
			err = fmt.Errorf("--users-file: %w", err)
		}
		if err != nil {
			return nil, dir.ExplainForbidden(err, o.UserPermission)
		}
		return intake.UsersSource(users, doms, mode), nil
	}
	q := directory.UserQuery{Filter: o.Filter, Advanced: o.AdvancedQuery || intake.IsAdvancedFilter(o.Filter)}
	if q.Advanced && !o.AdvancedQuery {
		log.Info("the filter needs graph's advanced query mode: sending ConsistencyLevel: eventual and $count=true")
	}
	src := intake.TenantSource(dir, q, doms, mode)
	return func(ctx context.Context, emit submit.Emit) error {
		return dir.ExplainForbidden(src(ctx, emit), o.UserPermission)
	}, nil
}

func printSubmit(a *app, o *submitOptions, sum submit.Summary) error {
	if o.DryRun {
		return printDryRun(a, o, sum)
	}
	if o.Output == "json" {
		return json.NewEncoder(a.stdout).Encode(map[string]any{
			"run_id": sum.RunID, "resumed": sum.Resumed, "users": sum.Users, "addresses_added": sum.Addresses,
			"addresses_reused": sum.Reused, "batches": sum.Batches,
		})
	}
	if sum.Reused > 0 {
		fmt.Fprintf(a.stderr, "reused %d answers of %s; ", sum.Reused, o.Since)
	}
	fmt.Fprintf(a.stderr, "queued %d new addresses of %d users in %d batches\n", sum.Addresses-sum.Reused, sum.Users, sum.Batches)
	fmt.Fprintln(a.stdout, sum.RunID)
	return nil
}

func printDryRun(a *app, o *submitOptions, sum submit.Summary) error {
	domains := make([]string, 0, len(sum.Domains))
	for d := range sum.Domains {
		domains = append(domains, d)
	}
	sort.Strings(domains)
	if o.Output == "json" {
		return json.NewEncoder(a.stdout).Encode(map[string]any{
			"dry_run": true, "users": sum.Users, "addresses": sum.Addresses, "reused": sum.Reused, "batches": sum.Batches,
			"domains": sum.Domains, "samples": sum.Samples,
		})
	}
	fmt.Fprintf(a.stdout, "dry run: %d users, %d addresses, %d batches of %d\n", sum.Users, sum.Addresses, sum.Batches, o.BatchSize)
	if o.Since != "" {
		fmt.Fprintf(a.stdout, "  %d answers reused from --since (absent, first answered within --reuse-max-age), %d to ask; the domains below count those asked\n",
			sum.Reused, sum.Addresses-sum.Reused)
	}
	for _, d := range domains {
		fmt.Fprintf(a.stdout, "  %-40s %8d  e.g. %s\n", d, sum.Domains[d], strings.Join(sum.Samples[d], ", "))
	}
	return nil
}
