package tenantsim

import (
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/msaudit/msaudit/internal/throttlemodel"
)

// realmOutcome is what the model decided for one realm request.
type realmOutcome int

const (
	outAnswer realmOutcome = iota
	outThrottled
	outFailAddress
	outTimeout
	outServerError
	outUnavailable
	outBadJSON
	outCode4
	outMissingFlag
)

// realmState holds the throttle model, the fault dice and the realm
// counters behind one mutex: a few hundred nanoseconds per request, far below
// the ~1,000 req/s the throughput tests drive.
type realmState struct {
	mu   sync.Mutex
	cfg  RealmConfig
	fail map[string]struct{}
	// buckets are keyed by tenant under ScopePerTenant, by "" otherwise; a
	// missing bucket is a full one.
	buckets map[string]*bucket
	// start is when the schedule's clock started: the first request since
	// the throttle model was set (zero: none yet).
	start time.Time
	// model is RealmConfig.Model's throttle, built at the first request
	// that needs it (nil: none yet); modelRate is the capacity it was last
	// given and modelLast the latest time it was asked about.
	model     throttlemodel.Model
	modelRate float64
	modelLast time.Time
	rng       *rand.Rand

	requests, answered, throttled, faults int64
	perAddress                            map[string]int64
	perTenant                             map[string]*RealmTenantStats
	// answeredOnce holds the addresses given a real answer; reasked counts
	// real answers given again (a check lost and asked again).
	answeredOnce map[string]struct{}
	reasked      int64
}

// realmDecision is what the model decided for one request: retry is the wait
// to advertise when throttled, hang the timeout fault's duration, delay the
// latency to add before answering.
type realmDecision struct {
	out          realmOutcome
	retry        time.Duration
	retryHeader  bool
	throttleHTTP bool
	hang, delay  time.Duration
}

func (rs *realmState) init(cfg RealmConfig, seed int64) {
	rs.rng = rand.New(rand.NewPCG(uint64(seed), 0x4ea1))
	rs.perAddress = make(map[string]int64)
	rs.perTenant = make(map[string]*RealmTenantStats)
	rs.answeredOnce = make(map[string]struct{})
	rs.buckets = make(map[string]*bucket)
	rs.cfg = cfg
	rs.fail = failSet(cfg.FailAddresses)
}

func failSet(addrs []string) map[string]struct{} {
	m := make(map[string]struct{}, len(addrs))
	for _, a := range addrs {
		m[strings.ToLower(strings.TrimSpace(a))] = struct{}{}
	}
	return m
}

func (rs *realmState) set(cfg RealmConfig) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if !rs.cfg.sameThrottle(cfg) {
		// A new throttle model starts from full buckets, no penalty and its
		// schedule's clock not yet started; changing only faults, latency
		// or failing addresses must not hand out a fresh burst mid-run.
		clear(rs.buckets)
		rs.start = time.Time{}
		rs.model = nil
	}
	rs.cfg = cfg
	rs.fail = failSet(cfg.FailAddresses)
}

func (rs *realmState) config() RealmConfig {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.cfg
}

func (rs *realmState) snapshot(st *Stats, now time.Time, perAddress bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	st.RealmRequests, st.RealmAnswered, st.RealmThrottled, st.RealmFaults = rs.requests, rs.answered, rs.throttled, rs.faults
	st.RealmReasked = rs.reasked
	if perAddress {
		st.PerAddress = maps.Clone(rs.perAddress)
	}
	st.RealmTenants = make(map[string]RealmTenantStats, len(rs.perTenant))
	for k, v := range rs.perTenant {
		st.RealmTenants[k] = *v
	}
	st.RealmRate, _ = rs.rateAt(now)
	if !rs.start.IsZero() {
		t := rs.start
		st.RealmScheduleStart = &t
	}
}

// tenantStats returns the tenant's counters, creating them.
func (rs *realmState) tenantStats(tenant string) *RealmTenantStats {
	ts := rs.perTenant[tenant]
	if ts == nil {
		ts = &RealmTenantStats{}
		rs.perTenant[tenant] = ts
	}
	return ts
}

// countOnly records a request that is refused before the model sees it.
func (rs *realmState) countOnly(addr, tenant string) {
	rs.mu.Lock()
	rs.requests++
	if addr != "" {
		rs.perAddress[addr]++
		rs.tenantStats(tenant).Requests++
	}
	rs.mu.Unlock()
}

// decide counts a well-formed request of tenant and picks its outcome.
func (rs *realmState) decide(addr, tenant string, now time.Time) realmDecision {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.requests++
	rs.perAddress[addr]++
	ts := rs.tenantStats(tenant)
	ts.Requests++
	if rs.start.IsZero() {
		rs.start = now
	}
	cfg := rs.cfg
	var d realmDecision
	if !cfg.Latency.isZero() {
		// Drawn only when configured, so that the fault dice of a model
		// without latency stay what they always were.
		d.delay = cfg.Latency.draw(rs.rng)
	}
	v := rs.take(tenant, now)
	if !v.ok {
		rs.throttled++
		ts.Throttled++
		d.out, d.retry, d.retryHeader, d.throttleHTTP = outThrottled, v.retry, v.header, cfg.ThrottleHTTP
		return d
	}
	d.delay += v.latency
	if _, bad := rs.fail[addr]; bad {
		rs.faults++
		ts.Faults++
		d.out = outFailAddress
		return d
	}
	f := cfg.Faults
	u := rs.rng.Float64()
	for _, c := range []struct {
		p   float64
		out realmOutcome
	}{{f.Timeout, outTimeout}, {f.ServerError, outServerError}, {f.BadJSON, outBadJSON}, {f.Code4, outCode4}, {f.MissingFlag, outMissingFlag}} {
		if u < c.p {
			rs.faults++
			ts.Faults++
			d.out, d.hang = c.out, cfg.timeoutHang()
			if c.out == outServerError && rs.rng.IntN(2) == 1 {
				d.out = outUnavailable
			}
			return d
		}
		u -= c.p
	}
	rs.answered++
	ts.Answered++
	if _, again := rs.answeredOnce[addr]; again {
		rs.reasked++
	} else {
		rs.answeredOnce[addr] = struct{}{}
	}
	d.out = outAnswer
	return d
}

// realmTenant is the tenant a realm request counts against: the simulated
// tenant (by its ID) for its verified domains, else the address's domain.
func (s *Server) realmTenant(addr string) string {
	d := domainOf(addr)
	if _, ok := s.verified[d]; ok {
		return s.tenant.ID
	}
	return d
}

// pause waits d with no lock held. If the client hangs up or the server
// stops first, it aborts the handler (net/http then drops the connection
// without a response), so that a stopping server neither waits out long
// delays nor sends an empty 200 that looks like an answer.
func (s *Server) pause(r *http.Request, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return
	case <-r.Context().Done():
	case <-s.quit:
	}
	panic(http.ErrAbortHandler)
}

func (s *Server) serveRealm(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("x-ms-request-id", newRequestID())
	q := r.URL.Query()
	login := q.Get("user")
	addr := strings.ToLower(strings.TrimSpace(login))
	tenant := s.realmTenant(addr)
	if msg := realmParamError(r.Method, q.Get("api-version"), q.Get("checkForMicrosoftAccount"), addr); msg != "" {
		s.realm.countOnly(addr, tenant)
		writeRealmJSON(w, http.StatusBadRequest, appendRealmError(nil, "invalid_request", msg))
		return
	}
	d := s.realm.decide(addr, tenant, s.now())
	if d.delay > 0 {
		s.pause(r, d.delay)
	}
	switch d.out {
	case outThrottled:
		if d.throttleHTTP {
			if d.retryHeader {
				h.Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(d.retry.Seconds())))))
			}
			writeRealmJSON(w, http.StatusTooManyRequests, appendRealmError(nil, "too_many_requests", "Too many requests; retry later."))
			return
		}
		writeRealmJSON(w, http.StatusOK, s.realmBody(login, addr, 2, true))
	case outFailAddress, outServerError:
		writeRealmJSON(w, http.StatusInternalServerError, appendRealmError(nil, "server_error", "An internal error occurred."))
	case outUnavailable:
		writeRealmJSON(w, http.StatusServiceUnavailable, appendRealmError(nil, "temporarily_unavailable", "The service is temporarily unavailable."))
	case outTimeout:
		s.pause(r, d.hang)
		writeRealmJSON(w, http.StatusGatewayTimeout, appendRealmError(nil, "timeout", "The request timed out."))
	case outBadJSON:
		b := s.realmBody(login, addr, s.realmCode(addr), true)
		writeRealmJSON(w, http.StatusOK, b[:len(b)/2])
	case outCode4:
		writeRealmJSON(w, http.StatusOK, s.realmBody(login, addr, 4, true))
	case outMissingFlag:
		writeRealmJSON(w, http.StatusOK, s.realmBody(login, addr, 0, false))
	default:
		writeRealmJSON(w, http.StatusOK, s.realmBody(login, addr, s.realmCode(addr), true))
	}
}

func realmParamError(method, apiVersion, check, addr string) string {
	switch {
	case method != http.MethodGet:
		return "Only GET is supported."
	case apiVersion != "2.1":
		return "Unsupported or missing api-version '" + apiVersion + "'; expected 2.1."
	case !strings.EqualFold(check, "true"):
		return "checkForMicrosoftAccount must be true."
	case addr == "":
		return "The 'user' parameter is required."
	}
	return ""
}

// realmCode is the truthful MicrosoftAccount value: 0 when the ground truth
// has a consumer account for the address, 1 otherwise.
func (s *Server) realmCode(addr string) int {
	if _, ok := s.consumers[addr]; ok && !s.renamed.has(addr) {
		return 0
	}
	return 1
}

// realmBody renders the service's JSON. withFlag false drops
// IsMicrosoftAccountSet and MicrosoftAccount, as the service does when it
// skipped the check.
func (s *Server) realmBody(login, addr string, code int, withFlag bool) []byte {
	domain := domainOf(addr)
	_, managed := s.verified[domain]
	b := make([]byte, 0, 320)
	if managed {
		b = append(b, `{"NameSpaceType":"Managed","Login":`...)
	} else {
		b = append(b, `{"NameSpaceType":"Unknown","Login":`...)
	}
	b = appendJSONString(b, login)
	b = append(b, `,"DomainName":`...)
	b = appendJSONString(b, domain)
	if managed {
		b = append(b, `,"FederationBrandName":`...)
		b = appendJSONString(b, s.tenant.Name)
		b = append(b, `,"TenantBrandingInfo":null`...)
	}
	b = append(b, `,"cloud_instance_name":"microsoftonline.com","IsViral":false`...)
	if withFlag {
		b = append(b, `,"IsMicrosoftAccountSet":true,"MicrosoftAccount":`...)
		b = strconv.AppendInt(b, int64(code), 10)
	}
	return append(b, '}')
}

func appendRealmError(b []byte, code, desc string) []byte {
	b = append(b, `{"error":`...)
	b = appendJSONString(b, code)
	b = append(b, `,"error_description":`...)
	b = appendJSONString(b, desc)
	return append(b, '}')
}

func writeRealmJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
