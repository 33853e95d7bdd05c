package httpapi_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cometbox/cometbox/pkg/metrics"
	"github.com/cometbox/cometbox/pkg/poll"
	"github.com/cometbox/cometbox/pkg/token"
)

// rawConn is one HTTP/1.1 connection, written and read by hand.
type rawConn struct {
	tb     testing.TB
	conn   net.Conn
	br     *bufio.Reader
	byNode bool // the last answer was written by the node's own writer
}

func dialRaw(tb testing.TB, url string) *rawConn {
	tb.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return &rawConn{tb: tb, conn: conn, br: bufio.NewReader(conn)}
}

// poll sends a poll with the given extra header lines.
func (c *rawConn) poll(client, since, headers string) {
	c.tb.Helper()
	tok := token.Mint([]byte(tokenSecret), client, time.Now().Add(time.Hour))
	c.send(fmt.Sprintf("GET /poll?client=%s&since=%s&token=%s HTTP/1.1\r\nHost: node\r\n%s\r\n", client, since, tok, headers))
}

func (c *rawConn) send(s string) {
	c.tb.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.tb.Fatal(err)
	}
}

// answer reads the next response.
func (c *rawConn) answer() (*http.Response, string) {
	c.tb.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	c.byNode = c.writtenByNode()
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.tb.Fatalf("reading the answer: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.tb.Fatalf("reading the answer's body: %v", err)
	}
	return resp, string(b)
}

// closed waits up to within for the node to close the connection and
// says how long that took; data, or no close in time, fails the test.
func (c *rawConn) closed(within time.Duration) time.Duration {
	c.tb.Helper()
	start := time.Now()
	_ = c.conn.SetReadDeadline(start.Add(within))
	if b, err := c.br.ReadByte(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		c.tb.Fatalf("want the connection closed within %v; read %q, %v", within, b, err)
	}
	return time.Since(start)
}

// writtenByNode reports whether the next answer was written by the
// node's own writer (a parked poll's answer, or a re-poll served on the
// parked connection), which puts Date first, rather than by net/http,
// which sorts its headers.
func (c *rawConn) writtenByNode() bool {
	head, _ := c.br.Peek(64)
	_, rest, _ := strings.Cut(string(head), "\r\n")
	return strings.HasPrefix(rest, "Date: ")
}

// The re-polls of a browser are served on its parked connection, through
// the same handler (CORS, token, request id, cursor headers), whether they
// park again or answer at once; other requests go to Returned.
func TestRePollsServedOnTheParkedConnection(t *testing.T) {
	cfg := secured()
	cfg.CORSOrigins = []string{"https://app.example"}
	reg := prometheus.NewRegistry()
	cfg.M = metrics.New(reg)
	n, srv := parkedServer(t, cfg, poll.Options{Timeout: 5 * time.Second})
	c := dialRaw(t, srv.URL)
	origin := "Origin: https://app.example\r\n"

	c.poll("f", "", origin) // parks (net/http reads this first request)
	waitWaiting(t, n, 1)
	n.do(publishReq(`<message to="f">one</message>`, "text/xml"))
	resp, body := c.answer()
	if resp.StatusCode != 200 || body != `[{"id":1,"data":"one"}]` || !c.byNode {
		t.Fatalf("first answer = %d %s, from the parked poll %v", resp.StatusCode, body, c.byNode)
	}

	// Pending when the re-poll comes: answered at once, here.
	n.do(publishReq(`<message to="f">two</message>`, "text/xml"))
	c.poll("f", resp.Header.Get("Cometbox-Cursor"), origin+"X-Request-Id: re-poll-2\r\n")
	resp, body = c.answer()
	if resp.StatusCode != 200 || body != `[{"id":2,"data":"two"}]` || !c.byNode {
		t.Fatalf("re-poll = %d %s, served on the parked connection %v", resp.StatusCode, body, c.byNode)
	}
	for k, want := range map[string]string{
		"Content-Type": "application/json", "Cache-Control": "no-store", "X-Request-Id": "re-poll-2",
		"Access-Control-Allow-Origin": "https://app.example", "Vary": "Origin", "X-Content-Type-Options": "nosniff",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("re-poll answer header %s = %q; want %q", k, got, want)
		}
	}
	if resp.Header.Get("Date") == "" || resp.ContentLength != int64(len(body)) || resp.Close {
		t.Errorf("re-poll answer: Date %q, Content-Length %d for %d bytes, close %v",
			resp.Header.Get("Date"), resp.ContentLength, len(body), resp.Close)
	}

	// Nothing pending: it parks again and is woken.
	c.poll("f", resp.Header.Get("Cometbox-Cursor"), origin)
	waitWaiting(t, n, 1)
	n.do(publishReq(`<message to="f">three</message>`, "text/xml"))
	resp, body = c.answer()
	if resp.StatusCode != 200 || body != `[{"id":3,"data":"three"}]` || !c.byNode {
		t.Fatalf("parked re-poll = %d %s, from the parked poll %v", resp.StatusCode, body, c.byNode)
	}

	// Refusals come from the same handler, and keep the connection.
	c.poll("f", resp.Header.Get("Cometbox-Cursor"), "Origin: https://evil.example\r\n")
	if resp, body = c.answer(); resp.StatusCode != http.StatusForbidden || resp.Close {
		t.Errorf("re-poll from an unlisted origin = %d %s, close %v; want 403", resp.StatusCode, body, resp.Close)
	}
	c.send("GET /poll?client=f&token=forged HTTP/1.1\r\nHost: node\r\n\r\n")
	if resp, body = c.answer(); resp.StatusCode != http.StatusForbidden {
		t.Errorf("re-poll with a forged token = %d %s; want 403", resp.StatusCode, body)
	}
	if got := n.viaReturned.Load(); got != 0 {
		t.Errorf("%d re-polls went through the second server; want 0", got)
	}

	// Anything else is net/http's: here a health check, then a re-poll
	// asking to close.
	c.send("GET /healthz HTTP/1.1\r\nHost: node\r\n\r\n")
	if resp, body = c.answer(); resp.StatusCode != 200 || c.byNode {
		t.Errorf("health check on the connection = %d %s, by the node's writer %v; want net/http's 200", resp.StatusCode, body, c.byNode)
	}
	c.poll("f", "", "Connection: close\r\n")
	if resp, body = c.answer(); resp.StatusCode != 200 || !resp.Close {
		t.Errorf("re-poll asking to close = %d %s, close %v", resp.StatusCode, body, resp.Close)
	}
	if got := n.viaReturned.Load(); got != 2 {
		t.Errorf("%d requests went through the second server; want 2", got)
	}
	// Counted under their route like any other request.
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP cometbox_http_requests_total HTTP requests answered, by route pattern and status code.
# TYPE cometbox_http_requests_total counter
cometbox_http_requests_total{code="200",route="/healthz"} 1
cometbox_http_requests_total{code="200",route="/poll"} 4
cometbox_http_requests_total{code="200",route="/publish"} 3
cometbox_http_requests_total{code="403",route="/poll"} 2
`), "cometbox_http_requests_total"); err != nil {
		t.Error(err)
	}
}

// A request pipelined behind a poll that would wait: the poll is answered
// at once, and the request after it is served intact.
func TestRequestPipelinedBehindAPoll(t *testing.T) {
	n, srv := parkedServer(t, secured(), poll.Options{Timeout: 5 * time.Second})
	c := dialRaw(t, srv.URL)
	tok := token.Mint([]byte(tokenSecret), "pipe", time.Now().Add(time.Hour))
	c.send("GET /poll?client=pipe&token=" + tok + " HTTP/1.1\r\nHost: node\r\n\r\n" +
		"GET /healthz HTTP/1.1\r\nHost: node\r\n\r\n")
	if resp, body := c.answer(); resp.StatusCode != 200 || body != "[]" {
		t.Fatalf("poll = %d %s; want an empty page at once", resp.StatusCode, body)
	}
	if resp, body := c.answer(); resp.StatusCode != 200 {
		t.Fatalf("request behind it = %d %s; want the health check's 200", resp.StatusCode, body)
	}
	waitHeld(t, n, 0)
}

// A re-poll whose head comes in pieces is read whole; one that never ends
// is cut at the read-header timeout.
func TestRePollHeadInPieces(t *testing.T) {
	cfg := secured()
	cfg.ReadHeaderTimeout = 300 * time.Millisecond
	n, srv := parkedServer(t, cfg, poll.Options{Timeout: 200 * time.Millisecond})
	c := dialRaw(t, srv.URL)
	c.poll("pc", "", "")
	if resp, body := c.answer(); resp.StatusCode != 200 || body != "[]" {
		t.Fatalf("first poll = %d %s", resp.StatusCode, body)
	}
	tok := token.Mint([]byte(tokenSecret), "pc", time.Now().Add(time.Hour))
	for _, piece := range []string{"G", "ET /poll?client=pc&token=" + tok, " HTTP/1.1\r\nHo", "st: node\r\n", "\r\n"} {
		c.send(piece)
		time.Sleep(20 * time.Millisecond)
	}
	if resp, body := c.answer(); resp.StatusCode != 200 || body != "[]" {
		t.Fatalf("re-poll in pieces = %d %s", resp.StatusCode, body)
	}
	c.send("GET /poll?client=pc HTTP/1.1\r\n") // and never the rest
	if d := c.closed(3 * time.Second); d > 2*time.Second {
		t.Errorf("cut after %v; want about the 300ms read-header timeout", d)
	}
	if got := n.viaReturned.Load(); got != 0 {
		t.Errorf("%d requests went through the second server; want 0", got)
	}
	waitHeld(t, n, 0)
}

// A head with bare line feeds (which net/http accepts) is handed to
// net/http at once, even one whose blank line is a CRLF. (It used to wait
// for the read-header timeout and be cut.)
func TestRePollBareLineFeeds(t *testing.T) {
	cfg := secured()
	cfg.ReadHeaderTimeout = 3 * time.Second
	_, srv := parkedServer(t, cfg, poll.Options{Timeout: 100 * time.Millisecond})
	for _, head := range []string{"GET /healthz HTTP/1.1\nHost: a\n\r\n", "GET /healthz HTTP/1.1\nHost: a\n\n"} {
		c := dialRaw(t, srv.URL)
		c.poll("lf", "", "")
		if resp, body := c.answer(); resp.StatusCode != 200 || body != "[]" {
			t.Fatalf("first poll = %d %s", resp.StatusCode, body)
		}
		c.send(head)
		_ = c.conn.SetReadDeadline(time.Now().Add(time.Second))
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			t.Fatalf("%q: no answer within a second: %v", head, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%q = %d; want the health check's 200", head, resp.StatusCode)
		}
	}
}

// Once the node's base context is cancelled (the shutdown grace period is
// over), a re-poll is not held: its connection is closed. (Re-polls used to
// run on a context of their own, and parked.)
func TestRePollAfterBaseContextCancelled(t *testing.T) {
	cfg := secured()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg.BaseContext = ctx
	n, srv := parkedServer(t, cfg, poll.Options{Timeout: 300 * time.Millisecond})
	c := dialRaw(t, srv.URL)
	c.poll("bc", "", "") // parks, and times out: answered on the parked connection
	if resp, body := c.answer(); resp.StatusCode != 200 || body != "[]" {
		t.Fatalf("first poll = %d %s", resp.StatusCode, body)
	}
	cancel()
	c.poll("bc", "", "")
	c.closed(2 * time.Second)
	waitHeld(t, n, 0)
}

// A request head that starts on a parked connection and is handed to
// net/http unfinished (here: longer than the parked reader's buffer) has
// one read-header timeout in all, counted from its first byte, not a
// fresh one from net/http.
func TestHandedBackHeadKeepsItsTimeout(t *testing.T) {
	cfg := secured()
	cfg.ReadHeaderTimeout = 600 * time.Millisecond
	cfg.Park = true
	n := newNode(t, cfg, poll.Options{Timeout: 200 * time.Millisecond})
	srv := httptest.NewServer(n.h)
	defer srv.Close()
	// Handed-back connections are served with the same timeout, as
	// cmd/cometbox does.
	back := &http.Server{Handler: n.h, ReadHeaderTimeout: cfg.ReadHeaderTimeout}
	go back.Serve(n.h.Returned())
	defer func() { back.Close(); n.h.Returned().Close() }()

	c := dialRaw(t, srv.URL)
	c.poll("slow-head", "", "")
	if resp, body := c.answer(); resp.StatusCode != 200 || body != "[]" {
		t.Fatalf("poll = %d %s", resp.StatusCode, body)
	}
	start := time.Now()
	c.send("GET /poll?client=slow-head HTTP/1.1\r\nHost: x\r\n")
	time.Sleep(400 * time.Millisecond) // most of the timeout spent on the parked connection
	c.send("X-Long: " + strings.Repeat("a", 6000) + "\r\n")
	c.closed(3 * time.Second)
	if took := time.Since(start); took > cfg.ReadHeaderTimeout+300*time.Millisecond {
		t.Errorf("the unfinished head was cut after %v; want about the %v read-header timeout", took, cfg.ReadHeaderTimeout)
	}
}
