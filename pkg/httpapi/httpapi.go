// Package httpapi is the HTTP face of a cometbox node: the chi routes for
// publishing, polling, health and metrics, the mapping of every error to
// a status code and a stable error code, and the middleware that logs and
// counts requests.
//
// The contract it implements is docs/protocol.md. A Handler is safe for
// concurrent use.
package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/cometbox/cometbox/pkg/message"
	"github.com/cometbox/cometbox/pkg/metrics"
	"github.com/cometbox/cometbox/pkg/poll"
	"github.com/cometbox/cometbox/pkg/token"
)

// Store is what the handler needs of the message store; *queue.Queue
// implements it.
type Store interface {
	// Publish enqueues a validated batch.
	Publish(ctx context.Context, batch message.Batch) (message.Published, error)
	// Ack acknowledges a client's messages up to a cursor.
	Ack(ctx context.Context, client string, ack message.Cursor) (reset bool, err error)
}

// Config is what the handler needs besides its collaborators.
type Config struct {
	// PublishSecrets, when not empty, are the secrets POST /publish
	// accepts as "Authorization: Bearer": any one of them, so that a
	// secret can be rotated without an outage. Empty: publishing is open.
	PublishSecrets []string
	// Tokens, when it has secrets, checks the token that GET /poll,
	// /stream and POST /ack then require (package token); its first
	// secret mints the demo's tokens. No secrets: no tokens needed.
	Tokens token.Verifier
	// AdminSecrets, when not empty, are the secrets the server API
	// (/api/, api.go) accepts as "Authorization: Bearer"; empty: it
	// accepts the publish secrets (and is open when there are none).
	AdminSecrets []string
	// Clients serves the server API's inspect and delete. Nil: they
	// answer 404.
	Clients Clients
	// Cutoff serves the server API's disconnect and, with tokens,
	// refuses those a disconnect revoked. Nil: no disconnect, and no
	// check.
	Cutoff Cutoff
	// Presence serves GET /api/presence, the presence in GET
	// /api/clients/{client} and the demo's. Nil: presence is off (501).
	Presence Presence
	// Groups serves the membership routes under /groups (groups.go).
	// Nil: they answer 404.
	Groups Groups
	// MaxBodyBytes bounds a publish body. Default: 1 MiB.
	MaxBodyBytes int64
	// Limits bound what a publish may carry.
	Limits message.Limits
	// PollTimeout is the poll's wait; the poll's write deadline is set a
	// margin above it. Default: 25s.
	PollTimeout time.Duration
	// PublishTimeout bounds the Redis work of one publish, detached from
	// the publisher hanging up. Default: 5s.
	PublishTimeout time.Duration
	// Heartbeat is how often an idle event stream gets a ping event.
	// Default: 15s.
	Heartbeat time.Duration
	// CORSOrigins lists the origins (scheme://host[:port]) whose pages may
	// read /poll, /stream and /ack; "*" allows any. Default: none.
	CORSOrigins []string
	// Assets holds the browser client (cometbox.js, cometbox.mjs,
	// cometbox.d.ts) and, for demo mode, demo/. May be nil.
	Assets fs.FS
	// Park lets a waiting long-poll give its HTTP handler back (see
	// park.go); the caller must then serve Handler.Returned with a second
	// http.Server. Default: false (polls wait in their handler).
	Park bool
	// IdleTimeout is how long a parked connection waits for the browser's
	// next request after its answer. Default: 120s.
	IdleTimeout time.Duration
	// ReadHeaderTimeout is how long the browser may then take to send the
	// rest of that request's head (as http.Server's). Default: 5s.
	ReadHeaderTimeout time.Duration
	// BaseContext is the context of re-polls read on parked connections
	// (the servers' BaseContext for every other request): cancelling it
	// aborts their Redis calls. Default: context.Background().
	BaseContext context.Context
	// Demo serves the demo page at /demo/ with its demo-only publish and
	// token routes, which need no secret. When the node has a publish or
	// token secret, they serve only clients whose id starts with
	// DemoClientPrefix, so that the demo never opens what a secret closes.
	Demo bool
	// Ready reports whether the node can serve (Redis answers, wake-ups
	// flow); /readyz answers 503 with its error otherwise.
	Ready func(ctx context.Context) error
	// Metrics serves GET /metrics when not nil.
	Metrics http.Handler
	// SeparateAdmin serves /readyz and /metrics only from Admin(), for a
	// listener of their own, and not from the public handler; /healthz
	// stays on both, for balancers that probe the public port. Default:
	// false (every route on the public handler).
	SeparateAdmin bool
	// Log receives request and error logs. Default: discard.
	Log *slog.Logger
	// M counts requests, deliveries and publishes. May be nil.
	M *metrics.Metrics
}

// Handler serves the node's HTTP API.
type Handler struct {
	store    Store
	poller   *poll.Poller
	cfg      Config
	log      *slog.Logger
	m        *metrics.Metrics
	mux      chi.Router
	assets   map[string]asset
	returned *returnedConns
	ids      *requestIDs
	dates    httpDates              // of answers written by park.go and next.go
	notReady atomic.Pointer[string] // why /readyz last failed; "" once ready again
	leaving  atomic.Bool            // Leave was called

	// rePoll is what the router runs for GET /poll, without the routing:
	// re-polls read on parked connections (next.go) go straight to it.
	rePoll http.Handler
}

// New returns the node's HTTP handler.
func New(store Store, poller *poll.Poller, cfg Config) *Handler {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.PollTimeout <= 0 {
		cfg.PollTimeout = 25 * time.Second
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 5 * time.Second
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Ready == nil {
		cfg.Ready = func(context.Context) error { return nil }
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 120 * time.Second
	}
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = 5 * time.Second
	}
	if cfg.BaseContext == nil {
		cfg.BaseContext = context.Background()
	}
	h := &Handler{store: store, poller: poller, cfg: cfg, log: cfg.Log, m: cfg.M,
		assets: loadAssets(cfg.Assets), returned: newReturnedConns(), ids: newRequestIDs()}

	r := chi.NewRouter()
	r.Use(middleware.Recoverer, h.observe, secureHeaders, middleware.GetHead)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		h.writeError(w, r, jsonFormat, errNotFound)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		h.writeError(w, r, jsonFormat, errMethodNotAllowed)
	})
	r.Post("/publish", h.publish)
	h.groupRoutes(r)
	h.apiRoutes(r)
	r.Group(func(r chi.Router) { // the routes browsers call, possibly from other origins
		r.Use(h.cors)
		r.Get("/poll", h.poll)
		r.Get("/stream", h.stream)
		r.Post("/ack", h.ack)
		r.Options("/poll", h.preflight)
		r.Options("/stream", h.preflight)
		r.Options("/ack", h.preflight)
	})
	for name := range h.assets {
		r.Get(name, h.serveAsset)
	}
	if cfg.Demo && cfg.Assets != nil {
		r.Get("/demo", http.RedirectHandler("/demo/", http.StatusFound).ServeHTTP)
		r.Handle("/demo/*", demoFiles(cfg.Assets))
		r.Post("/demo/publish", h.demoPublish)
		r.Get("/demo/token", h.demoToken)
		r.Get("/demo/presence", h.demoPresence)
	}
	r.Get("/healthz", h.healthz)
	if !cfg.SeparateAdmin {
		h.adminRoutes(r)
	}
	h.mux = r
	h.rePoll = middleware.Recoverer(h.observeRoute("/poll", secureHeaders(h.cors(http.HandlerFunc(h.poll)))))
	return h
}

// Leave takes the node out of its balancers' rotation, the first step of
// a drain: /readyz answers 503 draining, and every answer asks its
// browser to reconnect (Connection: close), so that its next request goes
// through the balancer to a node still in rotation. Everything is served
// as usual meanwhile (a new poll is held, as on any node) until the
// Poller drains.
func (h *Handler) Leave() { h.leaving.Store(true) }

// closing reports whether answers should close their connection: the
// node is leaving or draining.
func (h *Handler) closing() bool { return h.leaving.Load() || h.poller.Draining() }

// adminRoutes adds the operator's routes to r.
func (h *Handler) adminRoutes(r chi.Router) {
	r.Get("/readyz", h.readyz)
	if h.cfg.Metrics != nil {
		r.Method(http.MethodGet, "/metrics", h.cfg.Metrics)
	}
}

// Admin returns the handler of the operator's routes (/healthz, /readyz,
// /metrics), for a listener of their own; see Config.SeparateAdmin.
func (h *Handler) Admin() http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.Recoverer, h.observe, secureHeaders, middleware.GetHead)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		h.writeError(w, r, jsonFormat, errNotFound)
	})
	r.Get("/healthz", h.healthz)
	h.adminRoutes(r)
	return r
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mux.ServeHTTP(w, r)
}

// observe gives each request an id, and counts and logs it once
// answered, labelled by its route pattern. It allocates as little as it
// can: it runs for every poll.
func (h *Handler) observe(next http.Handler) http.Handler { return h.observeRoute("", next) }

// observeRoute is observe for a handler that is not behind the router:
// route labels its requests.
func (h *Handler) observeRoute(route string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if len(id) == 0 || len(id) > 64 || !message.ValidClient(id) {
			id = h.ids.next()
		}
		w.Header()["X-Request-Id"] = []string{id}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)

		label := route
		if label == "" {
			label = "other"
			if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
				label = rc.RoutePattern()
			}
		}
		h.m.HTTPRequest(label, sw.code())
		if h.log.Enabled(r.Context(), slog.LevelDebug) {
			h.requestLogger(id, r).LogAttrs(r.Context(), slog.LevelDebug, "request",
				slog.Int("status", sw.code()), slog.Duration("took", time.Since(start)))
		}
	})
}

// requestLogger is the logger of one request, made only when something
// is logged about it.
func (h *Handler) requestLogger(id string, r *http.Request) *slog.Logger {
	return h.log.With("req", id, "method", r.Method, "path", r.URL.Path)
}

// logger returns the logger of the request whose answer w is.
func (h *Handler) logger(w http.ResponseWriter, r *http.Request) *slog.Logger {
	return h.requestLogger(w.Header().Get("X-Request-Id"), r)
}

// requestIDs makes request ids: a random prefix per process and a
// counter, unique without a system call per request.
type requestIDs struct {
	prefix string
	n      atomic.Uint64
}

func newRequestIDs() *requestIDs {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return &requestIDs{prefix: hex.EncodeToString(b[:]) + "-"}
}

func (ids *requestIDs) next() string {
	return ids.prefix + strconv.FormatUint(ids.n.Add(1), 36)
}

// secureHeaders sets the headers every answer carries.
func secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setSecureHeaders(w.Header())
		next.ServeHTTP(w, r)
	})
}

// Values of headers set on every answer, shared by all answers rather
// than allocated for each: a header map never changes a slice it holds in
// place (Set replaces it, Add appends to a slice already full).
var (
	noStore      = []string{"no-store"}
	noSniff      = []string{"nosniff"}
	noReferrer   = []string{"no-referrer"}
	jsonType     = []string{"application/json"}
	varyOrigin   = []string{"Origin"}
	exposedNames = []string{exposed}
)

func setSecureHeaders(h http.Header) {
	h["Cache-Control"] = noStore
	h["X-Content-Type-Options"] = noSniff
	h["Referrer-Policy"] = noReferrer
}

// statusWriter remembers the status code; Unwrap keeps
// http.ResponseController working through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}
