package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cometbox/cometbox/internal/redistest"
	"github.com/cometbox/cometbox/pkg/httpapi"
	"github.com/cometbox/cometbox/pkg/poll"
	"github.com/cometbox/cometbox/pkg/queue"
	"github.com/cometbox/cometbox/pkg/token"
)

// parkedServer serves a parking node like cmd/cometbox does: the handler
// on a listener, and a second server for the connections parked polls
// hand back.
func parkedServer(t *testing.T, cfg httpapi.Config, popts poll.Options) (*node, *httptest.Server) {
	t.Helper()
	cfg.Park = true
	n := newNode(t, cfg, popts)
	return n, serveParked(t, n)
}

// serveParked serves n, whose Config.Park is set, as parkedServer does.
func serveParked(t *testing.T, n *node) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(n.h)
	back := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.viaReturned.Add(1)
		n.h.ServeHTTP(w, r)
	})}
	go back.Serve(n.h.Returned())
	t.Cleanup(func() {
		srv.Close()
		back.Close()
		n.h.Returned().Close()
	})
	return srv
}

// pollOn polls through client and reports whether the connection was
// reused.
func pollOn(t *testing.T, client *http.Client, base, c, since string) (status int, body string, hdr http.Header, reused bool) {
	t.Helper()
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
	})
	url := fmt.Sprintf("%s/poll?client=%s&since=%s&token=%s", base, c, since, token.Mint([]byte(tokenSecret), c, time.Now().Add(time.Hour)))
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set("Origin", "https://app.example")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("poll: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header, reused
}

// parkedOn serves a parking, pipelining node over rdb with poll timeout
// timeout, and returns it with a client that keeps one connection to it.
func parkedOn(t *testing.T, rdb *redis.Client, timeout time.Duration) (*node, *httptest.Server, *http.Client) {
	t.Helper()
	cfg := secured()
	cfg.Park = true
	cfg.CORSOrigins = []string{"https://app.example"}
	n := nodeOn(t, rdb, queue.Options{Pipeline: true}, cfg, poll.Options{Timeout: timeout})
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	t.Cleanup(client.CloseIdleConnections)
	return n, serveParked(t, n), client
}

// publishWhenWaiting publishes text to client once n holds a waiting
// poll, from a goroutine: the poll blocks the test's own. If no poll ever
// waits, it publishes after 3 s, and the test fails on its poll's answer.
func publishWhenWaiting(n *node, client, text string) {
	go func() {
		for deadline := time.Now().Add(3 * time.Second); n.poller.Waiting() == 0 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		n.do(publishReq(`<message to="`+client+`">`+text+`</message>`, "text/xml"))
	}()
}

func TestParkedPollKeepsTheConnection(t *testing.T) {
	cfg := secured()
	cfg.CORSOrigins = []string{"https://app.example"}
	n, srv := parkedServer(t, cfg, poll.Options{Timeout: 2 * time.Second})
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	defer client.CloseIdleConnections()

	publishWhenWaiting(n, "p", "parked")
	status, body, hdr, _ := pollOn(t, client, srv.URL, "p", "")
	if status != 200 || body != `[{"id":1,"data":"parked"}]` {
		t.Fatalf("parked poll = %d %s", status, body)
	}
	for k, want := range map[string]string{
		"Content-Type": "application/json", "Cache-Control": "no-store",
		"Access-Control-Allow-Origin": "https://app.example", "Cometbox-Cursor": "",
	} {
		if got := hdr.Get(k); got == "" || (want != "" && got != want) {
			t.Errorf("parked answer header %s = %q; want %q", k, got, want)
		}
	}
	// The same connection carries the next poll, which parks and times out.
	start := time.Now()
	status, body, _, reused := pollOn(t, client, srv.URL, "p", hdr.Get("Cometbox-Cursor"))
	if status != 200 || body != "[]" || !reused {
		t.Fatalf("next poll = %d %s, reused %v; want [] on the same connection", status, body, reused)
	}
	if d := time.Since(start); d < 1500*time.Millisecond {
		t.Errorf("parked poll timed out after %v; want the ~2s poll timeout", d)
	}
	if n.poller.Held() != 0 {
		t.Errorf("%d polls still held", n.poller.Held())
	}
}

func TestParkedPollBrowserLeaves(t *testing.T) {
	n, srv := parkedServer(t, secured(), poll.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/poll?client=gone&token="+
			token.Mint([]byte(tokenSecret), "gone", time.Now().Add(time.Hour)), nil)
		_, err := http.DefaultClient.Do(req)
		done <- err
	}()
	waitHeld(t, n, 1)
	cancel()
	<-done
	waitHeld(t, n, 0)
	http.DefaultClient.CloseIdleConnections()
}

func TestParkedPollsDrain(t *testing.T) {
	n, srv := parkedServer(t, secured(), poll.Options{DrainSpread: 500 * time.Millisecond})
	const polls = 5
	results := make(chan string, polls)
	for i := range polls {
		go func() {
			c := fmt.Sprint("d", i)
			resp, err := http.Get(srv.URL + "/poll?client=" + c + "&token=" + token.Mint([]byte(tokenSecret), c, time.Now().Add(time.Hour)))
			if err != nil {
				results <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- fmt.Sprintf("%d %s close=%v", resp.StatusCode, b, resp.Close)
		}()
	}
	waitHeld(t, n, polls)
	start := time.Now()
	n.poller.Drain()
	for range polls {
		if got := <-results; got != "200 [] close=true" {
			t.Errorf("drained parked poll = %q; want 200 [] with Connection: close", got)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("drain took %v; want within the 500ms spread", d)
	}
	waitHeld(t, n, 0)
}

// A connection answered and then left idle is closed after IdleTimeout;
// one that sends its next request is served.
func TestParkedConnectionIdles(t *testing.T) {
	cfg := secured()
	cfg.IdleTimeout = 300 * time.Millisecond
	n, srv := parkedServer(t, cfg, poll.Options{Timeout: 200 * time.Millisecond})
	c := dialRaw(t, srv.URL)
	c.poll("i", "", "")
	if resp, body := c.answer(); resp.StatusCode != 200 || body != "[]" {
		t.Fatalf("answer = %d %s", resp.StatusCode, body)
	}
	if d := c.closed(3 * time.Second); d < 200*time.Millisecond || d > 2*time.Second {
		t.Errorf("idle connection closed after %v; want about the 300ms idle timeout", d)
	}
	waitHeld(t, n, 0)
}

// waitWaiting waits until want polls have read their queue, found
// nothing and wait for a wake-up: parked, on a node that parks. (Held
// counts them from their admission, before they read.)
func waitWaiting(t testing.TB, n *node, want int) {
	t.Helper()
	waitCount(t, "polls waiting", n.poller.Waiting, want)
}

func waitHeld(t testing.TB, n *node, want int) {
	t.Helper()
	waitCount(t, "polls held", n.poller.Held, want)
}

// waitCount waits up to 3 s for count to give want.
func waitCount(t testing.TB, what string, count func() int, want int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for count() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d %s; want %d", count(), what, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// A connection that cannot be hijacked (here a recorder; in life HTTP/2)
// waits in its handler and is answered all the same.
func TestParkFallsBackWithoutHijack(t *testing.T) {
	cfg := secured()
	cfg.Park = true
	n := newNode(t, cfg, poll.Options{})
	go func() {
		for n.poller.Held() == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		n.do(publishReq(`<message to="r">no hijack</message>`, "text/xml"))
	}()
	if rec := n.do(pollReq("r", "")); rec.Code != 200 || rec.Body.String() != `[{"id":1,"data":"no hijack"}]` {
		t.Fatalf("poll = %d %s", rec.Code, rec.Body)
	}
}

// A HEAD poll that has to wait is answered with headers only, and the
// connection carries the next request. (HEAD polls used to park, and the
// parked answer carried its body: the next response read on the
// connection began with it.)
func TestHeadPollThatWaits(t *testing.T) {
	n, srv := parkedServer(t, secured(), poll.Options{Timeout: 5 * time.Second})
	c := dialRaw(t, srv.URL)
	tok := token.Mint([]byte(tokenSecret), "h", time.Now().Add(time.Hour))
	c.send("HEAD /poll?client=h&token=" + tok + " HTTP/1.1\r\nHost: node\r\n\r\n")
	waitWaiting(t, n, 1)
	n.do(publishReq(`<message to="h">headed</message>`, "text/xml"))
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(c.br, &http.Request{Method: "HEAD"})
	if err != nil {
		t.Fatalf("reading the HEAD answer: %v", err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Cometbox-Cursor") == "" {
		t.Fatalf("HEAD poll = %d, cursor %q", resp.StatusCode, resp.Header.Get("Cometbox-Cursor"))
	}
	c.send("GET /healthz HTTP/1.1\r\nHost: node\r\n\r\n")
	if resp, body := c.answer(); resp.StatusCode != 200 {
		t.Fatalf("the request after a HEAD poll = %d %q", resp.StatusCode, body)
	}
}

// scriptCalls counts the calls of the read script a client makes, alone
// or in pipelines: reads (with a limit) and acknowledgements (limit 0).
type scriptCalls struct{ reads, acks atomic.Int64 }

func (c *scriptCalls) count(cmd redis.Cmder) {
	args := cmd.Args() // evalsha SHA 2 META LIST EPOCH ACK AFTER LIMIT TTL NOW FORCE
	if cmd.Name() != "evalsha" || len(args) != 12 || fmt.Sprint(args[2]) != "2" {
		return
	}
	if fmt.Sprint(args[8]) == "0" {
		c.acks.Add(1)
	} else {
		c.reads.Add(1)
	}
}

func (c *scriptCalls) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *scriptCalls) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.count(cmd)
		return next(ctx, cmd)
	}
}
func (c *scriptCalls) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			c.count(cmd)
		}
		return next(ctx, cmds)
	}
}

// The browser's next poll after an answer taken from a wake-up finds the
// client's channel still subscribed and knows from that wake-up that
// nothing else is queued: it waits without reading the queue, and the
// messages it acknowledges leave Redis in the background.
func TestRePollAfterWakeReadsNothing(t *testing.T) {
	mr, rdb := redistest.New(t)
	var calls scriptCalls
	rdb.AddHook(&calls)
	n, srv, client := parkedOn(t, rdb, 5*time.Second)
	publishWhenWaiting(n, "r", "one")
	status, body, hdr, _ := pollOn(t, client, srv.URL, "r", "")
	if status != 200 || body != `[{"id":1,"data":"one"}]` || calls.reads.Load() != 1 {
		t.Fatalf("first poll = %d %s after %d reads; want message 1 after 1", status, body, calls.reads.Load())
	}
	publishWhenWaiting(n, "r", "two")
	status, body, hdr, _ = pollOn(t, client, srv.URL, "r", hdr.Get("Cometbox-Cursor"))
	if status != 200 || body != `[{"id":2,"data":"two"}]` {
		t.Fatalf("second poll = %d %s; want message 2", status, body)
	}
	if got := calls.reads.Load(); got != 1 {
		t.Errorf("the second poll read the queue (%d reads); want none", got-1)
	}
	queued := func() int { items, _ := mr.List("cb:{r}:q"); return len(items) }
	waitCount(t, "queued messages", queued, 1) // message 1 acknowledged, 2 not yet
	if got := calls.acks.Load(); got != 1 {
		t.Errorf("%d acknowledgements sent; want 1", got)
	}

	// A poll at an older cursor reads.
	status, body, _, _ = pollOn(t, client, srv.URL, "r", strings.TrimSuffix(hdr.Get("Cometbox-Cursor"), "2")+"1")
	if status != 200 || body != `[{"id":2,"data":"two"}]` || calls.reads.Load() != 2 {
		t.Fatalf("poll at 1 = %d %s after %d reads; want message 2 after 2", status, body, calls.reads.Load())
	}
}

// A re-poll held without reading still learns at once that its client's
// sequence is gone (Redis flushed between the wake-up it trusts and the
// re-poll): its background acknowledgement says so, and the poll reads.
// (It used to wait for its timeout and answer without the reset.)
func TestRePollWithoutReadLearnsOfAReset(t *testing.T) {
	mr, rdb := redistest.New(t)
	n, srv, client := parkedOn(t, rdb, 10*time.Second)
	publishWhenWaiting(n, "f", "one")
	status, body, hdr, _ := pollOn(t, client, srv.URL, "f", "")
	if status != 200 || body != `[{"id":1,"data":"one"}]` {
		t.Fatalf("first poll = %d %s", status, body)
	}
	mr.FlushAll()
	start := time.Now()
	status, body, hdr, _ = pollOn(t, client, srv.URL, "f", hdr.Get("Cometbox-Cursor"))
	if status != 200 || body != "[]" || hdr.Get("Cometbox-Reset") != "1" {
		t.Fatalf("re-poll after the flush = %d %s, reset %q; want [] with Cometbox-Reset", status, body, hdr.Get("Cometbox-Reset"))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the reset came after %v; want it at once, not at the 10s timeout", d)
	}
}
