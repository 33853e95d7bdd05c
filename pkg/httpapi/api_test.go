package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cometbox/cometbox/internal/redistest"
	"github.com/cometbox/cometbox/pkg/cutoff"
	"github.com/cometbox/cometbox/pkg/httpapi"
	"github.com/cometbox/cometbox/pkg/metrics"
	"github.com/cometbox/cometbox/pkg/notify"
	"github.com/cometbox/cometbox/pkg/poll"
	"github.com/cometbox/cometbox/pkg/presence"
	"github.com/cometbox/cometbox/pkg/queue"
	"github.com/cometbox/cometbox/pkg/token"
)

const adminSecret = "admin-secret"

// fakePresence answers Lookup and List from a map of who is online.
type fakePresence struct {
	mu     sync.Mutex
	online map[string]time.Time
	seen   map[string]time.Time
	err    error
}

func (f *fakePresence) Lookup(ctx context.Context, clients []string) ([]presence.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	out := make([]presence.State, len(clients))
	for i, c := range clients {
		since, on := f.online[c]
		out[i] = presence.State{Client: c, Online: on, Since: since, LastSeen: f.seen[c]}
	}
	return out, nil
}

func (f *fakePresence) List(ctx context.Context, prefix string, limit int) ([]presence.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []presence.State
	for c, since := range f.online {
		if strings.HasPrefix(c, prefix) && len(out) < limit {
			out = append(out, presence.State{Client: c, Online: true, Since: since})
		}
	}
	return out, nil
}

// apiNode is the HTTP stack with the server API's collaborators.
type apiNode struct {
	*node
	mr  *miniredis.Miniredis
	pr  *fakePresence
	reg *prometheus.Registry
}

func newAPINode(t *testing.T, cfg httpapi.Config) *apiNode {
	t.Helper()
	mr, rdb := redistest.New(t)
	q := queue.New(rdb, queue.Options{})
	log := slog.New(slog.DiscardHandler)
	n := notify.New(rdb, q.WakeChannel, log, nil, notify.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	p := poll.New(q, n.Watch, m, poll.Options{Disconnects: cutoff.IsDisconnect})
	pr := &fakePresence{online: map[string]time.Time{}, seen: map[string]time.Time{}}
	cfg.Clients = q
	cfg.Cutoff = cutoff.New(rdb, cutoff.Options{WakeChannel: q.WakeChannel, Leeway: time.Minute})
	cfg.Presence = pr
	cfg.M = m
	return &apiNode{node: &node{h: httpapi.New(q, p, cfg), poller: p}, mr: mr, pr: pr, reg: reg}
}

func apiReq(method, path, body string) *http.Request {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminSecret)
	return req
}

// answer decodes a JSON answer.
func answer(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("answer %d %q: %v", rec.Code, rec.Body, err)
	}
	return out
}

func withAdmin() httpapi.Config {
	cfg := secured()
	cfg.AdminSecrets = []string{adminSecret}
	return cfg
}

func TestAPIAuthorization(t *testing.T) {
	for _, tt := range []struct {
		name   string
		cfg    httpapi.Config
		mutate func(*http.Request)
		status int
		code   string
	}{
		{"admin secret", withAdmin(), func(*http.Request) {}, 200, ""},
		{"publish secret where an admin secret is set", withAdmin(),
			func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+publishSecret) }, 401, "unauthorized"},
		{"publish secret where none is", secured(),
			func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+publishSecret) }, 200, ""},
		{"no secret", withAdmin(), func(r *http.Request) { r.Header.Del("Authorization") }, 401, "unauthorized"},
		{"a browser", withAdmin(), func(r *http.Request) { r.Header.Set("Origin", "https://evil.example") }, 403, "cross_origin"},
		{"secret in the URL", withAdmin(), func(r *http.Request) { r.URL.RawQuery += "&secret=" + adminSecret }, 401, "secret_in_query"},
		{"an open node", httpapi.Config{}, func(r *http.Request) { r.Header.Del("Authorization") }, 200, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := newAPINode(t, tt.cfg)
			req := apiReq("GET", "/api/presence?client=alice", "")
			tt.mutate(req)
			rec := n.do(req)
			if rec.Code != tt.status || (tt.code != "" && errorCode(t, rec) != tt.code) {
				t.Errorf("GET /api/presence = %d %s; want %d %s", rec.Code, rec.Body, tt.status, tt.code)
			}
		})
	}
}

func TestAPIPresence(t *testing.T) {
	n := newAPINode(t, withAdmin())
	since := time.UnixMilli(1_800_000_000_000)
	n.pr.online["alice"] = since
	n.pr.seen["bob"] = since.Add(-time.Minute)
	rec := n.do(apiReq("GET", "/api/presence?client=alice&client=bob&client=carol", ""))
	want := `{"clients":[{"client":"alice","online":true,"since":1800000000000},` +
		`{"client":"bob","online":false,"last_seen":1799999940000},{"client":"carol","online":false}]}`
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != want || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("GET /api/presence = %d %s; want %s", rec.Code, rec.Body, want)
	}

	many := strings.Repeat("&client=x", httpapi.MaxPresenceClients+1)[1:]
	for _, tt := range []struct{ query, code string }{
		{"", "invalid_request"},
		{"client=a%20b", "invalid_client"},
		{"client=ok&client=", "invalid_client"},
		{many, "too_many_clients"},
	} {
		rec := n.do(apiReq("GET", "/api/presence?"+tt.query, ""))
		if rec.Code != 400 || errorCode(t, rec) != tt.code {
			t.Errorf("GET /api/presence?%.40s = %d %s; want 400 %s", tt.query, rec.Code, rec.Body, tt.code)
		}
	}
	n.pr.err = errors.New("redis down")
	if rec := n.do(apiReq("GET", "/api/presence?client=alice", "")); rec.Code != 503 || errorCode(t, rec) != "unavailable" {
		t.Errorf("with Redis down = %d %s; want 503 unavailable", rec.Code, rec.Body)
	}
}

func TestAPIPresenceOff(t *testing.T) {
	cfg := withAdmin()
	_, rdb := redistest.New(t)
	q := queue.New(rdb, queue.Options{})
	cfg.Clients = q
	h := httpapi.New(q, poll.New(q, nil, nil, poll.Options{}), cfg)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, apiReq("GET", "/api/presence?client=alice", ""))
	if rec.Code != 501 || errorCode(t, rec) != "presence_off" {
		t.Errorf("GET /api/presence without presence = %d %s; want 501 presence_off", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, apiReq("GET", "/api/clients/alice", ""))
	if rec.Code != 200 || strings.Contains(rec.Body.String(), "online") {
		t.Errorf("GET /api/clients/alice without presence = %d %s; want 200 without online", rec.Code, rec.Body)
	}
}

func TestAPIInspectAndDelete(t *testing.T) {
	n := newAPINode(t, withAdmin())
	if rec := n.do(apiReq("GET", "/api/clients/alice", "")); rec.Code != 200 ||
		strings.TrimSpace(rec.Body.String()) != `{"client":"alice","epoch":"","length":0,"first_id":0,"last_id":0,"online":false}` {
		t.Fatalf("inspect before any publish = %d %s", rec.Code, rec.Body)
	}
	for range 3 {
		if rec := n.do(publishReq(`<message to="alice">x</message>`, "application/xml")); rec.Code != 200 {
			t.Fatal(rec.Body)
		}
	}
	first := n.do(pollReq("alice", "1"))
	cursor := first.Header().Get("Cometbox-Cursor")
	epoch, _, _ := strings.Cut(cursor, ":")
	n.pr.online["alice"] = time.UnixMilli(1_800_000_000_000)
	rec := n.do(apiReq("GET", "/api/clients/alice", ""))
	want := fmt.Sprintf(`{"client":"alice","epoch":"%s","length":2,"first_id":2,"last_id":3,"online":true,"since":1800000000000}`, epoch)
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != want {
		t.Fatalf("inspect = %d %s; want %s", rec.Code, rec.Body, want)
	}

	// A poll held at the cursor is answered with a reset when the queue
	// is deleted.
	held := make(chan *httptest.ResponseRecorder)
	go func() { held <- n.do(pollReq("alice", cursor)) }()
	waitWaiting(t, n.node, 1)
	rec = n.do(apiReq("DELETE", "/api/clients/alice", ""))
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"client":"alice","deleted":true}` {
		t.Fatalf("delete = %d %s", rec.Code, rec.Body)
	}
	select {
	case got := <-held:
		if got.Code != 200 || got.Header().Get("Cometbox-Reset") != "1" || got.Body.String() != "[]" {
			t.Errorf("the held poll = %d %q, reset %q; want [] with Cometbox-Reset", got.Code, got.Body, got.Header().Get("Cometbox-Reset"))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the held poll was not answered after the delete")
	}
	if rec := n.do(apiReq("DELETE", "/api/clients/alice", "")); strings.TrimSpace(rec.Body.String()) != `{"client":"alice","deleted":false}` {
		t.Errorf("second delete = %d %s; want deleted false", rec.Code, rec.Body)
	}
	for _, tt := range []struct {
		method, path string
		status       int
		code, allow  string
	}{
		{"GET", "/api/clients/a%20b", 400, "invalid_client", ""},
		{"DELETE", "/api/clients/" + strings.Repeat("x", 129), 400, "invalid_client", ""},
		{"PUT", "/api/clients/alice", 405, "method_not_allowed", "DELETE, GET"},
		{"GET", "/api/clients/alice/disconnect", 405, "method_not_allowed", "POST"},
		{"GET", "/api/nothing", 404, "not_found", ""},
	} {
		rec := n.do(apiReq(tt.method, tt.path, ""))
		if rec.Code != tt.status || errorCode(t, rec) != tt.code || rec.Header().Get("Allow") != tt.allow {
			t.Errorf("%s %s = %d %s (Allow %q); want %d %s", tt.method, tt.path, rec.Code, rec.Body, rec.Header().Get("Allow"), tt.status, tt.code)
		}
	}
}

// A client id in the path may come percent-encoded, as PHP's
// rawurlencode and JavaScript's encodeURIComponent write ":" and "@": it
// names the same client.
func TestAPIEscapedClient(t *testing.T) {
	n := newAPINode(t, withAdmin())
	if rec := n.do(publishReq(`<message to="user:42@x">x</message>`, "application/xml")); rec.Code != 200 {
		t.Fatal(rec.Body)
	}
	rec := n.do(apiReq("GET", "/api/clients/user%3A42%40x", ""))
	if rec.Code != 200 || answer(t, rec)["client"] != "user:42@x" || answer(t, rec)["length"] != float64(1) {
		t.Errorf("GET /api/clients/user%%3A42%%40x = %d %s; want 200, client user:42@x, length 1", rec.Code, rec.Body)
	}
	rec = n.do(apiReq("POST", "/api/clients/user%3A42%40x/disconnect", ""))
	if rec.Code != 200 || answer(t, rec)["client"] != "user:42@x" {
		t.Errorf("disconnect user%%3A42%%40x = %d %s; want 200 for user:42@x", rec.Code, rec.Body)
	}
	rec = n.do(apiReq("DELETE", "/api/clients/user%3A42%40x", ""))
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"client":"user:42@x","deleted":true}` {
		t.Errorf("DELETE /api/clients/user%%3A42%%40x = %d %s; want deleted", rec.Code, rec.Body)
	}
	// An escape that decodes to what no id may hold is still refused,
	// and one that decodes to a slash does not reach another route.
	for _, path := range []string{"/api/clients/a%20b", "/api/clients/a%2Fb"} {
		if rec := n.do(apiReq("GET", path, "")); rec.Code != 400 || errorCode(t, rec) != "invalid_client" {
			t.Errorf("GET %s = %d %s; want 400 invalid_client", path, rec.Code, rec.Body)
		}
	}
}

func TestAPIDisconnect(t *testing.T) {
	n := newAPINode(t, withAdmin())
	old := token.Mint([]byte(tokenSecret), "alice", time.Now().Add(time.Hour))
	pollWith := func(tok string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/poll?client=alice&token="+url.QueryEscape(tok), nil)
		return n.do(req)
	}
	held := make(chan *httptest.ResponseRecorder, 2)
	for range 2 {
		go func() { held <- pollWith(old) }()
	}
	waitWaiting(t, n.node, 2)
	rec := n.do(apiReq("POST", "/api/clients/alice/disconnect", ""))
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"client":"alice","nodes":1,"tokens_refused_until":null}` {
		t.Fatalf("disconnect = %d %s", rec.Code, rec.Body)
	}
	for range 2 {
		select {
		case got := <-held:
			if got.Code != 200 || got.Body.String() != "[]" {
				t.Errorf("a held poll = %d %s; want []", got.Code, got.Body)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a held poll was not ended by the disconnect")
		}
	}
	if got := testutil.ToFloat64(n.pollOutcomes(t, "disconnected")); got != 2 {
		t.Errorf("polls with outcome disconnected = %v; want 2", got)
	}

	// Without refuse_tokens the token still opens a poll; with it, no
	// longer. A token minted after (expiring later) does.
	go func() { held <- pollWith(old) }()
	waitWaiting(t, n.node, 1)
	rec = n.do(apiReq("POST", "/api/clients/alice/disconnect", `{"refuse_tokens":true,"token_ttl":3600}`))
	body := answer(t, rec)
	until, _ := body["tokens_refused_until"].(float64)
	if rec.Code != 200 || time.Until(time.Unix(int64(until), 0)).Round(time.Minute) != time.Hour {
		t.Fatalf("disconnect refusing tokens = %d %s; want them refused for an hour", rec.Code, rec.Body)
	}
	if got := <-held; got.Code != 200 || got.Body.String() != "[]" {
		t.Errorf("the held poll = %d %s; want []", got.Code, got.Body)
	}
	if rec := pollWith(old); rec.Code != 403 || errorCode(t, rec) != "token_revoked" {
		t.Errorf("poll with the old token = %d %s; want 403 token_revoked", rec.Code, rec.Body)
	}
	ack := httptest.NewRequest("POST", "/ack?client=alice&since=0&token="+url.QueryEscape(old), nil)
	if rec := n.do(ack); rec.Code != 403 || errorCode(t, rec) != "token_revoked" {
		t.Errorf("ack with the old token = %d %s; want 403 token_revoked", rec.Code, rec.Body)
	}
	if v := testutil.ToFloat64(n.redisErrors(t, "ack")); v != 0 {
		t.Errorf("a refused ack counted %v Redis errors", v)
	}
	fresh := token.Mint([]byte(tokenSecret), "alice", time.Now().Add(time.Hour+time.Minute))
	go func() { held <- pollWith(fresh) }()
	waitWaiting(t, n.node, 1)
	n.do(publishReq(`<message to="alice">welcome back</message>`, "application/xml"))
	if got := <-held; got.Code != 200 || !strings.Contains(got.Body.String(), "welcome back") {
		t.Errorf("poll with a fresh token = %d %s; want the message", got.Code, got.Body)
	}
}

func TestAPIDisconnectRefusesBadBodies(t *testing.T) {
	n := newAPINode(t, withAdmin())
	for _, tt := range []struct{ body, code string }{
		{`{"refuse_tokens":true,"token_ttl":0}`, "invalid_request"},
		{`{"refuse_tokens":true,"token_ttl":-5}`, "invalid_request"},
		{`{"token_ttl":60}`, "invalid_request"},
		{`{"refuse":true}`, "invalid_request"},
		{`{"refuse_tokens":"yes"}`, "invalid_request"},
		{`{"refuse_tokens":true} {}`, "invalid_request"},
		{`not json`, "invalid_request"},
	} {
		rec := n.do(apiReq("POST", "/api/clients/alice/disconnect", tt.body))
		if rec.Code != 400 || errorCode(t, rec) != tt.code {
			t.Errorf("disconnect with %s = %d %s; want 400 %s", tt.body, rec.Code, rec.Body, tt.code)
		}
	}
	if keys := n.mr.Keys(); len(keys) != 0 {
		t.Errorf("refused requests wrote %v", keys)
	}
	rec := n.do(apiReq("POST", "/api/clients/alice/disconnect", strings.Repeat(" ", 5000)))
	if rec.Code != 413 {
		t.Errorf("disconnect with a 5000-byte body = %d %s; want 413", rec.Code, rec.Body)
	}
	// Without a bound on token lifetimes, refuse_tokens needs token_ttl.
	cfg := withAdmin()
	cfg.Tokens.MaxTTL = 0
	unbounded := newAPINode(t, cfg)
	rec = unbounded.do(apiReq("POST", "/api/clients/alice/disconnect", `{"refuse_tokens":true}`))
	if rec.Code != 400 || errorCode(t, rec) != "invalid_request" {
		t.Errorf("refuse_tokens without token_ttl on a node without -token-max-ttl = %d %s", rec.Code, rec.Body)
	}
	cfg.Tokens.MaxTTL = 2 * time.Hour
	bounded := newAPINode(t, cfg)
	rec = bounded.do(apiReq("POST", "/api/clients/alice/disconnect", `{"refuse_tokens":true}`))
	until, _ := answer(t, rec)["tokens_refused_until"].(float64)
	if rec.Code != 200 || time.Until(time.Unix(int64(until), 0)).Round(time.Minute) != 2*time.Hour {
		t.Errorf("refuse_tokens by default = %d %s; want refused for -token-max-ttl", rec.Code, rec.Body)
	}
}

func TestAPIStreamEndsOnDisconnect(t *testing.T) {
	n := newAPINode(t, withAdmin())
	srv := httptest.NewServer(n.h)
	defer srv.Close()
	n.do(publishReq(`<message to="alice">x</message>`, "application/xml")) // so that since=1 is no reset
	ev, stop := openStream(t, srv.URL, "alice", "")
	defer stop()
	for got := ""; !strings.Contains(got, "event: hello"); {
		got = ev.next(t)
	}
	n.do(apiReq("POST", "/api/clients/alice/disconnect", `{"refuse_tokens":true,"token_ttl":7200}`))
	done := make(chan bool)
	go func() {
		for ev.sc.Scan() {
			if ev.sc.Text() != "" {
				done <- false
				return
			}
		}
		done <- true
	}()
	select {
	case ended := <-done:
		if !ended {
			t.Errorf("the stream sent %q after the disconnect; want it ended", ev.sc.Text())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream is still open after the disconnect")
	}
	req, _ := http.NewRequest("GET", srv.URL+"/stream?client=alice&token="+
		token.Mint([]byte(tokenSecret), "alice", time.Now().Add(time.Hour)), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("reopening with the old kind of token = %d; want 403", resp.StatusCode)
	}
}

func TestDemoPresence(t *testing.T) {
	cfg := withAdmin()
	cfg.Demo = true
	cfg.Assets = fstest.MapFS{"demo/index.html": {Data: []byte("<h1>demo</h1>")}}
	n := newAPINode(t, cfg)
	n.pr.online["demo:ann"] = time.UnixMilli(1_800_000_000_000)
	n.pr.online["private"] = time.UnixMilli(1_800_000_000_000)
	rec := n.do(httptest.NewRequest("GET", "/demo/presence", nil))
	want := `{"online":[{"client":"demo:ann","online":true,"since":1800000000000}]}`
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != want {
		t.Errorf("GET /demo/presence = %d %s; want %s", rec.Code, rec.Body, want)
	}
}

// pollOutcomes is the poll-duration histogram's series for outcome.
func (n *apiNode) pollOutcomes(t *testing.T, outcome string) prometheus.Collector {
	t.Helper()
	return countOf(t, n.reg, "cometbox_poll_duration_seconds", "outcome", outcome)
}

func (n *apiNode) redisErrors(t *testing.T, op string) prometheus.Collector {
	t.Helper()
	return countOf(t, n.reg, "cometbox_redis_errors_total", "op", op)
}

// countOf is a collector with the count of a metric's series: a
// counter's value, a histogram's sample count.
func countOf(t *testing.T, reg *prometheus.Registry, name, label, value string) prometheus.Collector {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "count"})
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					if h := m.GetHistogram(); h != nil {
						g.Set(float64(h.GetSampleCount()))
					} else {
						g.Set(m.GetCounter().GetValue())
					}
				}
			}
		}
	}
	return g
}
