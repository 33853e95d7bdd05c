package httpapi_test

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/cometbox/cometbox/pkg/httpapi"
	"github.com/cometbox/cometbox/pkg/poll"
	"github.com/cometbox/cometbox/pkg/token"
)

// events reads server-sent events from a stream, one "field: value" block
// at a time.
type events struct{ sc *bufio.Scanner }

func (e events) next(t *testing.T) string {
	t.Helper()
	var lines []string
	for e.sc.Scan() {
		line := e.sc.Text()
		if line == "" {
			if len(lines) > 0 {
				return strings.Join(lines, "|")
			}
			continue
		}
		lines = append(lines, line)
	}
	t.Fatalf("stream ended: %v (read %q)", e.sc.Err(), lines)
	return ""
}

func openStream(t *testing.T, srvURL, client, lastEventID string) (events, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srvURL+"/stream?client="+client+"&since=1&token="+
		token.Mint([]byte(tokenSecret), client, time.Now().Add(time.Hour)), nil)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return events{bufio.NewScanner(resp.Body)}, func() { cancel(); resp.Body.Close() }
}

func TestStreamEvents(t *testing.T) {
	cfg := secured()
	cfg.Heartbeat = 200 * time.Millisecond
	n := newNode(t, cfg, poll.Options{})
	srv := httptest.NewServer(n.h)
	defer srv.Close()
	defer http.DefaultClient.CloseIdleConnections()

	n.do(publishReq(`<messages><message to="s">one</message><message to="s">two</message></messages>`, "text/xml"))
	// Last-Event-ID (what EventSource sends on reconnect) beats since=1.
	ev, stop := openStream(t, srv.URL, "s", "0")
	defer stop()
	if got := ev.next(t); got != "retry: 2000" {
		t.Fatalf("first block = %q", got)
	}
	if got := ev.next(t); got != `event: hello|data: {"cursor":"0","heartbeat":0}` {
		t.Fatalf("hello = %q", got)
	}
	first := ev.next(t)
	if !strings.HasSuffix(first, `:1|data: {"id":1,"data":"one"}`) || !strings.HasPrefix(first, "id: ") {
		t.Fatalf("first message event = %q", first)
	}
	if got := ev.next(t); !strings.HasSuffix(got, `:2|data: {"id":2,"data":"two"}`) {
		t.Fatalf("second message event = %q", got)
	}
	if got := ev.next(t); got != "event: ping|data: {}" {
		t.Fatalf("heartbeat = %q", got)
	}
	n.do(publishReq(`<message to="s">three</message>`, "text/xml"))
	if got := ev.next(t); !strings.HasSuffix(got, `:3|data: {"id":3,"data":"three"}`) {
		t.Fatalf("live event = %q", got)
	}
	// Nothing was acknowledged by sending: a poll still sees all three.
	if rec := n.do(pollReq("s", "")); !strings.HasPrefix(rec.Body.String(), `[{"id":1,`) {
		t.Errorf("poll after streaming = %s; want nothing acknowledged", rec.Body)
	}
}

// A stream opened without an epoch (a fresh page) still notices that
// Redis lost its client's sequence: the new sequence's messages come
// after a reset, from its first. (Such a stream used to keep reading
// after the id it had reached, in whatever epoch: message 1 of the new
// sequence was never sent.)
func TestStreamNoticesALostSequence(t *testing.T) {
	n := newNode(t, secured(), poll.Options{})
	srv := httptest.NewServer(n.h)
	defer srv.Close()
	defer http.DefaultClient.CloseIdleConnections()

	n.do(publishReq(`<message to="s">old</message>`, "text/xml"))
	ev, stop := openStream(t, srv.URL, "s", "0")
	defer stop()
	ev.next(t) // retry
	ev.next(t) // hello
	if got := ev.next(t); !strings.HasSuffix(got, `:1|data: {"id":1,"data":"old"}`) {
		t.Fatalf("first message event = %q", got)
	}
	n.mr.FlushAll() // Redis lost its data
	n.do(publishReq(`<messages><message to="s">a</message><message to="s">b</message></messages>`, "text/xml"))
	if got := ev.next(t); !strings.HasPrefix(got, "event: reset|") {
		t.Fatalf("after the loss: %q; want a reset", got)
	}
	for _, want := range []string{`:1|data: {"id":1,"data":"a"}`, `:2|data: {"id":2,"data":"b"}`} {
		if got := ev.next(t); !strings.HasSuffix(got, want) {
			t.Fatalf("after the reset: %q; want %s", got, want)
		}
	}
}

func TestAck(t *testing.T) {
	n := newNode(t, secured(), poll.Options{})
	n.do(publishReq(`<messages><message to="k">1</message><message to="k">2</message><message to="k">3</message></messages>`, "text/xml"))
	cursor := n.do(pollReq("k", "")).Header().Get("Cometbox-Cursor")
	epoch, _, _ := strings.Cut(cursor, ":")

	ack := pollReq("k", epoch+":2")
	ack.Method, ack.URL.Path = http.MethodPost, "/ack"
	if rec := n.do(ack); rec.Code != 204 {
		t.Fatalf("ack = %d %s", rec.Code, rec.Body)
	}
	if rec := n.do(pollReq("k", "")); rec.Body.String() != `[{"id":3,"data":"3"}]` {
		t.Errorf("poll after ack = %s; want message 3 only", rec.Body)
	}
	foreign := pollReq("k", "other:3")
	foreign.Method, foreign.URL.Path = http.MethodPost, "/ack"
	if rec := n.do(foreign); rec.Code != 204 || rec.Header().Get("Cometbox-Reset") != "1" {
		t.Errorf("ack with a foreign epoch = %d reset %q; want 204 with Cometbox-Reset", rec.Code, rec.Header().Get("Cometbox-Reset"))
	}
	noToken := httptest.NewRequest(http.MethodPost, "/ack?client=k&since=3", nil)
	if rec := n.do(noToken); rec.Code != 401 {
		t.Errorf("ack without a token = %d; want 401", rec.Code)
	}
}

func TestCORS(t *testing.T) {
	cfg := secured()
	cfg.CORSOrigins = []string{"https://app.example"}
	n := newNode(t, cfg, poll.Options{})
	n.do(publishReq(`<message to="c">x</message>`, "text/xml"))

	req := pollReq("c", "")
	req.Header.Set("Origin", "https://app.example")
	rec := n.do(req)
	if rec.Header().Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!strings.Contains(rec.Header().Get("Access-Control-Expose-Headers"), "Cometbox-Cursor") {
		t.Errorf("allowed origin: headers %v", rec.Header())
	}
	req = pollReq("c", "")
	req.Header.Set("Origin", "https://evil.example")
	if rec := n.do(req); rec.Code != 403 || rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("poll from an origin not listed = %d, Access-Control-Allow-Origin %q; want 403 at once without it",
			rec.Code, rec.Header().Get("Access-Control-Allow-Origin"))
	} else if !strings.Contains(rec.Body.String(), "-cors-origins") || strings.Contains(rec.Body.String(), "publish") {
		t.Errorf("poll from an origin not listed: %s; want it to name -cors-origins, not publishing", rec.Body)
	}
	same := pollReq("c", "")
	same.Header.Set("Origin", "http://"+same.Host)
	if rec := n.do(same); rec.Code != 200 {
		t.Errorf("poll with the node's own origin = %d; want 200", rec.Code)
	}
	ack := pollReq("c", "")
	ack.Method, ack.URL.Path = http.MethodPost, "/ack"
	ack.Header.Set("Origin", "https://proxied.example")
	if rec := n.do(ack); rec.Code != 204 || rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("ack with an unlisted origin = %d %v; want 204 left to the browser's own check", rec.Code, rec.Header())
	}

	pre := httptest.NewRequest(http.MethodOptions, "/stream", nil)
	pre.Header.Set("Origin", "https://app.example")
	pre.Header.Set("Access-Control-Request-Headers", "authorization")
	rec = n.do(pre)
	if rec.Code != 204 || !strings.Contains(rec.Header().Get("Access-Control-Allow-Headers"), "Authorization") ||
		rec.Header().Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("preflight = %d %v", rec.Code, rec.Header())
	}
	pre.Header.Set("Origin", "https://evil.example")
	if rec := n.do(pre); rec.Code != 403 {
		t.Errorf("preflight from another origin = %d; want 403", rec.Code)
	}

	pub := publishReq(`<message to="c">x</message>`, "text/xml")
	pub.Header.Set("Origin", "https://app.example")
	if rec := n.do(pub); rec.Code != 403 || rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("publish from an allowed origin = %d %v; want 403 without CORS", rec.Code, rec.Header())
	}
}

func TestAssetsAndDemo(t *testing.T) {
	files := fstest.MapFS{
		"cometbox.js":     {Data: []byte("/* client */")},
		"demo/index.html": {Data: []byte("<h1>demo</h1>")},
	}
	cfg := secured()
	cfg.Assets = files
	off := newNode(t, cfg, poll.Options{})
	rec := off.do(httptest.NewRequest("GET", "/cometbox.js", nil))
	etag := rec.Header().Get("ETag")
	if rec.Code != 200 || rec.Body.String() != "/* client */" || etag == "" ||
		!strings.HasPrefix(rec.Header().Get("Content-Type"), "text/javascript") || rec.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("cometbox.js = %d %q %v", rec.Code, rec.Body, rec.Header())
	}
	again := httptest.NewRequest("GET", "/cometbox.js", nil)
	again.Header.Set("If-None-Match", etag)
	if rec := off.do(again); rec.Code != 304 || rec.Body.Len() != 0 {
		t.Errorf("revalidation = %d %q; want 304", rec.Code, rec.Body)
	}
	if rec := off.do(httptest.NewRequest("HEAD", "/cometbox.js", nil)); rec.Code != 200 {
		t.Errorf("HEAD cometbox.js = %d", rec.Code)
	}
	for _, path := range []string{"/demo/", "/demo/publish", "/demo/token?client=a"} {
		if rec := off.do(httptest.NewRequest("GET", path, nil)); rec.Code != 404 && rec.Code != 405 {
			t.Errorf("%s without demo mode = %d; want none", path, rec.Code)
		}
	}

	cfg.Demo = true
	on := newNode(t, cfg, poll.Options{})
	if rec := on.do(httptest.NewRequest("GET", "/demo/", nil)); rec.Code != 200 || !strings.Contains(rec.Body.String(), "demo") {
		t.Errorf("/demo/ = %d %s", rec.Code, rec.Body)
	}
	// This node has both secrets: the demo serves its own clients only.
	const d = httpapi.DemoClientPrefix + "d"
	pub := httptest.NewRequest("POST", "/demo/publish", strings.NewReader(`{"messages":[{"to":"`+d+`","data":{"a":1}}]}`))
	if rec := on.do(pub); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"id":1`) {
		t.Errorf("demo publish = %d %s", rec.Code, rec.Body)
	}
	if rec := on.do(pollReq(d, "")); rec.Body.String() != `[{"id":1,"data":{"a":1}}]` {
		t.Errorf("poll after demo publish = %s", rec.Body)
	}
	cross := httptest.NewRequest("POST", "/demo/publish", strings.NewReader(`{"messages":[{"to":"`+d+`","data":1}]}`))
	cross.Header.Set("Origin", "https://evil.example")
	if rec := on.do(cross); rec.Code != 403 {
		t.Errorf("cross-origin demo publish = %d; want 403", rec.Code)
	}
	rec = on.do(httptest.NewRequest("GET", "/demo/token?client="+d, nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"token":"`) {
		t.Errorf("demo token = %d %s", rec.Code, rec.Body)
	}
	// Any other client keeps what the secrets close.
	pub = httptest.NewRequest("POST", "/demo/publish", strings.NewReader(`{"messages":[{"to":"alice","data":1}]}`))
	if rec := on.do(pub); rec.Code != 403 || errorCode(t, rec) != "demo_client" {
		t.Errorf("demo publish to alice on a node with secrets = %d %s; want 403 demo_client", rec.Code, rec.Body)
	}
	rec = on.do(httptest.NewRequest("GET", "/demo/token?client=alice", nil))
	if rec.Code != 403 || errorCode(t, rec) != "demo_client" {
		t.Errorf("demo token for alice on a node with secrets = %d %s; want 403 demo_client", rec.Code, rec.Body)
	}

	// An open node's demo serves any client.
	open := httpapi.Config{Assets: files, Demo: true, MaxBodyBytes: 4096}
	openNode := newNode(t, open, poll.Options{})
	pub = httptest.NewRequest("POST", "/demo/publish", strings.NewReader(`{"messages":[{"to":"alice","data":1}]}`))
	if rec := openNode.do(pub); rec.Code != 200 {
		t.Errorf("demo publish to alice on an open node = %d %s; want 200", rec.Code, rec.Body)
	}
	// The demo route reads bodies as /publish does: keys exact and once,
	// an oversized body 413, one message at a time.
	for body, want := range map[string]int{
		`{"messages":[{"TO":"alice","data":1}]}`:                               400,
		`{"messages":[{"to":"bob","to":"alice","data":1}]}`:                    400,
		`{"messages":[{"to":"a","data":1},{"to":"b","data":2}]}`:               400,
		`{"messages":[{"to":"a","data":"` + strings.Repeat("x", 5000) + `"}]}`: 413,
	} {
		if rec := openNode.do(httptest.NewRequest("POST", "/demo/publish", strings.NewReader(body))); rec.Code != want {
			t.Errorf("demo publish %.60s = %d %s; want %d", body, rec.Code, rec.Body, want)
		}
	}
}

// The demo's tokens open its polls on a node that bounds token lifetimes
// (-token-max-ttl) below the hour the demo would give them.
func TestDemoTokenWithinMaxTTL(t *testing.T) {
	cfg := secured()
	cfg.Demo = true
	cfg.Assets = fstest.MapFS{"demo/index.html": {Data: []byte("<h1>demo</h1>")}}
	cfg.Tokens.MaxTTL = 10 * time.Minute
	n := newNode(t, cfg, poll.Options{Timeout: 50 * time.Millisecond})
	const d = httpapi.DemoClientPrefix + "d"
	rec := n.do(httptest.NewRequest("GET", "/demo/token?client="+d, nil))
	_, tok, _ := strings.Cut(rec.Body.String(), `"token":"`)
	tok, _, _ = strings.Cut(tok, `"`)
	if rec.Code != 200 || tok == "" {
		t.Fatalf("demo token = %d %s", rec.Code, rec.Body)
	}
	if err := cfg.Tokens.Verify(d, tok, time.Now()); err != nil {
		t.Fatalf("Verify(demo token) = %v; want nil", err)
	}
	req := httptest.NewRequest("GET", "/poll?client="+d, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if rec := n.do(req); rec.Code != 200 {
		t.Errorf("poll with the demo's token = %d %s; want 200", rec.Code, rec.Body)
	}
}

// Secrets rotate without an outage: every listed secret is accepted, for
// publishes and for tokens; a token living too long is refused.
func TestSecretRotation(t *testing.T) {
	cfg := secured()
	cfg.PublishSecrets = []string{"new-pub", publishSecret}
	cfg.Tokens = token.Verifier{Secrets: [][]byte{[]byte("new-tok"), []byte(tokenSecret)}, MaxTTL: 24 * time.Hour}
	n := newNode(t, cfg, poll.Options{})
	for _, secret := range []string{"new-pub", publishSecret} {
		req := publishReq(`<message to="r">x</message>`, "text/xml")
		req.Header.Set("Authorization", "Bearer "+secret)
		if rec := n.do(req); rec.Code != 200 {
			t.Errorf("publish with secret %q = %d %s", secret, rec.Code, rec.Body)
		}
	}
	req := publishReq(`<message to="r">x</message>`, "text/xml")
	req.Header.Set("Authorization", "Bearer retired")
	if rec := n.do(req); rec.Code != 401 {
		t.Errorf("publish with a retired secret = %d; want 401", rec.Code)
	}
	for name, tt := range map[string]struct {
		secret string
		ttl    time.Duration
		want   int
	}{
		"new secret":        {"new-tok", time.Hour, 200},
		"old secret":        {tokenSecret, time.Hour, 200},
		"retired secret":    {"retired", time.Hour, 403},
		"a day ahead":       {"new-tok", 24 * time.Hour, 200},
		"longer than a day": {"new-tok", 25 * time.Hour, 403},
	} {
		req := httptest.NewRequest("GET", "/poll?client=r&since=1&token="+token.Mint([]byte(tt.secret), "r", time.Now().Add(tt.ttl)), nil)
		if rec := n.do(req); rec.Code != tt.want {
			t.Errorf("%s: poll = %d %s; want %d", name, rec.Code, rec.Body, tt.want)
		}
	}
}
