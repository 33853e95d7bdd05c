package httpapi

// Group memberships, owned by the back end, behind the publish secret:
// who is in which group, for group messages (<message group="...">) to
// reach. docs/protocol.md, "Groups", is the contract.

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

	"github.com/go-chi/chi/v5"

	"github.com/cometbox/cometbox/pkg/message"
	"github.com/cometbox/cometbox/pkg/presence"
	"github.com/cometbox/cometbox/pkg/queue"
)

// Groups keeps group memberships; *queue.Queue implements it.
type Groups interface {
	Join(ctx context.Context, group string, clients []string) (added, members int, err error)
	Leave(ctx context.Context, group string, clients []string) (removed, members int, err error)
	Members(ctx context.Context, group, after string, limit int) (queue.Page, error)
	GroupsOf(ctx context.Context, client, after string, limit int) (queue.Page, error)
}

// MaxMembersPerCall is the most clients one membership call names;
// beyond it the call is refused with 413 too_many_members (split it).
const MaxMembersPerCall = queue.MaxMembersPerCall

// defaultPage is how many names a page holds when the request does not
// say; at most queue.MaxPage.
const defaultPage = 100

// errTooManyMembers: a membership call names more than MaxMembersPerCall
// clients.
var errTooManyMembers = errors.New("too many clients in one membership call")

// groupRoutes adds the membership routes to r.
func (h *Handler) groupRoutes(r chi.Router) {
	r.Route("/groups", func(r chi.Router) {
		r.Use(h.authorizeGroups)
		r.Get("/", h.groupsOf)
		r.Get("/{group}/members", h.groupMembers)
		r.Post("/{group}/members", h.groupJoin)
		r.Delete("/{group}/members", h.groupLeave)
	})
}

// authorizeGroups refuses what authorizePublish refuses, and answers 404
// on a node without groups.
func (h *Handler) authorizeGroups(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := h.authorizePublish(r)
		if err == nil && h.cfg.Groups == nil {
			err = errNotFound
		}
		if err != nil {
			h.writeError(w, r, jsonFormat, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// pathGroup reads and checks the {group} of the route, decoded as
// pathClient decodes a client.
func pathGroup(r *http.Request) (string, error) {
	group := chi.URLParam(r, "group")
	if g, err := url.PathUnescape(group); err == nil {
		group = g
	}
	return group, message.CheckGroup(group)
}

// groupJoin handles POST /groups/{group}/members {"clients": [...]}.
func (h *Handler) groupJoin(w http.ResponseWriter, r *http.Request) {
	h.membership(w, r, func(ctx context.Context, group string, clients []string) (any, error) {
		added, members, err := h.cfg.Groups.Join(ctx, group, clients)
		return map[string]any{"group": group, "added": added, "members": members}, err
	})
}

// groupLeave handles DELETE /groups/{group}/members {"clients": [...]}.
func (h *Handler) groupLeave(w http.ResponseWriter, r *http.Request) {
	h.membership(w, r, func(ctx context.Context, group string, clients []string) (any, error) {
		removed, members, err := h.cfg.Groups.Leave(ctx, group, clients)
		return map[string]any{"group": group, "removed": removed, "members": members}, err
	})
}

// membership reads a membership call's group and clients, checks them
// all, then does it.
func (h *Handler) membership(w http.ResponseWriter, r *http.Request,
	do func(ctx context.Context, group string, clients []string) (any, error)) {
	group, err := pathGroup(r)
	var clients []string
	if err == nil {
		clients, err = readClients(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	}
	if err != nil {
		h.writeError(w, r, jsonFormat, err)
		return
	}
	ctx, cancel := apiContext(r)
	defer cancel()
	out, err := do(ctx, group, clients)
	if err != nil {
		h.m.RedisError("groups")
		h.writeError(w, r, jsonFormat, err)
		return
	}
	writeJSON(w, out)
}

// readClients reads {"clients": ["alice", ...]}: one key, exactly, once
// (as the publish body's keys, so that no JSON parser reads another list
// from it), 1 to MaxMembersPerCall valid client ids.
func readClients(body io.Reader) ([]string, error) {
	raw, err := io.ReadAll(body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, err
		}
		return nil, fmt.Errorf("reading the body: %v: %w", err, message.ErrMalformed)
	}
	const want = `want {"clients": ["alice", ...]}`
	if !json.Valid(raw) {
		return nil, fmt.Errorf("%s: not valid JSON: %w", want, message.ErrMalformed)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, _ := dec.Token(); tok != json.Delim('{') {
		return nil, fmt.Errorf("%s: %w", want, errInvalidRequest)
	}
	var clients []string
	seen := false
	for dec.More() {
		tok, _ := dec.Token()
		if key, _ := tok.(string); key != "clients" || seen {
			return nil, fmt.Errorf("%s: key %q unknown or repeated: %w", want, tok, errInvalidRequest)
		}
		seen = true
		if tok, _ := dec.Token(); tok != json.Delim('[') {
			return nil, fmt.Errorf("%s: clients is not an array: %w", want, errInvalidRequest)
		}
		for i := 0; dec.More(); i++ {
			if i == MaxMembersPerCall {
				return nil, fmt.Errorf("more than %d clients: split the call: %w", MaxMembersPerCall, errTooManyMembers)
			}
			tok, _ := dec.Token()
			c, ok := tok.(string)
			if !ok {
				return nil, fmt.Errorf("clients[%d]: want a string: %w", i, errInvalidRequest)
			}
			if err := message.CheckClient(c); err != nil {
				return nil, fmt.Errorf("clients[%d]: %w", i, err)
			}
			clients = append(clients, c)
		}
		_, _ = dec.Token() // ]
	}
	if len(clients) == 0 {
		return nil, fmt.Errorf("%s with one client or more: %w", want, errInvalidRequest)
	}
	return clients, nil
}

// pageQuery reads ?after=&limit= of a page request; check validates
// after.
func pageQuery(r *http.Request, check func(string) error) (after string, limit int, err error) {
	q := r.URL.Query()
	after, limit = q.Get("after"), defaultPage
	if after != "" {
		if err := check(after); err != nil {
			return "", 0, fmt.Errorf("after: %w", err)
		}
	}
	if s := q.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > queue.MaxPage {
			return "", 0, fmt.Errorf("limit %q: want 1 to %d: %w", s, queue.MaxPage, errInvalidRequest)
		}
	}
	return after, limit, nil
}

// pageJSON is a page in an answer: next is the after of the next page,
// null on the last one.
func pageJSON(p queue.Page) (names []string, next *string) {
	names = p.Names
	if names == nil {
		names = []string{}
	}
	if p.Next != "" {
		next = &p.Next
	}
	return names, next
}

// groupMembers handles GET /groups/{group}/members?after=&limit=, and
// with online=true says which members of the page are online.
func (h *Handler) groupMembers(w http.ResponseWriter, r *http.Request) {
	group, err := pathGroup(r)
	var after string
	var limit int
	if err == nil {
		after, limit, err = pageQuery(r, message.CheckClient)
	}
	online := false
	if err == nil {
		online, err = onlineQuery(r)
	}
	if err == nil && online && h.cfg.Presence == nil {
		err = errPresenceOff
	}
	if err != nil {
		h.writeError(w, r, jsonFormat, err)
		return
	}
	ctx, cancel := apiContext(r)
	defer cancel()
	p, err := h.cfg.Groups.Members(ctx, group, after, limit)
	var states []presence.State
	if err == nil && online && len(p.Names) > 0 {
		states, err = h.cfg.Presence.Lookup(ctx, p.Names)
	}
	if err != nil {
		h.m.RedisError("groups")
		h.writeError(w, r, jsonFormat, err)
		return
	}
	names, next := pageJSON(p)
	out := map[string]any{"group": group, "members": names, "total": p.Total, "next": next}
	if online {
		on := []string{}
		for _, st := range states {
			if st.Online {
				on = append(on, st.Client)
			}
		}
		out["online"] = on
	}
	writeJSON(w, out)
}

// onlineQuery reads ?online=true (or 1, false, 0).
func onlineQuery(r *http.Request) (bool, error) {
	v := r.URL.Query().Get("online")
	if v == "" {
		return false, nil
	}
	on, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("online %q: want true or false: %w", v, errInvalidRequest)
	}
	return on, nil
}

// groupsOf handles GET /groups?member=alice&after=&limit=: a client's
// groups.
func (h *Handler) groupsOf(w http.ResponseWriter, r *http.Request) {
	client := r.URL.Query().Get("member")
	err := message.CheckClient(client)
	if err != nil {
		err = fmt.Errorf("member: %w", err)
	}
	var after string
	var limit int
	if err == nil {
		after, limit, err = pageQuery(r, message.CheckGroup)
	}
	if err != nil {
		h.writeError(w, r, jsonFormat, err)
		return
	}
	ctx, cancel := apiContext(r)
	defer cancel()
	p, err := h.cfg.Groups.GroupsOf(ctx, client, after, limit)
	if err != nil {
		h.m.RedisError("groups")
		h.writeError(w, r, jsonFormat, err)
		return
	}
	names, next := pageJSON(p)
	writeJSON(w, map[string]any{"member": client, "groups": names, "total": p.Total, "next": next})
}
