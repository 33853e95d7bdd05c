package httpapi

import (
	"context"
	"io"
	"net/http"
	"time"
)

// healthz answers 200 while the process runs.
func (h *Handler) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok\n")
}

// readyz answers 200 while the node can serve: not draining, Redis
// answering, wake-ups flowing.
func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if h.closing() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "draining\n")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	err := h.cfg.Ready(ctx)
	h.logReadiness(err)
	if err != nil {
		// The reason names internal addresses: it is the log's, not the
		// public port's.
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "not ready\n")
		return
	}
	_, _ = io.WriteString(w, "ready\n")
}

// logReadiness logs why the node is not ready, and when it is again, once
// per change rather than at every probe of every balancer.
func (h *Handler) logReadiness(err error) {
	reason := ""
	if err != nil {
		reason = err.Error()
	}
	if prev := h.notReady.Swap(&reason); prev != nil && *prev == reason || prev == nil && reason == "" {
		return
	}
	if err != nil {
		h.log.Warn("not ready", "err", err)
	} else {
		h.log.Info("ready again")
	}
}
