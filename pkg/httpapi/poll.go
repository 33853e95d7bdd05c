package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/cometbox/cometbox/pkg/message"
	"github.com/cometbox/cometbox/pkg/poll"
)

// pollWriteMargin is how long past the poll timeout a poll's answer may
// still be written.
const pollWriteMargin = 10 * time.Second

// poll handles GET /poll?client=ID&since=CURSOR.
func (h *Handler) poll(w http.ResponseWriter, r *http.Request) {
	client, since, check, err := h.subscriber(r, "")
	if err != nil {
		h.writeError(w, r, jsonFormat, err)
		return
	}
	ctx := r.Context()
	if check != nil {
		ctx = poll.WithCheck(ctx, check)
	}
	if h.cfg.Park && canPark(r) {
		h.pollParked(ctx, w, r, client, since)
		return
	}

	// The server's WriteTimeout is short; this one answer may take the
	// whole poll timeout.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(h.cfg.PollTimeout + pollWriteMargin))

	res, err := h.poller.Poll(ctx, client, since)
	if err != nil {
		h.pollFailed(w, r, err)
		return
	}
	h.writePage(w, res.Page)
}

// pollFailed answers a poll that ended in err. When the request's context
// ended (the browser left, or the node's grace period is over) nothing was
// acknowledged for it and nobody waits for an answer: the connection is
// closed without one, as a parked poll's is, since net/http would
// otherwise send an empty 200 that claims a page.
func (h *Handler) pollFailed(w http.ResponseWriter, r *http.Request, err error) {
	if ctxGone(r, err) {
		panic(http.ErrAbortHandler)
	}
	h.writeError(w, r, jsonFormat, err)
}

// subscriber reads and checks what /poll, /stream and /ack share: the
// client, its cursor (cursor, when not empty, beats the since parameter)
// and its token. check, when not nil, is what is left to check of the
// token, which reads Redis: that no disconnect revoked it (api.go).
func (h *Handler) subscriber(r *http.Request, cursor string) (client string, since message.Cursor, check func(context.Context) error, err error) {
	q := r.URL.Query()
	client = q.Get("client")
	if err := message.CheckClient(client); err != nil {
		return "", message.Cursor{}, nil, err
	}
	if cursor == "" {
		cursor = q.Get("since")
	}
	since, err = message.ParseCursor(cursor)
	if err != nil {
		return "", message.Cursor{}, nil, err
	}
	check, err = h.authorizePoll(r, client)
	if err != nil {
		return "", message.Cursor{}, nil, err
	}
	return client, since, check, nil
}

// authorizePoll checks the client's token when tokens are required.
func (h *Handler) authorizePoll(r *http.Request, client string) (check func(context.Context) error, err error) {
	if len(h.cfg.Tokens.Secrets) == 0 {
		return nil, nil
	}
	tok := r.URL.Query().Get("token")
	if tok == "" {
		tok, _ = bearer(r)
	}
	if err := h.cfg.Tokens.Verify(client, tok, time.Now()); err != nil {
		return nil, err
	}
	return h.tokenCheck(client, tok), nil
}

var (
	openBracket  = []byte("[")
	comma        = []byte(",")
	closeBracket = []byte("]")
)

// writePage answers a poll: a JSON array of messages and the headers
// that carry the cursor, a gap and a reset.
func (h *Handler) writePage(w http.ResponseWriter, page message.Page) {
	hdr := w.Header()
	hdr["Content-Type"] = jsonType
	hdr["Cometbox-Cursor"] = []string{page.Next.String()}
	if page.Gap != (message.Range{}) {
		hdr.Set("Cometbox-Gap", page.Gap.String())
		h.m.Gap()
	}
	if page.Reset {
		hdr.Set("Cometbox-Reset", "1")
		h.m.Reset()
	}
	if h.closing() {
		hdr.Set("Connection", "close") // the next poll opens a connection the balancer sends elsewhere
	}
	n := 2 + max(len(page.Messages)-1, 0) // brackets and commas
	for _, m := range page.Messages {
		n += len(m.JSON)
	}
	hdr["Content-Length"] = []string{strconv.Itoa(n)}
	// Written piece by piece: the writer buffers (net/http's, or the
	// recorder of a parked poll), so no copy of the page is made here.
	_, err := w.Write(openBracket)
	for i, m := range page.Messages {
		if err == nil && i > 0 {
			_, err = w.Write(comma)
		}
		if err == nil {
			_, err = w.Write(m.JSON)
		}
	}
	if err == nil {
		_, err = w.Write(closeBracket)
	}
	if err != nil {
		return // the browser is gone: nothing was delivered
	}
	now := time.Now()
	for _, m := range page.Messages {
		h.m.Delivered(m.Published, now)
	}
}
