package httpapi

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"

	"github.com/cometbox/cometbox/pkg/cutoff"
	"github.com/cometbox/cometbox/pkg/message"
	"github.com/cometbox/cometbox/pkg/poll"
	"github.com/cometbox/cometbox/pkg/queue"
	"github.com/cometbox/cometbox/pkg/token"
)

// Errors detected by this package.
var (
	errNotFound         = errors.New("no such route")
	errMethodNotAllowed = errors.New("method not allowed on this route")
	errUnsupportedType  = errors.New("unsupported content type")
	errUnauthorized     = errors.New("missing or wrong publish secret")
	errSecretInQuery    = errors.New("secret in the query string")
	errCrossOrigin      = errors.New("cross-origin publish refused")
	errOriginNotAllowed = errors.New("origin not allowed")
	errDemoClient       = errors.New("not a demo client")
	errConflictingKeys  = errors.New("conflicting idempotency keys")
)

// format is how an error body is written.
type format int

const (
	jsonFormat format = iota
	xmlFormat
)

// apiError is what the client sees of an error.
type apiError struct {
	status int
	code   string // stable, for clients to branch on
}

// classify maps an error to its status and code. It is the only place
// where that mapping lives.
func classify(err error) apiError {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return apiError{http.StatusRequestEntityTooLarge, "body_too_large"}
	case errors.Is(err, message.ErrMessageTooLarge):
		return apiError{http.StatusRequestEntityTooLarge, "message_too_large"}
	case errors.Is(err, message.ErrTooManyMessages):
		return apiError{http.StatusRequestEntityTooLarge, "too_many_messages"}
	case errors.Is(err, errTooManyMembers):
		return apiError{http.StatusRequestEntityTooLarge, "too_many_members"}
	case errors.Is(err, message.ErrMalformed):
		return apiError{http.StatusBadRequest, "malformed"}
	case errors.Is(err, message.ErrInvalidClient):
		return apiError{http.StatusBadRequest, "invalid_client"}
	case errors.Is(err, message.ErrInvalidGroup):
		return apiError{http.StatusBadRequest, "invalid_group"}
	case errors.Is(err, message.ErrInvalidJSON):
		return apiError{http.StatusBadRequest, "invalid_json"}
	case errors.Is(err, message.ErrInvalidCursor):
		return apiError{http.StatusBadRequest, "invalid_cursor"}
	case errors.Is(err, message.ErrInvalidIdempotencyKey), errors.Is(err, errConflictingKeys):
		return apiError{http.StatusBadRequest, "invalid_idempotency_key"}
	case errors.Is(err, message.ErrEmpty):
		return apiError{http.StatusBadRequest, "empty_batch"}
	case errors.Is(err, message.ErrInvalid):
		return apiError{http.StatusBadRequest, "invalid_message"}
	case errors.Is(err, message.ErrNotDurable):
		return apiError{http.StatusServiceUnavailable, "not_durable"}
	case errors.Is(err, queue.ErrGroupBusy):
		return apiError{http.StatusServiceUnavailable, "group_busy"}
	case errors.Is(err, message.ErrIdempotencyConflict):
		return apiError{http.StatusConflict, "idempotency_conflict"}
	case errors.Is(err, errUnsupportedType):
		return apiError{http.StatusUnsupportedMediaType, "unsupported_media_type"}
	case errors.Is(err, errUnauthorized), errors.Is(err, errAdminUnauthorized):
		return apiError{http.StatusUnauthorized, "unauthorized"}
	case errors.Is(err, errSecretInQuery):
		return apiError{http.StatusUnauthorized, "secret_in_query"}
	case errors.Is(err, errCrossOrigin), errors.Is(err, errOriginNotAllowed):
		return apiError{http.StatusForbidden, "cross_origin"}
	case errors.Is(err, errDemoClient):
		return apiError{http.StatusForbidden, "demo_client"}
	case errors.Is(err, token.ErrMissing):
		return apiError{http.StatusUnauthorized, "token_missing"}
	case errors.Is(err, token.ErrExpired):
		return apiError{http.StatusForbidden, "token_expired"}
	case errors.Is(err, token.ErrMalformed), errors.Is(err, token.ErrSignature), errors.Is(err, token.ErrTooLong):
		return apiError{http.StatusForbidden, "token_invalid"}
	case errors.Is(err, cutoff.ErrRevoked):
		return apiError{http.StatusForbidden, "token_revoked"}
	case errors.Is(err, errTooManyClients):
		return apiError{http.StatusBadRequest, "too_many_clients"}
	case errors.Is(err, errInvalidRequest):
		return apiError{http.StatusBadRequest, "invalid_request"}
	case errors.Is(err, errPresenceOff):
		return apiError{http.StatusNotImplemented, "presence_off"}
	case errors.Is(err, poll.ErrTooManyPolls):
		return apiError{http.StatusTooManyRequests, "too_many_polls"}
	case errors.Is(err, poll.ErrOverloaded):
		return apiError{http.StatusServiceUnavailable, "overloaded"}
	case errors.Is(err, errNotFound):
		return apiError{http.StatusNotFound, "not_found"}
	case errors.Is(err, errMethodNotAllowed):
		return apiError{http.StatusMethodNotAllowed, "method_not_allowed"}
	}
	// Everything else is the backend: Redis unreachable, slow or failing.
	// 503 tells clients to retry, which is right for all of it.
	return apiError{http.StatusServiceUnavailable, "unavailable"}
}

// writeError answers r with err in the given format, and logs it at a
// level fitting whose fault it is.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, f format, err error) {
	h.renderError(w, h.logger(w, r), r.URL.Path, f, err)
}

// renderError is writeError for a request that is gone (a parked poll):
// its logger and path.
func (h *Handler) renderError(w http.ResponseWriter, log *slog.Logger, path string, f format, err error) {
	e := classify(err)
	ctx := context.Background()
	switch {
	case e.status == http.StatusServiceUnavailable && e.code == "unavailable":
		log.LogAttrs(ctx, slog.LevelError, "backend unavailable", slog.Any("err", err))
	case log.Enabled(ctx, slog.LevelDebug):
		log.LogAttrs(ctx, slog.LevelDebug, "request refused",
			slog.Int("status", e.status), slog.String("code", e.code), slog.Any("err", err))
	}

	hdr := w.Header()
	switch e.status {
	case http.StatusServiceUnavailable:
		// Jittered, so that a crowd refused together comes back spread out.
		hdr.Set("Retry-After", strconv.Itoa(1+rand.IntN(5)))
	case http.StatusTooManyRequests:
		hdr.Set("Retry-After", strconv.Itoa(2+rand.IntN(4)))
	case http.StatusMethodNotAllowed:
		hdr.Set("Allow", allowed(path))
	case http.StatusRequestEntityTooLarge:
		hdr.Set("Connection", "close") // the rest of the body is not read
		h.m.LimitRejected(map[string]string{
			"body_too_large": "body_bytes", "message_too_large": "message_bytes", "too_many_messages": "batch_messages",
			"too_many_members": "members_per_call",
		}[e.code])
	}
	text := explain(err)
	if f == xmlFormat {
		hdr.Set("Content-Type", "application/xml; charset=utf-8")
		w.WriteHeader(e.status)
		var b strings.Builder
		b.WriteString(xml.Header)
		b.WriteString(`<error code="` + e.code + `">`)
		_ = xml.EscapeText(&b, []byte(text))
		b.WriteString("</error>\n")
		_, _ = w.Write([]byte(b.String()))
		return
	}
	hdr.Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	body, _ := json.Marshal(map[string]any{"error": map[string]string{"code": e.code, "message": text}})
	_, _ = w.Write(append(body, '\n'))
}

// explain turns an error into the sentence a client sees: the wrapped
// details without internal prefixes, or a fixed text for backend failures
// (whose details belong in the node's log, not in a browser).
func explain(err error) string {
	switch e := classify(err); e.code {
	case "unavailable":
		return "the message store is unavailable; retry shortly"
	case "overloaded":
		return "this node holds its maximum of polls; retry shortly or elsewhere"
	case "not_durable":
		return "the messages were written but not confirmed on disk or replicas in time; retry with the same idempotency key"
	case "group_busy":
		return "the group's earlier messages are still being fanned out to its members, and this one was not recorded (the batch's messages to clients may have been): retry with the same idempotency key after Retry-After"
	case "too_many_polls":
		return "this client already holds its maximum of polls on this node"
	case "unauthorized":
		if errors.Is(err, errAdminUnauthorized) {
			return "the server API needs the admin secret (the publish secret on a node without one) as \"Authorization: Bearer <secret>\""
		}
		return "publishing needs the publish secret as \"Authorization: Bearer <secret>\""
	case "secret_in_query":
		return "send the publish secret in the Authorization header, never in the URL"
	case "cross_origin":
		if errors.Is(err, errOriginNotAllowed) {
			return "pages of this origin may not use this node: it is not in the node's -cors-origins"
		}
		return "publishing from a browser page (a request with an Origin header) is refused"
	case "demo_client":
		return "this node has a secret: its demo routes serve only clients whose id starts with " + DemoClientPrefix
	case "token_missing":
		return "polling needs a token: the token query parameter or \"Authorization: Bearer <token>\""
	case "token_invalid":
		if errors.Is(err, token.ErrTooLong) {
			return "the token expires further ahead than this node accepts (-token-max-ttl); mint shorter-lived tokens"
		}
		return "the token is not valid for this client"
	case "token_expired":
		return "the token has expired; fetch a new one from the application"
	case "token_revoked":
		return "the client was disconnected and its older tokens revoked; fetch a new one from the application"
	case "presence_off":
		return "presence is off on this node (-presence=false)"
	case "body_too_large":
		var tooBig *http.MaxBytesError
		errors.As(err, &tooBig)
		return fmt.Sprintf("the body is over the limit of %d bytes", tooBig.Limit)
	}
	msg := err.Error()
	for _, s := range []error{message.ErrMalformed, message.ErrInvalid} {
		msg = strings.TrimSuffix(msg, ": "+s.Error())
	}
	return msg
}

func allowed(path string) string {
	if rest, ok := strings.CutPrefix(path, "/api/clients/"); ok {
		if strings.HasSuffix(rest, "/disconnect") {
			return "POST"
		}
		return "DELETE, GET"
	}
	if rest, ok := strings.CutPrefix(path, "/groups/"); ok && strings.HasSuffix(rest, "/members") {
		return "DELETE, GET, POST"
	}
	switch path {
	case "/publish", "/demo/publish":
		return "POST"
	case "/ack":
		return "POST, OPTIONS"
	case "/poll", "/stream":
		return "GET, OPTIONS"
	default:
		return "GET"
	}
}

// ctxGone reports whether err is the request's context ending: the
// client went away, and there is no one to answer.
func ctxGone(r *http.Request, err error) bool {
	return r.Context().Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
}
