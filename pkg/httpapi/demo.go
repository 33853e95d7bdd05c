package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cometbox/cometbox/pkg/message"
	"github.com/cometbox/cometbox/pkg/token"
)

// DemoClientPrefix starts the ids of the clients that the demo's routes
// serve on a node with a publish or token secret.
const DemoClientPrefix = "demo:"

// demoClient checks a client id given to a demo route: any valid one on
// an open node, only the demo's own on a node with a secret.
func (h *Handler) demoClient(client string) error {
	if err := message.CheckClient(client); err != nil {
		return err
	}
	secured := len(h.cfg.PublishSecrets) > 0 || len(h.cfg.Tokens.Secrets) > 0
	if secured && !strings.HasPrefix(client, DemoClientPrefix) {
		return fmt.Errorf("client %q: %w", client, errDemoClient)
	}
	return nil
}

// demoPublish handles POST /demo/publish, which exists only in demo mode:
// the demo page publishes one message in the JSON publish format without
// the secret. Only same-origin pages may use it.
func (h *Handler) demoPublish(w http.ResponseWriter, r *http.Request) {
	if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host && o != "https://"+r.Host {
		h.writeError(w, r, jsonFormat, errCrossOrigin)
		return
	}
	batch, err := message.ParseJSON(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes), h.cfg.Limits)
	if err == nil && len(batch.Messages) != 1 {
		err = fmt.Errorf("%d messages: the demo publishes one at a time: %w", len(batch.Messages), message.ErrInvalid)
	}
	if err == nil && batch.Messages[0].Group != "" {
		err = fmt.Errorf("the demo publishes to one client, not to a group: %w", message.ErrInvalid)
	}
	if err == nil {
		err = h.demoClient(batch.Messages[0].To)
	}
	if err != nil {
		h.writeError(w, r, jsonFormat, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.cfg.PublishTimeout)
	defer cancel()
	res, err := h.store.Publish(ctx, batch)
	if err != nil {
		h.m.RedisError("enqueue")
		h.writeError(w, r, jsonFormat, err)
		return
	}
	h.m.Published(enqueued(res))
	writeReceipts(w, jsonFormat, res.Receipts)
}

// demoTokenTTL is the lifetime of the demo's tokens, or the node's
// Tokens.MaxTTL when that is shorter.
const demoTokenTTL = time.Hour

// demoToken handles GET /demo/token?client=ID in demo mode, when the node
// has a token secret: a token for demoTokenTTL.
func (h *Handler) demoToken(w http.ResponseWriter, r *http.Request) {
	if len(h.cfg.Tokens.Secrets) == 0 {
		h.writeError(w, r, jsonFormat, errNotFound)
		return
	}
	client := r.URL.Query().Get("client")
	if err := h.demoClient(client); err != nil {
		h.writeError(w, r, jsonFormat, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	ttl := demoTokenTTL
	if m := h.cfg.Tokens.MaxTTL; m > 0 && m < ttl {
		ttl = m
	}
	body, _ := json.Marshal(map[string]string{"token": token.Mint(h.cfg.Tokens.Secrets[0], client, time.Now().Add(ttl))})
	_, _ = w.Write(append(body, '\n'))
}
