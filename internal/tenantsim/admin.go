package tenantsim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// serveAdminStats answers GET /_sim/stats with Stats as JSON, so that
// out-of-process tests can read what the simulator saw.
func (s *Server) serveAdminStats(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		adminError(w, http.StatusMethodNotAllowed, "use GET")
		return
	}
	writeJSON(w, http.StatusOK, s.Stats())
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

func adminError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
