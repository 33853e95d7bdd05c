package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cometbox/cometbox/internal/redistest"
	"github.com/cometbox/cometbox/pkg/httpapi"
	"github.com/cometbox/cometbox/pkg/message"
	"github.com/cometbox/cometbox/pkg/poll"
	"github.com/cometbox/cometbox/pkg/queue"
)

// groupNode is the HTTP stack with groups, on miniredis.
func groupNode(t *testing.T) *node {
	t.Helper()
	_, rdb := redistest.New(t)
	cfg := secured()
	cfg.MaxBodyBytes = 1 << 20
	cfg.Groups = queue.New(rdb, queue.Options{})
	return nodeOn(t, rdb, queue.Options{}, cfg, poll.Options{})
}

func groupReq(method, path, body string) *http.Request {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+publishSecret)
	req.Header.Set("Content-Type", "application/json")
	return req
}

func clientsBody(clients ...string) string {
	return `{"clients":["` + strings.Join(clients, `","`) + `"]}`
}

func TestGroupRoutes(t *testing.T) {
	n := groupNode(t)
	steps := []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"POST", "/groups/room:42/members", clientsBody("alice", "bob", "carol"), 200, `{"added":3,"group":"room:42","members":3}`},
		{"POST", "/groups/room%3A42/members", clientsBody("bob", "dave"), 200, `{"added":1,"group":"room:42","members":4}`},
		{"DELETE", "/groups/room:42/members", clientsBody("dave", "zed"), 200, `{"group":"room:42","members":3,"removed":1}`},
		{"GET", "/groups/room:42/members?limit=2", "", 200, `{"group":"room:42","members":["alice","bob"],"next":"bob","total":3}`},
		{"GET", "/groups/room:42/members?after=bob&limit=2", "", 200, `{"group":"room:42","members":["carol"],"next":null,"total":3}`},
		{"GET", "/groups/nobody/members", "", 200, `{"group":"nobody","members":[],"next":null,"total":0}`},
		{"GET", "/groups?member=alice", "", 200, `{"groups":["room:42"],"member":"alice","next":null,"total":1}`},
		{"GET", "/groups?member=dave", "", 200, `{"groups":[],"member":"dave","next":null,"total":0}`},
	}
	for _, s := range steps {
		rec := n.do(groupReq(s.method, s.path, s.body))
		if rec.Code != s.code || strings.TrimSpace(rec.Body.String()) != s.want {
			t.Fatalf("%s %s = %d %s; want %d %s", s.method, s.path, rec.Code, rec.Body, s.code, s.want)
		}
	}

	// A group message reaches the members, in the answer's count and in
	// their polls, with the group named.
	rec := n.do(publishReq(`<messages><message group="room:42" except="alice">hi</message><message group="empty">x</message></messages>`, "application/xml"))
	if want := `<queued><message group="room:42" members="2"/><message group="empty" members="0"/></queued>`; rec.Code != 200 || !strings.Contains(rec.Body.String(), want) {
		t.Fatalf("publish = %d %s; want %s", rec.Code, rec.Body, want)
	}
	rec = n.do(publishReq(`{"messages":[{"to":"alice","data":1},{"group":"room:42","data":{"k":2}}]}`, "application/json"))
	if want := `{"queued":[{"to":"alice","id":1},{"group":"room:42","members":3}]}`; rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != want {
		t.Fatalf("publish = %d %s; want %s", rec.Code, rec.Body, want)
	}
	rec = n.do(pollReq("bob", ""))
	if want := `[{"id":1,"group":"room:42","data":"hi"},{"id":2,"group":"room:42","data":{"k":2}}]`; rec.Code != 200 || rec.Body.String() != want {
		t.Fatalf("bob's poll = %d %s; want %s", rec.Code, rec.Body, want)
	}
}

func TestGroupRoutesRefuse(t *testing.T) {
	n := groupNode(t)
	many := make([]string, 100000) // a membership call for 100,000 clients: refused, not half done
	for i := range many {
		many[i] = fmt.Sprintf("c%d", i)
	}
	tests := []struct {
		name string
		req  *http.Request
		code int
		want string
	}{
		{"hash-tag braces", groupReq("POST", "/groups/room%7B42%7D/members", clientsBody("a")), 400, "invalid_group"},
		{"slash", groupReq("POST", "/groups/a%2Fb/members", clientsBody("a")), 400, "invalid_group"},
		{"100,000 clients", groupReq("POST", "/groups/g/members", clientsBody(many...)), 413, "too_many_members"},
		{"bad client", groupReq("POST", "/groups/g/members", clientsBody("a", "b c")), 400, "invalid_client"},
		{"no client", groupReq("POST", "/groups/g/members", `{"clients":[]}`), 400, "invalid_request"},
		{"no body", groupReq("DELETE", "/groups/g/members", ``), 400, "malformed"},
		{"key in another case", groupReq("POST", "/groups/g/members", `{"Clients":["a"]}`), 400, "invalid_request"},
		{"key twice", groupReq("POST", "/groups/g/members", `{"clients":["a"],"clients":["b"]}`), 400, "invalid_request"},
		{"not strings", groupReq("POST", "/groups/g/members", `{"clients":[["a"]]}`), 400, "invalid_request"},
		{"bad limit", groupReq("GET", "/groups/g/members?limit=0", ""), 400, "invalid_request"},
		{"bad after", groupReq("GET", "/groups?member=a&after=a%7Bb", ""), 400, "invalid_group"},
		{"no member", groupReq("GET", "/groups", ""), 400, "invalid_client"},
		{"method", groupReq("PUT", "/groups/g/members", clientsBody("a")), 405, "method_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := n.do(tt.req)
			if rec.Code != tt.code || !strings.Contains(rec.Body.String(), `"code":"`+tt.want+`"`) {
				t.Fatalf("= %d %s; want %d %s", rec.Code, rec.Body, tt.code, tt.want)
			}
		})
	}

	unauthorized := groupReq("POST", "/groups/g/members", clientsBody("a"))
	unauthorized.Header.Del("Authorization")
	if rec := n.do(unauthorized); rec.Code != 401 {
		t.Errorf("without the secret = %d; want 401", rec.Code)
	}
	browser := groupReq("GET", "/groups?member=a", "")
	browser.Header.Set("Origin", "https://evil.example")
	if rec := n.do(browser); rec.Code != 403 {
		t.Errorf("from a browser = %d; want 403", rec.Code)
	}
	if rec := n.do(publishReq(`<message group="a{b}">x</message>`, "application/xml")); rec.Code != 400 || !strings.Contains(rec.Body.String(), `code="invalid_group"`) {
		t.Errorf("publish to a bad group = %d %s; want 400 invalid_group", rec.Code, rec.Body)
	}

	// Without groups the routes do not exist.
	plain := newNode(t, secured(), poll.Options{})
	if rec := plain.do(groupReq("GET", "/groups?member=a", "")); rec.Code != 404 {
		t.Errorf("no groups: %d; want 404", rec.Code)
	}
}

// busyStore refuses every publish as a group whose fan-outs are behind.
type busyStore struct{ httpapi.Store }

func (busyStore) Publish(context.Context, message.Batch) (message.Published, error) {
	return message.Published{}, fmt.Errorf("queue: group room: behind: %w", queue.ErrGroupBusy)
}

// A group whose fan-outs are behind answers 503 group_busy, with
// Retry-After: nothing was recorded for it.
func TestGroupBusyIs503(t *testing.T) {
	_, rdb := redistest.New(t)
	q := queue.New(rdb, queue.Options{})
	h := httpapi.New(busyStore{q}, poll.New(q, nil, nil, poll.Options{}), secured())
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, publishReq(`<message group="room">x</message>`, "application/xml"))
	if rec.Code != 503 || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), `code="group_busy"`) {
		t.Fatalf("publish = %d %s (Retry-After %q); want 503 group_busy", rec.Code, rec.Body, rec.Header().Get("Retry-After"))
	}
}

// With online=true a page of members says which of them are online.
func TestGroupMembersOnline(t *testing.T) {
	_, rdb := redistest.New(t)
	q := queue.New(rdb, queue.Options{})
	cfg := secured()
	cfg.Groups = q
	cfg.Presence = &fakePresence{online: map[string]time.Time{"bob": time.Now(), "zed": time.Now()}}
	n := nodeOn(t, rdb, queue.Options{}, cfg, poll.Options{})
	if rec := n.do(groupReq("POST", "/groups/g/members", clientsBody("alice", "bob", "carol"))); rec.Code != 200 {
		t.Fatalf("join = %d %s", rec.Code, rec.Body)
	}
	rec := n.do(groupReq("GET", "/groups/g/members?online=true&limit=2", ""))
	if want := `{"group":"g","members":["alice","bob"],"next":"bob","online":["bob"],"total":3}`; rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != want {
		t.Fatalf("members online = %d %s; want %s", rec.Code, rec.Body, want)
	}
	if rec := n.do(groupReq("GET", "/groups/g/members?online=maybe", "")); rec.Code != 400 {
		t.Errorf("online=maybe = %d; want 400", rec.Code)
	}
	plain := groupNode(t) // presence off
	if rec := plain.do(groupReq("GET", "/groups/g/members?online=1", "")); rec.Code != 501 || !strings.Contains(rec.Body.String(), "presence_off") {
		t.Errorf("online without presence = %d %s; want 501 presence_off", rec.Code, rec.Body)
	}
}
