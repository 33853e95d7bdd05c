package httpapi

// The server API: what a back end may ask of and do to any client,
// behind the admin secret (or the publish secret). Every route is under
// /api/ and answers JSON; docs/protocol.md, "The server API", is the
// contract.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/cometbox/cometbox/pkg/cutoff"
	"github.com/cometbox/cometbox/pkg/message"
	"github.com/cometbox/cometbox/pkg/poll"
	"github.com/cometbox/cometbox/pkg/presence"
	"github.com/cometbox/cometbox/pkg/queue"
	"github.com/cometbox/cometbox/pkg/token"
)

// Clients shows and deletes clients' queues; *queue.Queue implements it.
type Clients interface {
	Inspect(ctx context.Context, client string) (queue.Info, error)
	Delete(ctx context.Context, client string) (existed bool, err error)
}

// Cutoff disconnects clients and checks tokens against what a disconnect
// revoked; *cutoff.Cutoff implements it.
type Cutoff interface {
	Disconnect(ctx context.Context, client string, refuseUntil time.Time) (cutoff.Result, error)
	Check(ctx context.Context, client string, exp time.Time) error
}

// Presence says who is online; *presence.Presence implements it.
type Presence interface {
	Lookup(ctx context.Context, clients []string) ([]presence.State, error)
	List(ctx context.Context, prefix string, limit int) ([]presence.State, error)
}

// MaxPresenceClients is the most clients one GET /api/presence asks
// about.
const MaxPresenceClients = 100

// apiTimeout bounds the Redis work of one server API call, detached from
// the caller hanging up: a delete or disconnect is done whole or not.
const apiTimeout = 5 * time.Second

// Errors of the server API.
var (
	errAdminUnauthorized = errors.New("missing or wrong admin secret")
	errTooManyClients    = errors.New("too many clients")
	errInvalidRequest    = errors.New("invalid request")
	errPresenceOff       = errors.New("presence is off on this node")
)

// apiRoutes adds the server API to r.
func (h *Handler) apiRoutes(r chi.Router) {
	r.Route("/api", func(r chi.Router) {
		r.Use(h.authorizeAPI)
		r.Get("/presence", h.apiPresence)
		r.Get("/clients/{client}", h.apiInspect)
		r.Delete("/clients/{client}", h.apiDelete)
		r.Post("/clients/{client}/disconnect", h.apiDisconnect)
	})
}

// authorizeAPI refuses browsers, secrets in the URL and, when the node
// has an admin secret (else a publish secret), anyone without it.
func (h *Handler) authorizeAPI(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h.checkAPI(r); err != nil {
			h.writeError(w, r, jsonFormat, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (h *Handler) checkAPI(r *http.Request) error {
	if r.Header.Get("Origin") != "" {
		return errCrossOrigin
	}
	if r.URL.RawQuery != "" {
		if q := r.URL.Query(); q.Has("secret") || q.Has("token") {
			return errSecretInQuery
		}
	}
	secrets := h.cfg.AdminSecrets
	if len(secrets) == 0 {
		secrets = h.cfg.PublishSecrets
	}
	if len(secrets) == 0 {
		return nil
	}
	if got, ok := bearer(r); !ok || !anySecret(got, secrets) {
		return errAdminUnauthorized
	}
	return nil
}

// apiContext is the context of a server API call's Redis work.
func apiContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(r.Context()), apiTimeout)
}

// pathClient reads and checks the {client} of the route, which answers
// not found unless served (the node has what the route needs). chi
// routes on the path as sent when it has escapes, and hands the
// parameter over undecoded: "user%3A42", as PHP's rawurlencode writes
// "user:42", is decoded here.
func pathClient(r *http.Request, served bool) (string, error) {
	client := chi.URLParam(r, "client")
	if c, err := url.PathUnescape(client); err == nil {
		client = c
	}
	if err := message.CheckClient(client); err != nil {
		return "", err
	}
	if !served {
		return "", errNotFound
	}
	return client, nil
}

// presenceJSON is one client's presence in an answer, in unix ms: since
// when it is online, or, when it is offline, when it was last seen (left
// out when not known).
type presenceJSON struct {
	Client   string `json:"client"`
	Online   bool   `json:"online"`
	Since    *int64 `json:"since,omitempty"`
	LastSeen *int64 `json:"last_seen,omitempty"`
}

func toPresenceJSON(st presence.State) presenceJSON {
	out := presenceJSON{Client: st.Client, Online: st.Online}
	ms := func(t time.Time) *int64 {
		v := t.UnixMilli()
		return &v
	}
	switch {
	case st.Online:
		out.Since = ms(st.Since)
	case !st.LastSeen.IsZero():
		out.LastSeen = ms(st.LastSeen)
	}
	return out
}

func presenceJSONs(states []presence.State) []presenceJSON {
	out := make([]presenceJSON, len(states))
	for i, st := range states {
		out[i] = toPresenceJSON(st)
	}
	return out
}

// apiPresence handles GET /api/presence?client=a&client=b.
func (h *Handler) apiPresence(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Presence == nil {
		h.writeError(w, r, jsonFormat, errPresenceOff)
		return
	}
	clients := r.URL.Query()["client"]
	var err error
	switch {
	case len(clients) == 0:
		err = fmt.Errorf("name one client or more: ?client=a&client=b: %w", errInvalidRequest)
	case len(clients) > MaxPresenceClients:
		err = fmt.Errorf("%d clients asked about; at most %d a request: %w", len(clients), MaxPresenceClients, errTooManyClients)
	}
	for i, c := range clients {
		if err != nil {
			break
		}
		if e := message.CheckClient(c); e != nil {
			err = fmt.Errorf("client[%d]: %w", i, e)
		}
	}
	if err != nil {
		h.writeError(w, r, jsonFormat, err)
		return
	}
	ctx, cancel := apiContext(r)
	defer cancel()
	states, err := h.cfg.Presence.Lookup(ctx, clients)
	if err != nil {
		h.m.RedisError("api")
		h.writeError(w, r, jsonFormat, err)
		return
	}
	writeJSON(w, map[string]any{"clients": presenceJSONs(states)})
}

// apiInspect handles GET /api/clients/{client}: the client's queue, and
// whether it is online.
func (h *Handler) apiInspect(w http.ResponseWriter, r *http.Request) {
	client, err := pathClient(r, h.cfg.Clients != nil)
	if err != nil {
		h.writeError(w, r, jsonFormat, err)
		return
	}
	ctx, cancel := apiContext(r)
	defer cancel()
	info, err := h.cfg.Clients.Inspect(ctx, client)
	var states []presence.State
	if err == nil && h.cfg.Presence != nil {
		states, err = h.cfg.Presence.Lookup(ctx, []string{client})
	}
	if err != nil {
		h.m.RedisError("api")
		h.writeError(w, r, jsonFormat, err)
		return
	}
	out := struct {
		Client   string `json:"client"`
		Epoch    string `json:"epoch"`
		Length   int    `json:"length"`
		First    uint64 `json:"first_id"`
		Last     uint64 `json:"last_id"`
		Online   *bool  `json:"online,omitempty"`
		Since    *int64 `json:"since,omitempty"`
		LastSeen *int64 `json:"last_seen,omitempty"`
	}{Client: client, Epoch: info.Epoch, Length: info.Length, First: info.First(), Last: info.Last}
	if len(states) == 1 {
		p := toPresenceJSON(states[0])
		out.Online, out.Since, out.LastSeen = &p.Online, p.Since, p.LastSeen
	}
	writeJSON(w, out)
}

// apiDelete handles DELETE /api/clients/{client}: the client's queue and
// sequence are deleted; its next poll with a cursor is answered with
// Cometbox-Reset.
func (h *Handler) apiDelete(w http.ResponseWriter, r *http.Request) {
	client, err := pathClient(r, h.cfg.Clients != nil)
	if err != nil {
		h.writeError(w, r, jsonFormat, err)
		return
	}
	ctx, cancel := apiContext(r)
	defer cancel()
	existed, err := h.cfg.Clients.Delete(ctx, client)
	if err != nil {
		h.m.RedisError("api")
		h.writeError(w, r, jsonFormat, err)
		return
	}
	writeJSON(w, map[string]any{"client": client, "deleted": existed})
}

// disconnectRequest is the optional body of a disconnect.
type disconnectRequest struct {
	// RefuseTokens refuses the client's tokens given before now.
	RefuseTokens bool `json:"refuse_tokens"`
	// TokenTTL is the lifetime, in seconds, the back end mints the
	// client's tokens for; default: the node's -token-max-ttl.
	TokenTTL *int64 `json:"token_ttl"`
}

// maxTokenTTL bounds the token_ttl of a disconnect: ten years.
const maxTokenTTL = 10 * 365 * 24 * 3600

// apiDisconnect handles POST /api/clients/{client}/disconnect: every held
// poll and stream of the client, on every node, is ended at once; with
// refuse_tokens, its tokens given before now are refused from now on.
func (h *Handler) apiDisconnect(w http.ResponseWriter, r *http.Request) {
	client, err := pathClient(r, h.cfg.Cutoff != nil)
	var req disconnectRequest
	if err == nil {
		req, err = h.readDisconnect(w, r)
	}
	var refuseUntil time.Time
	if err == nil && req.RefuseTokens {
		refuseUntil, err = h.refuseUntil(req.TokenTTL)
	}
	if err != nil {
		h.writeError(w, r, jsonFormat, err)
		return
	}
	ctx, cancel := apiContext(r)
	defer cancel()
	res, err := h.cfg.Cutoff.Disconnect(ctx, client, refuseUntil)
	if err != nil {
		h.m.RedisError("api")
		h.writeError(w, r, jsonFormat, err)
		return
	}
	var until *int64
	if !res.RefusedUntil.IsZero() {
		u := res.RefusedUntil.Unix()
		until = &u
	}
	writeJSON(w, map[string]any{"client": client, "nodes": res.Nodes, "tokens_refused_until": until})
}

// readDisconnect reads a disconnect's body: none, or a JSON object.
func (h *Handler) readDisconnect(w http.ResponseWriter, r *http.Request) (disconnectRequest, error) {
	var req disconnectRequest
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4096))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return req, err
		}
		return req, fmt.Errorf("reading the body: %v: %w", err, message.ErrMalformed)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return req, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("want {\"refuse_tokens\": true, \"token_ttl\": SECONDS} or no body: %v: %w", err, errInvalidRequest)
	}
	if dec.More() {
		return req, fmt.Errorf("data after the JSON object: %w", errInvalidRequest)
	}
	if req.TokenTTL != nil && !req.RefuseTokens {
		return req, fmt.Errorf("token_ttl without refuse_tokens: %w", errInvalidRequest)
	}
	return req, nil
}

// refuseUntil is the expiry up to which a disconnect refuses tokens:
// now plus the lifetime the back end mints them for, by default the
// longest a node accepts.
func (h *Handler) refuseUntil(ttl *int64) (time.Time, error) {
	var d time.Duration
	switch {
	case ttl != nil && (*ttl < 1 || *ttl > maxTokenTTL):
		return time.Time{}, fmt.Errorf("token_ttl %d: want 1 to %d seconds: %w", *ttl, maxTokenTTL, errInvalidRequest)
	case ttl != nil:
		d = time.Duration(*ttl) * time.Second
	case h.cfg.Tokens.MaxTTL > 0:
		d = h.cfg.Tokens.MaxTTL
	default:
		return time.Time{}, fmt.Errorf("this node bounds no token lifetime (-token-max-ttl 0): give token_ttl, the lifetime in seconds the back end mints tokens for: %w", errInvalidRequest)
	}
	return time.Now().Add(d), nil
}

// tokenCheck returns the check that a client's token, which Verify
// accepted, was not revoked by a disconnect since; nil when the node
// does not check (no tokens, or no cutoff). Its Redis failures wrap
// poll.ErrUnavailable.
func (h *Handler) tokenCheck(client, tok string) func(context.Context) error {
	if h.cfg.Cutoff == nil || len(h.cfg.Tokens.Secrets) == 0 {
		return nil
	}
	exp, ok := token.Expiry(tok)
	if !ok {
		return nil
	}
	return func(ctx context.Context) error {
		err := h.cfg.Cutoff.Check(ctx, client, exp)
		if err != nil && !errors.Is(err, cutoff.ErrRevoked) {
			return fmt.Errorf("%w: %w", poll.ErrUnavailable, err)
		}
		return err
	}
}

// demoPresence handles GET /demo/presence in demo mode: the demo's
// clients that are online (on a node with a secret, only those whose id
// starts with DemoClientPrefix).
func (h *Handler) demoPresence(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Presence == nil {
		h.writeError(w, r, jsonFormat, errPresenceOff)
		return
	}
	prefix := ""
	if len(h.cfg.PublishSecrets) > 0 || len(h.cfg.Tokens.Secrets) > 0 {
		prefix = DemoClientPrefix
	}
	ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
	defer cancel()
	states, err := h.cfg.Presence.List(ctx, prefix, 50)
	if err != nil {
		h.m.RedisError("api")
		h.writeError(w, r, jsonFormat, err)
		return
	}
	writeJSON(w, map[string]any{"online": presenceJSONs(states)})
}

// writeJSON answers 200 with v as JSON.
func writeJSON(w http.ResponseWriter, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	_, _ = w.Write(append(body, '\n'))
}
