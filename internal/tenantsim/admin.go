package tenantsim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// serveAdminStats answers GET /_sim/stats with Stats as JSON, so that
// out-of-process tests can read what the simulator saw. With
// ?per_address=false it leaves PerAddress out: a benchmark polling every
// second would otherwise copy and encode a map of every address asked.
func (s *Server) serveAdminStats(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		adminError(w, http.StatusMethodNotAllowed, "use GET")
		return
	}
	writeJSON(w, http.StatusOK, s.stats(r.URL.Query().Get("per_address") != "false"))
}

// serveAdminRealm answers GET /_sim/realm with the current RealmConfig and
// replaces it on PUT. The PUT body is a whole RealmConfig (absent fields are
// zero) with durations as Go duration strings or integer nanoseconds; unknown
// fields and out-of-range values are refused with 400.
func (s *Server) serveAdminRealm(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, s.realm.config())
	case http.MethodPut:
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 16<<20))
		if err != nil {
			adminError(w, http.StatusBadRequest, fmt.Sprintf("read body: %v", err))
			return
		}
		var cfg RealmConfig
		if err := json.Unmarshal(body, &cfg); err != nil {
			adminError(w, http.StatusBadRequest, fmt.Sprintf("decode realm config: %v", err))
			return
		}
		if err := cfg.Validate(); err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		s.SetRealm(cfg)
		writeJSON(w, http.StatusOK, cfg)
	default:
		adminError(w, http.StatusMethodNotAllowed, "use GET or PUT")
	}
}

// graphFaults is the body of /_sim/graph.
type graphFaults struct {
	FailAfterPages int64 `json:"fail_after_pages"`
}

// serveAdminGraph reads (GET) or replaces (PUT) the Graph outage switch: with
// fail_after_pages > 0, users pages after that many served pages answer 500;
// 0 ends the outage.
func (s *Server) serveAdminGraph(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		s.graph.mu.Lock()
		f := graphFaults{FailAfterPages: s.graph.failAfter}
		s.graph.mu.Unlock()
		writeJSON(w, http.StatusOK, f)
	case http.MethodPut:
		var f graphFaults
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil || f.FailAfterPages < 0 {
			adminError(w, http.StatusBadRequest, fmt.Sprintf("want {\"fail_after_pages\": n ≥ 0}: %v", err))
			return
		}
		s.graph.setFailAfter(f.FailAfterPages)
		writeJSON(w, http.StatusOK, f)
	default:
		adminError(w, http.StatusMethodNotAllowed, "use GET or PUT")
	}
}

func adminError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
