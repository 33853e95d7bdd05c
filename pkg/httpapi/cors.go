package httpapi

import (
	"fmt"
	"net/http"
	"slices"
)

// exposed are the answer headers a cross-origin page may read.
const exposed = "Cometbox-Cursor, Cometbox-Gap, Cometbox-Reset, Retry-After, X-Request-Id"

// cors answers cross-origin reads of the browser routes for the
// configured origins: the exact origin echoed, never credentials.
//
// A GET from an origin not listed is refused at once: browsers send
// Origin on a GET only when it crosses origins, and would throw the
// answer away, so holding the poll for the whole timeout would only waste
// the node (and look "connected" to the page). POSTs are left to the
// browser's own check: they carry Origin even within one origin, where a
// reverse proxy may have changed the Host the node sees.
func (h *Handler) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if origin := r.Header.Get("Origin"); origin != "" {
			hdr := w.Header()
			if len(hdr["Vary"]) == 0 {
				hdr["Vary"] = varyOrigin
			} else {
				hdr.Add("Vary", "Origin")
			}
			switch {
			case h.originAllowed(origin):
				hdr["Access-Control-Allow-Origin"] = []string{origin}
				hdr["Access-Control-Expose-Headers"] = exposedNames
			case r.Method == http.MethodGet && origin != "http://"+r.Host && origin != "https://"+r.Host:
				h.writeError(w, r, jsonFormat, fmt.Errorf("origin %q: %w", origin, errOriginNotAllowed))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// preflight answers OPTIONS for the browser routes.
func (h *Handler) preflight(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" || !h.originAllowed(origin) {
		h.writeError(w, r, jsonFormat, fmt.Errorf("origin %q: %w", origin, errOriginNotAllowed))
		return
	}
	hdr := w.Header()
	hdr.Set("Access-Control-Allow-Methods", "GET, POST")
	hdr.Set("Access-Control-Allow-Headers", "Authorization, Last-Event-ID")
	hdr.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) originAllowed(origin string) bool {
	return slices.Contains(h.cfg.CORSOrigins, origin) || slices.Contains(h.cfg.CORSOrigins, "*")
}
