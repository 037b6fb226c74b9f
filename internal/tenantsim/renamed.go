package tenantsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
)

// renamedSet is the consumer accounts whose owners renamed them since the
// tenant was generated: the realm service answers "none" for them.
type renamedSet struct {
	mu    sync.RWMutex
	addrs map[string]struct{}
}

func (r *renamedSet) set(addrs []string) {
	m := make(map[string]struct{}, len(addrs))
	for _, a := range addrs {
		if a = strings.ToLower(strings.TrimSpace(a)); a != "" {
			m[a] = struct{}{}
		}
	}
	r.mu.Lock()
	r.addrs = m
	r.mu.Unlock()
}

func (r *renamedSet) has(addr string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.addrs[addr]
	return ok
}

func (r *renamedSet) list() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.addrs))
	for a := range r.addrs {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// SetRenamed replaces the set of renamed consumer accounts.
func (s *Server) SetRenamed(addrs []string) { s.renamed.set(addrs) }

// Renamed lists the renamed consumer accounts, sorted.
func (s *Server) Renamed() []string { return s.renamed.list() }

// renamedBody is the JSON of /_sim/renamed.
type renamedBody struct {
	Addresses []string `json:"addresses"`
}

// serveAdminRenamed reads (GET) or replaces (PUT) the renamed consumer
// accounts: from then on the realm service answers that they have none.
func (s *Server) serveAdminRenamed(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, renamedBody{Addresses: s.Renamed()})
	case http.MethodPut:
		var b renamedBody
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&b); err != nil {
			adminError(w, http.StatusBadRequest, fmt.Sprintf("want {\"addresses\": [...]}: %v", err))
			return
		}
		s.SetRenamed(b.Addresses)
		writeJSON(w, http.StatusOK, renamedBody{Addresses: s.Renamed()})
	default:
		adminError(w, http.StatusMethodNotAllowed, "use GET or PUT")
	}
}

// WithRenamed is gt as it stands once the given consumer accounts are
// renamed.
func (gt GroundTruth) WithRenamed(addrs []string) GroundTruth {
	set := make(map[string]bool, len(addrs))
	for _, a := range addrs {
		set[strings.ToLower(strings.TrimSpace(a))] = true
	}
	out := gt
	out.Addresses = make([]TruthAddress, len(gt.Addresses))
	for i, a := range gt.Addresses {
		if set[a.Address] {
			a.ConsumerAccount = false
		}
		out.Addresses[i] = a
	}
	return out
}
