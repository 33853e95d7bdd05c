package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/cometbox/cometbox/pkg/message"
	"github.com/cometbox/cometbox/pkg/queue"
)

// publish handles POST /publish: check, parse and validate the whole
// body, enqueue it, answer with the ids in the request's format.
func (h *Handler) publish(w http.ResponseWriter, r *http.Request) {
	f, parse, err := bodyFormat(r.Header.Get("Content-Type"))
	if err == nil {
		err = h.authorizePublish(r)
	}
	if err != nil {
		h.writeError(w, r, f, err)
		return
	}

	body := http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes)
	batch, err := parse(body, h.cfg.Limits)
	if err == nil {
		err = idempotencyKey(r, &batch)
	}
	if err != nil {
		h.writeError(w, r, f, err)
		return
	}

	// The publisher hanging up must not abort a half-done write; a bound
	// still applies.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.cfg.PublishTimeout)
	defer cancel()
	res, err := h.store.Publish(ctx, batch)
	if err != nil {
		if !errors.Is(err, message.ErrIdempotencyConflict) && !errors.Is(err, queue.ErrGroupBusy) {
			h.m.RedisError("enqueue")
		}
		h.writeError(w, r, f, err)
		return
	}
	if res.Replayed {
		h.m.PublishReplayed()
		w.Header().Set("Idempotent-Replayed", "true")
	} else {
		h.m.Published(enqueued(res))
		h.m.Dropped(res.Dropped)
	}
	writeReceipts(w, f, res.Receipts)
}

// enqueued counts the messages a publish wrote to queues: one per direct
// message, and one per member's copy of a group message.
func enqueued(res message.Published) int {
	n := res.Copies
	for _, rc := range res.Receipts {
		if rc.Group == "" {
			n++
		}
	}
	return n
}

type parser func(io.Reader, message.Limits) (message.Batch, error)

// bodyFormat picks the parser for a Content-Type; XML and JSON bodies
// must be UTF-8.
func bodyFormat(contentType string) (format, parser, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return jsonFormat, nil, fmt.Errorf("Content-Type %q: want application/xml, text/xml or application/json: %w",
			contentType, errUnsupportedType)
	}
	f, p := jsonFormat, parser(message.ParseJSON)
	switch mt {
	case "application/xml", "text/xml":
		f, p = xmlFormat, message.ParseXML
	case "application/json":
	default:
		return jsonFormat, nil, fmt.Errorf("Content-Type %q: want application/xml, text/xml or application/json: %w",
			mt, errUnsupportedType)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return f, nil, fmt.Errorf("charset %q: only utf-8 is accepted: %w", cs, errUnsupportedType)
	}
	return f, p, nil
}

// authorizePublish refuses browsers and, when a secret is configured,
// anyone without it.
func (h *Handler) authorizePublish(r *http.Request) error {
	if r.Header.Get("Origin") != "" {
		return errCrossOrigin
	}
	if r.URL.RawQuery != "" {
		if q := r.URL.Query(); q.Has("secret") || q.Has("token") {
			return errSecretInQuery
		}
	}
	if len(h.cfg.PublishSecrets) == 0 {
		return nil
	}
	got, ok := bearer(r)
	if !ok || !anySecret(got, h.cfg.PublishSecrets) {
		return errUnauthorized
	}
	return nil
}

// anySecret reports whether got is one of secrets. It compares with each
// in constant time, whatever the lengths, and with all of them, so the
// time taken tells nothing of which matched.
func anySecret(got string, secrets []string) bool {
	hg := sha256.Sum256([]byte(got))
	match := 0
	for _, s := range secrets {
		hs := sha256.Sum256([]byte(s))
		match |= subtle.ConstantTimeCompare(hg[:], hs[:])
	}
	return match == 1
}

// bearer returns the credentials of an "Authorization: Bearer" header.
func bearer(r *http.Request) (string, bool) {
	auth := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(auth) <= len(prefix) || !strings.EqualFold(auth[:len(prefix)], prefix) {
		return "", false
	}
	return strings.TrimSpace(auth[len(prefix):]), true
}

// idempotencyKey merges the Idempotency-Key header into the batch.
func idempotencyKey(r *http.Request, batch *message.Batch) error {
	vals, ok := r.Header["Idempotency-Key"]
	if !ok {
		return nil
	}
	key := vals[0]
	if err := message.CheckIdempotencyKey(key); err != nil {
		return fmt.Errorf("header Idempotency-Key: %w", err)
	}
	if batch.IdempotencyKey != "" && batch.IdempotencyKey != key {
		return fmt.Errorf("header Idempotency-Key %q differs from the body's id %q: %w",
			key, batch.IdempotencyKey, errConflictingKeys)
	}
	batch.IdempotencyKey = key
	return nil
}

// writeReceipts answers a publish with each message's recipient and id.
func writeReceipts(w http.ResponseWriter, f format, receipts []message.Receipt) {
	var b strings.Builder
	if f == xmlFormat {
		w.Header().Set("Content-Type", "application/xml; charset=utf-8")
		b.WriteString(xml.Header)
		b.WriteString("<queued>")
		for _, rc := range receipts { // ids and group names need no escaping
			if rc.Group != "" {
				b.WriteString(`<message group="` + rc.Group + `" members="` + strconv.Itoa(rc.Members) + `"/>`)
				continue
			}
			b.WriteString(`<message to="`)
			_ = xml.EscapeText(&b, []byte(rc.To))
			b.WriteString(`" id="` + strconv.FormatUint(rc.ID, 10) + `"/>`)
		}
		b.WriteString("</queued>\n")
	} else {
		w.Header().Set("Content-Type", "application/json")
		type receipt struct {
			To      string `json:"to,omitempty"`
			ID      uint64 `json:"id,omitempty"`
			Group   string `json:"group,omitempty"`
			Members *int   `json:"members,omitempty"`
		}
		out := make([]receipt, len(receipts))
		for i, rc := range receipts {
			if rc.Group != "" {
				out[i] = receipt{Group: rc.Group, Members: &rc.Members}
			} else {
				out[i] = receipt{To: rc.To, ID: rc.ID}
			}
		}
		body, _ := json.Marshal(map[string]any{"queued": out})
		b.Write(body)
		b.WriteByte('\n')
	}
	_, _ = io.WriteString(w, b.String())
}
