package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/cometbox/cometbox/internal/redistest"
	"github.com/cometbox/cometbox/pkg/httpapi"
	"github.com/cometbox/cometbox/pkg/message"
	"github.com/cometbox/cometbox/pkg/notify"
	"github.com/cometbox/cometbox/pkg/poll"
	"github.com/cometbox/cometbox/pkg/queue"
	"github.com/cometbox/cometbox/pkg/token"
)

// TestMain fails the package if any test leaves a goroutine behind: a
// poll abandoned by its browser must release everything.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// node is the whole HTTP stack over miniredis.
type node struct {
	h      *httpapi.Handler
	poller *poll.Poller
	mr     *miniredis.Miniredis

	viaReturned atomic.Int64 // requests served from Handler.Returned (parkedServer)
}

const (
	publishSecret = "pub-secret"
	tokenSecret   = "tok-secret"
)

func newNode(t testing.TB, cfg httpapi.Config, popts poll.Options) *node {
	t.Helper()
	mr, rdb := redistest.New(t)
	n := nodeOn(t, rdb, queue.Options{Cap: 5}, cfg, popts)
	n.mr = mr
	return n
}

// nodeOn is the whole HTTP stack over the Redis of rdb.
func nodeOn(t testing.TB, rdb *redis.Client, qopts queue.Options, cfg httpapi.Config, popts poll.Options) *node {
	t.Helper()
	q := queue.New(rdb, qopts)
	log := slog.New(slog.DiscardHandler)
	n := notify.New(rdb, q.WakeChannel, log, nil, notify.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	p := poll.New(q, n.Watch, nil, popts)
	cfg.Ready = func(ctx context.Context) error { return n.Ready() }
	return &node{h: httpapi.New(q, p, cfg), poller: p}
}

func (n *node) do(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	n.h.ServeHTTP(rec, req)
	return rec
}

func publishReq(body, contentType string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/publish", strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer "+publishSecret)
	return req
}

func pollReq(client, since string) *http.Request {
	url := "/poll?client=" + client
	if since != "" {
		url += "&since=" + since
	}
	req := httptest.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token.Mint([]byte(tokenSecret), client, time.Now().Add(time.Hour)))
	return req
}

func secured() httpapi.Config {
	return httpapi.Config{PublishSecrets: []string{publishSecret}, Tokens: token.Verifier{Secrets: [][]byte{[]byte(tokenSecret)}}, MaxBodyBytes: 4096,
		Limits: message.Limits{MaxMessageBytes: 100, MaxMessages: 10}}
}

func TestPublishThenPoll(t *testing.T) {
	n := newNode(t, secured(), poll.Options{})
	rec := n.do(publishReq(`<messages><message to="alice">Hello &amp; welcome</message>
		<message to="bob"><![CDATA[<b>raw</b> text]]></message>
		<message to="alice" type="json">{"score": 3}</message></messages>`, "application/xml"))
	if rec.Code != 200 {
		t.Fatalf("publish = %d %s", rec.Code, rec.Body)
	}
	want := `<queued><message to="alice" id="1"/><message to="bob" id="1"/><message to="alice" id="2"/></queued>`
	if !strings.Contains(rec.Body.String(), want) || rec.Header().Get("Content-Type") != "application/xml; charset=utf-8" {
		t.Errorf("publish answer = %q (%s); want %s", rec.Body, rec.Header().Get("Content-Type"), want)
	}

	rec = n.do(pollReq("alice", ""))
	if rec.Code != 200 || rec.Body.String() != `[{"id":1,"data":"Hello & welcome"},{"id":2,"data":{"score":3}}]` {
		t.Fatalf("poll = %d %s", rec.Code, rec.Body)
	}
	for k, v := range map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"} {
		if got := rec.Header().Get(k); got != v {
			t.Errorf("poll header %s = %q; want %q", k, got, v)
		}
	}
	cursor := rec.Header().Get("Cometbox-Cursor")
	if !strings.HasSuffix(cursor, ":2") {
		t.Errorf("Cometbox-Cursor = %q; want EPOCH:2", cursor)
	}

	rec = n.do(publishReq(`{"messages":[{"to":"alice","data":[1,"two"]}]}`, "application/json"))
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"queued":[{"to":"alice","id":3}]}` {
		t.Fatalf("JSON publish = %d %s", rec.Code, rec.Body)
	}
	rec = n.do(pollReq("alice", cursor))
	if rec.Body.String() != `[{"id":3,"data":[1,"two"]}]` {
		t.Errorf("poll(%s) = %s; want message 3 only", cursor, rec.Body)
	}
}

func TestGapAndResetHeaders(t *testing.T) {
	n := newNode(t, secured(), poll.Options{})
	for i := 1; i <= 8; i++ { // the queue cap is 5
		n.do(publishReq(fmt.Sprintf(`<message to="g">%d</message>`, i), "text/xml"))
	}
	rec := n.do(pollReq("g", "1"))
	if rec.Header().Get("Cometbox-Gap") != "2-3" || !strings.HasPrefix(rec.Body.String(), `[{"id":4,`) {
		t.Errorf("poll after cap: gap %q body %s; want gap 2-3 and id 4 first", rec.Header().Get("Cometbox-Gap"), rec.Body)
	}
	rec = n.do(pollReq("g", "zzzz:3"))
	if rec.Header().Get("Cometbox-Reset") != "1" || rec.Code != 200 {
		t.Errorf("poll with a foreign epoch: %d reset %q; want 200 and Cometbox-Reset", rec.Code, rec.Header().Get("Cometbox-Reset"))
	}
	rec = n.do(pollReq("nobody", "57"))
	if rec.Header().Get("Cometbox-Reset") != "1" || rec.Body.String() != "[]" {
		t.Errorf("poll of a lost sequence: reset %q body %s; want an immediate reset and []", rec.Header().Get("Cometbox-Reset"), rec.Body)
	}
}

// TestBadInput sends every kind of bad request: each gets its status and
// code, and nothing reaches Redis.
func TestBadInput(t *testing.T) {
	n := newNode(t, secured(), poll.Options{})
	withHeader := func(req *http.Request, k, v string) *http.Request { req.Header.Set(k, v); return req }
	noAuth := func(req *http.Request) *http.Request { req.Header.Del("Authorization"); return req }
	tests := []struct {
		name   string
		req    *http.Request
		status int
		code   string
	}{
		{"malformed xml", publishReq(`<messages><message to="a">x</messages>`, "application/xml"), 400, "malformed"},
		{"wrong root", publishReq(`<msgs><message to="a">x</message></msgs>`, "application/xml"), 400, "invalid_message"},
		{"missing to", publishReq(`<messages><message>x</message></messages>`, "application/xml"), 400, "invalid_message"},
		{"bad client id", publishReq(`<message to="a b">x</message>`, "application/xml"), 400, "invalid_client"},
		{"invalid json payload", publishReq(`<message to="a" type="json">{x}</message>`, "application/xml"), 400, "invalid_json"},
		{"deep nesting", publishReq(`<message to="a">`+strings.Repeat("<b>", 500)+`</message>`, "application/xml"), 400, "invalid_message"},
		{"invalid utf-8", publishReq("<message to=\"a\">\xc3\x28</message>", "application/xml"), 400, "malformed"},
		{"doctype", publishReq(`<!DOCTYPE m [<!ENTITY e SYSTEM "file:///etc/passwd">]><message to="a">&e;</message>`, "application/xml"), 400, "invalid_message"},
		{"later message bad", publishReq(`<messages><message to="ok">1</message><message to="bad!">2</message></messages>`, "application/xml"), 400, "invalid_client"},
		{"empty batch", publishReq(`<messages/>`, "application/xml"), 400, "empty_batch"},
		{"json syntax", publishReq(`{"messages":[`, "application/json"), 400, "malformed"},
		{"json unknown field", publishReq(`{"msgs":[]}`, "application/json"), 400, "invalid_message"},
		{"bad idempotency header", withHeader(publishReq(`<message to="a">x</message>`, "application/xml"), "Idempotency-Key", "has space"), 400, "invalid_idempotency_key"},
		{"conflicting keys", withHeader(publishReq(`<messages id="k1"><message to="a">x</message></messages>`, "application/xml"), "Idempotency-Key", "k2"), 400, "invalid_idempotency_key"},
		{"text/plain", publishReq(`<message to="a">x</message>`, "text/plain"), 415, "unsupported_media_type"},
		{"no content type", publishReq(`<message to="a">x</message>`, ""), 415, "unsupported_media_type"},
		{"latin-1 charset", publishReq(`<message to="a">x</message>`, "application/xml; charset=iso-8859-1"), 415, "unsupported_media_type"},
		{"body too large", publishReq(`<messages>`+strings.Repeat(" ", 5000)+`<message to="a">x</message></messages>`, "application/xml"), 413, "body_too_large"},
		{"message too large", publishReq(`<message to="a">`+strings.Repeat("x", 101)+`</message>`, "application/xml"), 413, "message_too_large"},
		{"too many messages", publishReq(`<messages>`+strings.Repeat(`<message to="a">x</message>`, 11)+`</messages>`, "application/xml"), 413, "too_many_messages"},
		{"no secret", noAuth(publishReq(`<message to="a">x</message>`, "application/xml")), 401, "unauthorized"},
		{"wrong secret", withHeader(publishReq(`<message to="a">x</message>`, "application/xml"), "Authorization", "Bearer nope"), 401, "unauthorized"},
		{"secret in query", func() *http.Request {
			r := publishReq(`<message to="a">x</message>`, "application/xml")
			r.URL.RawQuery = "secret=" + publishSecret
			return r
		}(), 401, "secret_in_query"},
		{"from a browser", withHeader(publishReq(`<message to="a">x</message>`, "application/xml"), "Origin", "https://evil.example"), 403, "cross_origin"},
		{"get publish", httptest.NewRequest(http.MethodGet, "/publish", nil), 405, "method_not_allowed"},
		{"unknown route", httptest.NewRequest(http.MethodGet, "/nope", nil), 404, "not_found"},
		{"poll bad client", pollReq("a%20b", ""), 400, "invalid_client"},
		{"poll no client", httptest.NewRequest(http.MethodGet, "/poll", nil), 400, "invalid_client"},
		{"poll bad since", pollReq("a", "-1"), 400, "invalid_cursor"},
		{"poll bad since epoch", pollReq("a", "EP:1"), 400, "invalid_cursor"},
		{"poll no token", noAuth(pollReq("a", "")), 401, "token_missing"},
		{"poll forged token", withHeader(pollReq("a", ""), "Authorization", "Bearer 9999999999.AAAA"), 403, "token_invalid"},
		{"poll other client's token", withHeader(pollReq("a", ""), "Authorization", "Bearer "+token.Mint([]byte(tokenSecret), "b", time.Now().Add(time.Hour))), 403, "token_invalid"},
		{"poll expired token", withHeader(pollReq("a", ""), "Authorization", "Bearer "+token.Mint([]byte(tokenSecret), "a", time.Now().Add(-time.Hour))), 403, "token_expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := n.do(tt.req)
			if rec.Code != tt.status {
				t.Fatalf("status = %d; want %d (body %s)", rec.Code, tt.status, rec.Body)
			}
			if code := errorCode(t, rec); code != tt.code {
				t.Errorf("code = %q; want %q (body %s)", code, tt.code, rec.Body)
			}
			if keys := n.mr.Keys(); len(keys) != 0 {
				t.Errorf("Redis holds %v after a refused request", keys)
			}
		})
	}
}

// errorCode reads the code of an XML or JSON error body.
func errorCode(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	body := rec.Body.String()
	if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/xml") {
		_, rest, _ := strings.Cut(body, `<error code="`)
		code, _, _ := strings.Cut(rest, `"`)
		return code
	}
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", body, err)
	}
	if e.Error.Message == "" {
		t.Errorf("error body %q has no explanation", body)
	}
	return e.Error.Code
}

func TestXMLErrorsForXMLPublishers(t *testing.T) {
	n := newNode(t, secured(), poll.Options{})
	rec := n.do(publishReq(`<messages><message to="a b">x</message></messages>`, "application/xml"))
	body := rec.Body.String()
	if !strings.Contains(body, `<error code="invalid_client">message 1 on line 1: attribute &#34;to&#34;: client &#34;a b&#34;`) {
		t.Errorf("XML error body = %s", body)
	}
}

func TestIdempotentReplay(t *testing.T) {
	n := newNode(t, secured(), poll.Options{})
	send := func() *httptest.ResponseRecorder {
		req := publishReq(`<messages><message to="a">x</message><message to="b">y</message></messages>`, "application/xml")
		req.Header.Set("Idempotency-Key", "retry-1")
		return n.do(req)
	}
	first, second := send(), send()
	if first.Code != 200 || second.Code != 200 || first.Body.String() != second.Body.String() {
		t.Fatalf("first %d %s, retry %d %s; want the same 200", first.Code, first.Body, second.Code, second.Body)
	}
	if first.Header().Get("Idempotent-Replayed") != "" || second.Header().Get("Idempotent-Replayed") != "true" {
		t.Errorf("Idempotent-Replayed: first %q, retry %q; want empty, true",
			first.Header().Get("Idempotent-Replayed"), second.Header().Get("Idempotent-Replayed"))
	}
	if rec := n.do(pollReq("a", "")); rec.Body.String() != `[{"id":1,"data":"x"}]` {
		t.Errorf("queue after a retried publish = %s; want one message", rec.Body)
	}
}

func TestRedisDown(t *testing.T) {
	n := newNode(t, secured(), poll.Options{})
	n.mr.SetError("ERR injected failure")
	for name, req := range map[string]*http.Request{
		"publish": publishReq(`<message to="a">x</message>`, "application/xml"),
		"poll":    pollReq("a", ""),
	} {
		start := time.Now()
		rec := n.do(req)
		if rec.Code != 503 || rec.Header().Get("Retry-After") == "" {
			t.Errorf("%s with Redis failing = %d, Retry-After %q; want 503 with Retry-After", name, rec.Code, rec.Header().Get("Retry-After"))
		}
		if strings.Contains(rec.Body.String(), "injected") {
			t.Errorf("%s answer leaks the Redis error: %s", name, rec.Body)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s took %v with Redis failing; want a fast answer", name, d)
		}
	}
}

func TestHealth(t *testing.T) {
	n := newNode(t, secured(), poll.Options{})
	if rec := n.do(httptest.NewRequest("GET", "/healthz", nil)); rec.Code != 200 {
		t.Errorf("healthz = %d", rec.Code)
	}
	deadline := time.Now().Add(3 * time.Second)
	for n.do(httptest.NewRequest("GET", "/readyz", nil)).Code != 200 {
		if time.Now().After(deadline) {
			t.Fatal("readyz never 200")
		}
		time.Sleep(20 * time.Millisecond)
	}
	n.do(publishReq(`<message to="a">x</message>`, "text/xml"))
	n.h.Leave()
	if rec := n.do(httptest.NewRequest("GET", "/readyz", nil)); rec.Code != 503 || !strings.Contains(rec.Body.String(), "draining") {
		t.Errorf("readyz while leaving = %d %s; want 503 draining", rec.Code, rec.Body)
	}
	// Leaving, the node serves as usual, and asks browsers to reconnect.
	rec := n.do(pollReq("a", ""))
	if rec.Code != 200 || rec.Body.String() != `[{"id":1,"data":"x"}]` || rec.Header().Get("Connection") != "close" {
		t.Errorf("poll while leaving = %d %s Connection %q; want the message with Connection: close",
			rec.Code, rec.Body, rec.Header().Get("Connection"))
	}
	n.poller.Drain()
	if rec := n.do(httptest.NewRequest("GET", "/readyz", nil)); rec.Code != 503 || !strings.Contains(rec.Body.String(), "draining") {
		t.Errorf("readyz while draining = %d %s; want 503 draining", rec.Code, rec.Body)
	}
}

func TestPollLimits(t *testing.T) {
	n := newNode(t, secured(), poll.Options{MaxPerClient: 1})
	srv := httptest.NewServer(n.h)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	held := make(chan struct{})
	go func() {
		req := pollReq("a", "")
		req = req.WithContext(ctx)
		req.RequestURI, req.URL.Scheme, req.URL.Host = "", "http", strings.TrimPrefix(srv.URL, "http://")
		close(held)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
	}()
	<-held
	deadline := time.Now().Add(3 * time.Second)
	for n.poller.Held() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	rec := n.do(pollReq("a", ""))
	if rec.Code != 429 || rec.Header().Get("Retry-After") == "" || errorCode(t, rec) != "too_many_polls" {
		t.Errorf("second poll of one client = %d %s; want 429 too_many_polls with Retry-After", rec.Code, rec.Body)
	}
}

// TestLongPoll holds a real HTTP poll and wakes it with a publish.
func TestLongPoll(t *testing.T) {
	n := newNode(t, secured(), poll.Options{})
	srv := httptest.NewServer(n.h)
	defer srv.Close()

	type answer struct {
		body string
		took time.Duration
		err  error
	}
	got := make(chan answer, 1)
	start := time.Now()
	go func() {
		req, _ := http.NewRequest("GET", srv.URL+"/poll?client=carol&token="+token.Mint([]byte(tokenSecret), "carol", time.Now().Add(time.Hour)), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- answer{string(b), time.Since(start), err}
	}()
	deadline := time.Now().Add(3 * time.Second)
	for n.poller.Held() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	req, _ := http.NewRequest("POST", srv.URL+"/publish", strings.NewReader(`<message to="carol">wake up</message>`))
	req.Header.Set("Content-Type", "application/xml")
	req.Header.Set("Authorization", "Bearer "+publishSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("publish = %v %v", resp, err)
	}
	resp.Body.Close()
	a := <-got
	if a.err != nil || a.body != `[{"id":1,"data":"wake up"}]` {
		t.Fatalf("held poll = %q, %v", a.body, a.err)
	}
	if a.took < 100*time.Millisecond {
		t.Errorf("poll answered after %v, before the publish", a.took)
	}
}

func FuzzPublish(f *testing.F) {
	for _, s := range []string{
		`<messages><message to="alice">Hello &amp; welcome</message></messages>`,
		`<message to="bob" type="json">{"a":[1,2]}</message>`,
		`{"messages":[{"to":"c","data":"x"}]}`,
		`<messages><message group="room:1" except="a">hi</message><message to="a">x</message></messages>`,
		`{"messages":[{"group":"g","data":1},{"group":"a{b}","data":2}]}`,
	} {
		f.Add(s, "application/xml")
		f.Add(s, "application/json")
	}
	n := newNode(f, secured(), poll.Options{})
	f.Fuzz(func(t *testing.T, body, contentType string) {
		req := publishReq(body, contentType)
		rec := n.do(req)
		switch rec.Code {
		case 200:
			if !strings.Contains(rec.Body.String(), "queued") {
				t.Fatalf("200 without receipts: %s", rec.Body)
			}
		case 400, 409, 413, 415:
			errorCode(t, rec)
		default:
			t.Fatalf("publish %q (%s) = %d %s", body, contentType, rec.Code, rec.Body)
		}
	})
}

// TestBrowserLeavesMidPoll abandons held polls; the poller must count
// none afterwards, and TestMain's leak check sees no goroutine left.
func TestBrowserLeavesMidPoll(t *testing.T) {
	n := newNode(t, secured(), poll.Options{})
	srv := httptest.NewServer(n.h)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 10)
	for i := range 10 {
		go func() {
			c := fmt.Sprint("gone", i)
			req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/poll?client="+c+"&token="+
				token.Mint([]byte(tokenSecret), c, time.Now().Add(time.Hour)), nil)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			errs <- err
		}()
	}
	deadline := time.Now().Add(3 * time.Second)
	for n.poller.Held() < 10 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n.poller.Held() != 10 {
		t.Fatalf("held %d polls; want 10", n.poller.Held())
	}
	cancel()
	for range 10 {
		if err := <-errs; err == nil {
			t.Error("an abandoned poll was answered")
		}
	}
	deadline = time.Now().Add(3 * time.Second)
	for n.poller.Held() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n.poller.Held() != 0 {
		t.Errorf("still holding %d polls after their browsers left", n.poller.Held())
	}
	http.DefaultClient.CloseIdleConnections()
}

// A poll or stream may be held longer than the server's ReadTimeout
// (cmd/cometbox sets 30s; -poll-timeout may be longer). A fired read
// deadline on the connection's background read would cancel the request;
// net/http clears it before that read, and this test keeps it so.
func TestPollOutlivesReadTimeout(t *testing.T) {
	cfg := secured()
	cfg.PollTimeout = 800 * time.Millisecond
	n := newNode(t, cfg, poll.Options{Timeout: 800 * time.Millisecond})
	srv := httptest.NewUnstartedServer(n.h)
	srv.Config.ReadTimeout = 200 * time.Millisecond
	srv.Start()
	defer srv.Close()
	defer http.DefaultClient.CloseIdleConnections()

	for _, path := range []string{"/poll", "/stream"} {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+path+"?client=slow&token="+
			token.Mint([]byte(tokenSecret), "slow", time.Now().Add(time.Hour)), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		took := time.Since(start)
		switch path {
		case "/poll":
			if err != nil || string(body) != "[]" || took < 700*time.Millisecond {
				t.Errorf("poll held past the read timeout: %q, %v after %v; want [] after the 800ms poll timeout", body, err, took)
			}
		case "/stream":
			// The stream runs until our 1.5s context: it must not end at 200ms.
			if took < 1400*time.Millisecond {
				t.Errorf("stream ended after %v (%q, %v); want it open until the client left", took, body, err)
			}
		}
	}
}

// /readyz tells a balancer no more than "not ready": the reason (which
// names Redis's address) goes to the node's log, once per change.
func TestReadyzKeepsItsReasonInTheLog(t *testing.T) {
	var logs syncBuffer
	var down atomic.Bool
	down.Store(true)
	h := httpapi.New(nil, poll.New(nil, nil, nil, poll.Options{}), httpapi.Config{
		Log: slog.New(slog.NewTextHandler(&logs, nil)),
		Ready: func(context.Context) error {
			if down.Load() {
				return errors.New("redis: dial tcp 10.0.0.7:6379: connect: connection refused")
			}
			return nil
		},
	})
	readyz := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		return rec
	}
	for range 3 {
		if rec := readyz(); rec.Code != 503 || rec.Body.String() != "not ready\n" {
			t.Errorf("readyz with Redis gone = %d %q; want 503 \"not ready\\n\"", rec.Code, rec.Body)
		}
	}
	down.Store(false)
	for range 3 {
		if rec := readyz(); rec.Code != 200 {
			t.Errorf("readyz with Redis back = %d %q; want 200", rec.Code, rec.Body)
		}
	}
	if got := strings.Count(logs.String(), "10.0.0.7"); got != 1 {
		t.Errorf("log = %q; want the reason logged once", logs.String())
	}
	if got := strings.Count(logs.String(), "ready again"); got != 1 {
		t.Errorf("log = %q; want \"ready again\" once", logs.String())
	}
}

// syncBuffer is a bytes.Buffer that a logger and a test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
