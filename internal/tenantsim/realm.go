package tenantsim

import (
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
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
	mu           sync.Mutex
	cfg          RealmConfig
	fail         map[string]struct{}
	tokens       float64
	last         time.Time // zero: bucket untouched, hence full
	penaltyUntil time.Time
	rng          *rand.Rand

	requests, answered, throttled, faults int64
	perAddress                            map[string]int64
	// answeredOnce holds the addresses given a real answer; reasked counts
	// real answers given again (a check lost and asked again).
	answeredOnce map[string]struct{}
	reasked      int64
}

func (rs *realmState) init(cfg RealmConfig, seed int64) {
	rs.rng = rand.New(rand.NewPCG(uint64(seed), 0x4ea1))
	rs.perAddress = make(map[string]int64)
	rs.answeredOnce = make(map[string]struct{})
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

func (rs *realmState) set(cfg RealmConfig, now time.Time) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	old := rs.cfg
	if old.Rate != cfg.Rate || old.burst() != cfg.burst() || old.Penalty != cfg.Penalty {
		// A new throttle model starts from a full bucket and no penalty;
		// changing only faults or failing addresses must not hand out a
		// fresh burst mid-run.
		rs.tokens, rs.last, rs.penaltyUntil = cfg.burst(), now, time.Time{}
	}
	rs.cfg = cfg
	rs.fail = failSet(cfg.FailAddresses)
}

func (rs *realmState) config() RealmConfig {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.cfg
}

func (rs *realmState) snapshot(st *Stats) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	st.RealmRequests, st.RealmAnswered, st.RealmThrottled, st.RealmFaults = rs.requests, rs.answered, rs.throttled, rs.faults
	st.RealmReasked = rs.reasked
	st.PerAddress = make(map[string]int64, len(rs.perAddress))
	for k, v := range rs.perAddress {
		st.PerAddress[k] = v
	}
}

// countOnly records a request that is refused before the model sees it.
func (rs *realmState) countOnly(addr string) {
	rs.mu.Lock()
	rs.requests++
	if addr != "" {
		rs.perAddress[addr]++
	}
	rs.mu.Unlock()
}

// decide counts a well-formed request and picks its outcome. retry is the
// wait to advertise when throttled; hang is the timeout fault's duration.
func (rs *realmState) decide(addr string, now time.Time) (out realmOutcome, retry time.Duration, throttleHTTP bool, hang time.Duration) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.requests++
	rs.perAddress[addr]++
	cfg := rs.cfg
	if ok, wait := rs.take(now); !ok {
		rs.throttled++
		return outThrottled, wait, cfg.ThrottleHTTP, 0
	}
	if _, bad := rs.fail[addr]; bad {
		rs.faults++
		return outFailAddress, 0, false, 0
	}
	f := cfg.Faults
	u := rs.rng.Float64()
	for _, c := range []struct {
		p   float64
		out realmOutcome
	}{{f.Timeout, outTimeout}, {f.ServerError, outServerError}, {f.BadJSON, outBadJSON}, {f.Code4, outCode4}, {f.MissingFlag, outMissingFlag}} {
		if u < c.p {
			rs.faults++
			if c.out == outServerError && rs.rng.IntN(2) == 1 {
				return outUnavailable, 0, false, 0
			}
			return c.out, 0, false, cfg.timeoutHang()
		}
		u -= c.p
	}
	rs.answered++
	if _, again := rs.answeredOnce[addr]; again {
		rs.reasked++
	} else {
		rs.answeredOnce[addr] = struct{}{}
	}
	return outAnswer, 0, false, 0
}

// take applies the token bucket and the penalty window.
func (rs *realmState) take(now time.Time) (bool, time.Duration) {
	cfg := rs.cfg
	if cfg.Rate <= 0 {
		return true, 0
	}
	if now.Before(rs.penaltyUntil) {
		// Hammering during the penalty keeps the penalty alive.
		rs.penaltyUntil = now.Add(cfg.Penalty)
		return false, cfg.Penalty
	}
	burst := cfg.burst()
	if rs.last.IsZero() {
		rs.tokens = burst
	} else if el := now.Sub(rs.last); el > 0 {
		rs.tokens = min(burst, rs.tokens+el.Seconds()*cfg.Rate)
	}
	rs.last = now
	if rs.tokens >= 1 {
		rs.tokens--
		return true, 0
	}
	if cfg.Penalty > 0 {
		rs.penaltyUntil = now.Add(cfg.Penalty)
		return false, cfg.Penalty
	}
	return false, time.Duration((1 - rs.tokens) / cfg.Rate * float64(time.Second))
}

func (s *Server) serveRealm(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("x-ms-request-id", newRequestID())
	q := r.URL.Query()
	login := q.Get("user")
	addr := strings.ToLower(strings.TrimSpace(login))
	if msg := realmParamError(r.Method, q.Get("api-version"), q.Get("checkForMicrosoftAccount"), addr); msg != "" {
		s.realm.countOnly(addr)
		writeRealmJSON(w, http.StatusBadRequest, appendRealmError(nil, "invalid_request", msg))
		return
	}
	out, retry, throttleHTTP, hang := s.realm.decide(addr, s.now())
	switch out {
	case outThrottled:
		if throttleHTTP {
			h.Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(retry.Seconds())))))
			writeRealmJSON(w, http.StatusTooManyRequests, appendRealmError(nil, "too_many_requests", "Too many requests; retry later."))
			return
		}
		writeRealmJSON(w, http.StatusOK, s.realmBody(login, addr, 2, true))
	case outFailAddress, outServerError:
		writeRealmJSON(w, http.StatusInternalServerError, appendRealmError(nil, "server_error", "An internal error occurred."))
	case outUnavailable:
		writeRealmJSON(w, http.StatusServiceUnavailable, appendRealmError(nil, "temporarily_unavailable", "The service is temporarily unavailable."))
	case outTimeout:
		t := time.NewTimer(hang)
		defer t.Stop()
		select {
		case <-t.C:
			writeRealmJSON(w, http.StatusGatewayTimeout, appendRealmError(nil, "timeout", "The request timed out."))
		case <-r.Context().Done():
		case <-s.quit:
		}
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
