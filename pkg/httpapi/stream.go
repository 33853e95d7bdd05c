package httpapi

import (
	"bytes"
	"net/http"
	"strconv"
	"time"

	"github.com/cometbox/cometbox/pkg/message"
	"github.com/cometbox/cometbox/pkg/poll"
)

// stream handles GET /stream?client=ID&since=CURSOR: server-sent events.
// Last-Event-ID, which EventSource sends when it reconnects, beats since.
func (h *Handler) stream(w http.ResponseWriter, r *http.Request) {
	client, since, check, err := h.subscriber(r, r.Header.Get("Last-Event-ID"))
	if err != nil {
		h.writeError(w, r, jsonFormat, err)
		return
	}
	ctx := r.Context()
	if check != nil {
		ctx = poll.WithCheck(ctx, check)
	}
	rc := http.NewResponseController(w)
	opened := false
	var buf bytes.Buffer
	err = h.poller.Stream(ctx, client, since, h.cfg.Heartbeat, func(page message.Page) error {
		buf.Reset()
		if !opened {
			opened = true
			hdr := w.Header()
			hdr.Set("Content-Type", "text/event-stream")
			hdr.Set("X-Accel-Buffering", "no") // nginx: do not buffer this answer
			w.WriteHeader(http.StatusOK)
			buf.WriteString("retry: 2000\n\nevent: hello\ndata: {\"cursor\":\"" + since.String() +
				"\",\"heartbeat\":" + strconv.Itoa(int(h.cfg.Heartbeat/time.Second)) + "}\n\n")
			h.m.StreamEvents("hello", 1)
		} else if !page.Settled() {
			buf.WriteString("event: ping\ndata: {}\n\n")
			h.m.StreamEvents("ping", 1)
		}
		h.writeEvents(&buf, page)
		_ = rc.SetWriteDeadline(time.Now().Add(h.cfg.Heartbeat + pollWriteMargin))
		if _, err := w.Write(buf.Bytes()); err != nil {
			return err
		}
		if err := rc.Flush(); err != nil {
			return err
		}
		now := time.Now()
		for _, m := range page.Messages {
			h.m.Delivered(m.Published, now)
		}
		return nil
	})
	switch {
	case err == nil, ctxGone(r, err):
	case !opened:
		h.writeError(w, r, jsonFormat, err)
	default: // the status is sent; ending the stream makes EventSource reconnect
		h.logger(w, r).Debug("stream ended", "err", err)
	}
}

// writeEvents renders a page as server-sent events: a reset, a gap, then
// one event per message whose id is the cursor after it.
func (h *Handler) writeEvents(buf *bytes.Buffer, page message.Page) {
	h.m.StreamEvents("message", len(page.Messages))
	if page.Reset {
		h.m.Reset()
		h.m.StreamEvents("reset", 1)
		c := page.Next
		c.ID -= uint64(len(page.Messages))
		buf.WriteString("event: reset\nid: " + c.String() + "\ndata: {\"cursor\":\"" + c.String() + "\"}\n\n")
	}
	if page.Gap != (message.Range{}) {
		h.m.Gap()
		h.m.StreamEvents("gap", 1)
		buf.WriteString("event: gap\ndata: {\"first\":" + strconv.FormatUint(page.Gap.First, 10) +
			",\"last\":" + strconv.FormatUint(page.Gap.Last, 10) + "}\n\n")
	}
	for _, m := range page.Messages {
		buf.WriteString("id: " + message.Cursor{Epoch: page.Next.Epoch, ID: m.ID}.String() + "\ndata: ")
		buf.Write(m.JSON)
		buf.WriteString("\n\n")
	}
}

// ack handles POST /ack?client=ID&since=CURSOR: a stream's background
// acknowledgement.
func (h *Handler) ack(w http.ResponseWriter, r *http.Request) {
	client, since, check, err := h.subscriber(r, "")
	if err == nil && check != nil {
		err = check(r.Context())
	}
	if err == nil {
		var reset bool
		reset, err = h.store.Ack(r.Context(), client, since)
		if reset {
			w.Header().Set("Cometbox-Reset", "1")
		}
	}
	if err != nil {
		if ctxGone(r, err) {
			return
		}
		if classify(err).code == "unavailable" {
			h.m.RedisError("ack")
		}
		h.writeError(w, r, jsonFormat, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
