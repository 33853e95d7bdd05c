package httpapi

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cometbox/cometbox/internal/redistest"
	"github.com/cometbox/cometbox/pkg/message"
	"github.com/cometbox/cometbox/pkg/poll"
	"github.com/cometbox/cometbox/pkg/queue"
)

const plainRePoll = "GET /poll?client=alice&since=3:7 HTTP/1.1\r\n" +
	"Host: node.example:8080\r\n" +
	"Origin: https://app.example\r\n" +
	"Authorization: Bearer abc\r\n" +
	"accept-language: en, de;q=0.5\r\n" +
	"Connection: keep-alive\r\n" +
	"X-Many: 1\r\nX-Many: 2\r\n\r\n"

func TestParseRePoll(t *testing.T) {
	req := parseHead(t, plainRePoll)
	if req == nil {
		t.Fatal("a plain re-poll was not taken")
	}
	if req.Host != "node.example:8080" || req.URL.Path != "/poll" || req.URL.Query().Get("since") != "3:7" ||
		req.Header.Get("Origin") != "https://app.example" || req.Header.Get("Accept-Language") != "en, de;q=0.5" ||
		len(req.Header["X-Many"]) != 2 || req.Header.Get("Host") != "" || req.RemoteAddr != "192.0.2.1:1234" {
		t.Errorf("parsed %+v", req)
	}

	// Each of these is left to net/http.
	for name, head := range map[string]string{
		"post":              strings.Replace(plainRePoll, "GET", "POST", 1),
		"head":              strings.Replace(plainRePoll, "GET", "HEAD", 1),
		"another path":      strings.Replace(plainRePoll, "/poll?", "/polls?", 1),
		"stream":            strings.Replace(plainRePoll, "/poll?", "/stream?", 1),
		"http/1.0":          strings.Replace(plainRePoll, "HTTP/1.1", "HTTP/1.0", 1),
		"absolute form":     strings.Replace(plainRePoll, "/poll?", "http://x/poll?", 1),
		"no host":           strings.Replace(plainRePoll, "Host: node.example:8080\r\n", "", 1),
		"two hosts":         strings.Replace(plainRePoll, "Origin", "Host: b\r\nOrigin", 1),
		"bad host":          strings.Replace(plainRePoll, "node.example", "no/de", 1),
		"close":             strings.Replace(plainRePoll, "keep-alive", "close", 1),
		"upgrade":           strings.Replace(plainRePoll, "X-Many: 1", "Upgrade: websocket", 1),
		"expect":            strings.Replace(plainRePoll, "X-Many: 1", "Expect: 100-continue", 1),
		"chunked":           strings.Replace(plainRePoll, "X-Many: 1", "Transfer-Encoding: chunked", 1),
		"body":              strings.Replace(plainRePoll, "X-Many: 1", "Content-Length: 3", 1),
		"folded":            strings.Replace(plainRePoll, "\r\nX-Many: 2", "\r\n X-Many: 2", 1),
		"no colon":          strings.Replace(plainRePoll, "X-Many: 2", "X-Many 2", 1),
		"space before ':'":  strings.Replace(plainRePoll, "X-Many: 2", "X-Many : 2", 1),
		"control in value":  strings.Replace(plainRePoll, "X-Many: 2", "X-Many: 2\x01", 1),
		"space in target":   strings.Replace(plainRePoll, "since=3:7", "since=3 7", 1),
		"fragment":          strings.Replace(plainRePoll, "since=3:7", "since=3:7#x", 1),
		"two spaces":        strings.Replace(plainRePoll, "GET /", "GET  /", 1),
		"lower-case method": strings.Replace(plainRePoll, "GET", "get", 1),
	} {
		if req := parseHead(t, head); req != nil {
			t.Errorf("%s: taken; want it left to net/http", name)
		}
	}
}

// parseHead gives parseRePoll a head as readNext does: up to the CRLF
// that ends the last header line.
func parseHead(t testing.TB, head string) *http.Request {
	t.Helper()
	head = strings.TrimSuffix(head, "\r\n")
	return parseRePoll(context.Background(), []byte(head), fakeConn{})
}

type fakeConn struct{ net.Conn }

func (fakeConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1234} }

// FuzzParseRePoll checks parseRePoll against net/http's own parser: what
// it takes, net/http takes too, and reads the same way.
func FuzzParseRePoll(f *testing.F) {
	f.Add(plainRePoll)
	f.Add("GET /poll HTTP/1.1\r\nHost: x\r\n\r\n")
	f.Add("GET /poll?client=a%20b&since= HTTP/1.1\r\nHost: [::1]:80\r\nContent-Length: 0\r\n\r\n")
	f.Add("GET /poll?client=a HTTP/1.1\r\nHost: x\r\nX: a\tb\r\n\r\n")
	f.Fuzz(func(t *testing.T, head string) {
		i := strings.Index(head, "\r\n\r\n")
		if i < 0 {
			return
		}
		head = head[:i+4]
		ours := parseRePoll(context.Background(), []byte(head[:i+2]), fakeConn{})
		if ours == nil {
			return
		}
		theirs, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
		if err != nil {
			t.Fatalf("taken here, refused by net/http (%v): %q", err, head)
		}
		if theirs.Method != ours.Method || theirs.Host != ours.Host || theirs.RequestURI != ours.RequestURI ||
			theirs.URL.String() != ours.URL.String() || theirs.Close || theirs.ContentLength > 0 {
			t.Fatalf("read differently:\nnet/http %s %q host %q close %v length %d\nhere     %s %q host %q",
				theirs.Method, theirs.URL, theirs.Host, theirs.Close, theirs.ContentLength, ours.Method, ours.URL, ours.Host)
		}
		for k, v := range theirs.Header {
			if got := ours.Header[k]; strings.Join(got, "\n") != strings.Join(v, "\n") {
				t.Fatalf("header %s: net/http %q, here %q, in %q", k, v, got, head)
			}
		}
		if len(ours.Header) != len(theirs.Header) {
			t.Fatalf("headers: net/http %v, here %v", theirs.Header, ours.Header)
		}
	})
}

// Bytes read back into a connection come before the ones it still had to
// replay. (They used to be put after them, which garbled a request
// pipelined behind a poll.)
func TestPrefixedKeepsOrder(t *testing.T) {
	c := prefixed(readerConn{r: strings.NewReader("-tail")}, []byte("GET /x"))
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil || b[0] != 'G' {
		t.Fatalf("read %q, %v", b, err)
	}
	c = prefixed(c, b) // read one byte, then put it back
	all, _ := io.ReadAll(c)
	if string(all) != "GET /x-tail" {
		t.Errorf("replayed %q; want %q", all, "GET /x-tail")
	}
}

// readerConn is a connection that only reads.
type readerConn struct {
	net.Conn
	r io.Reader
}

func (c readerConn) Read(b []byte) (int, error) { return c.r.Read(b) }

func BenchmarkParseRePoll(b *testing.B) {
	head := []byte(strings.TrimSuffix(plainRePoll, "\r\n"))
	b.ReportAllocs()
	for b.Loop() {
		req := parseRePoll(context.Background(), head, fakeConn{})
		if req == nil {
			b.Fatal("not taken")
		}
		freeHeader(req.Header) // as serveNext does once the request is served
	}
}

// BenchmarkWriteAnswer renders and writes a parked poll's answer of one
// message, as parked.finish does.
func BenchmarkWriteAnswer(b *testing.B) {
	h := New(nil, poll.New(nil, nil, nil, poll.Options{}), Config{})
	pk := &parked{h: h, reqID: "3f2a9c1b-1k", allowOrigin: "https://app.example"}
	page := message.Page{
		Messages: []message.Queued{{ID: 8, JSON: []byte(`{"id":8,"data":"` + strings.Repeat("x", 64) + `"}`)}},
		Next:     message.Cursor{Epoch: "k3v9", ID: 8},
	}
	conn := discardConn{}
	b.ReportAllocs()
	for b.Loop() {
		rec := pk.recorder()
		h.writePage(rec, page)
		if err := h.writeResponse(conn, rec, false); err != nil {
			b.Fatal(err)
		}
		rec.free()
	}
}

// Recorders and re-poll header maps are reused; nothing of one answer or
// request may show in the next.
func TestReusedStartEmpty(t *testing.T) {
	h := New(nil, poll.New(nil, nil, nil, poll.Options{}), Config{})
	pk := &parked{h: h, reqID: "r1"}
	gapPage := message.Page{Gap: message.Range{First: 1, Last: 4}, Reset: true, Next: message.Cursor{Epoch: "e", ID: 5}}
	plain := strings.Replace(plainRePoll, "X-Many: 1\r\nX-Many: 2\r\n", "", 1)
	for i := range 100 {
		rec := pk.recorder()
		if rec.status != http.StatusOK || rec.wrote || rec.body.Len() != 0 || rec.header.Get("Cometbox-Gap") != "" {
			t.Fatalf("round %d: a reused recorder starts with status %d, wrote %v, body %q, header %v", i, rec.status, rec.wrote, rec.body.String(), rec.header)
		}
		h.writePage(rec, gapPage)
		rec.WriteHeader(http.StatusTeapot)
		rec.free()

		first := parseHead(t, plainRePoll)
		freeHeader(first.Header)
		next := parseHead(t, plain)
		if got := next.Header["X-Many"]; got != nil {
			t.Fatalf("round %d: a re-poll without X-Many has %q from an earlier one", i, got)
		}
		freeHeader(next.Header)
	}
}

type discardConn struct{ net.Conn }

func (discardConn) Write(b []byte) (int, error)      { return len(b), nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }

// Connections handed over once the listener is closed, or waiting in it
// when it closes, are closed. (A hand-over racing the close used to leave
// the connection queued where nobody would accept it.)
func TestReturnedConnsClosed(t *testing.T) {
	for i := range 50 {
		l := newReturnedConns()
		queued, late := net.Pipe() // queued before the close
		l.hand(queued)
		_ = l.Close()
		a, b := net.Pipe() // handed over after it
		l.hand(a)
		for name, peer := range map[string]net.Conn{"queued": late, "late": b} {
			_ = peer.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := peer.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("round %d: the %s connection: read %v; want it closed (EOF)", i, name, err)
			}
		}
	}
}

// Like net/http, a status set after the body is ignored.
func TestRecorderKeepsFirstStatus(t *testing.T) {
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	_, _ = rec.Write([]byte("[]"))
	rec.WriteHeader(http.StatusInternalServerError)
	if rec.status != http.StatusOK {
		t.Errorf("status = %d after WriteHeader(500) following the body; want 200", rec.status)
	}
	rec = &recorder{header: http.Header{}, status: http.StatusOK}
	rec.WriteHeader(http.StatusForbidden)
	rec.WriteHeader(http.StatusTeapot)
	if rec.status != http.StatusForbidden {
		t.Errorf("status = %d; want the first, 403", rec.status)
	}
}

// writePage declares the length of what it writes, for any number of
// messages.
func TestWritePageContentLength(t *testing.T) {
	h := New(nil, poll.New(nil, nil, nil, poll.Options{}), Config{})
	for n := range 4 {
		var page message.Page
		for i := range n {
			page.Messages = append(page.Messages, message.Queued{ID: uint64(i + 1), JSON: []byte(`{"id":` + strconv.Itoa(i+1) + `,"data":"x"}`)})
		}
		rec := httptest.NewRecorder()
		h.writePage(rec, page)
		if got, want := rec.Header().Get("Content-Length"), strconv.Itoa(rec.Body.Len()); got != want {
			t.Errorf("%d messages: Content-Length %s for a body of %s bytes (%s)", n, got, want, rec.Body)
		}
	}
}

// The Date of an answer is formatted once per second, and is the second
// of the answer, not of an earlier one.
func TestHTTPDates(t *testing.T) {
	var d httpDates
	t0 := time.Date(2026, 11, 26, 9, 59, 30, 900_000_000, time.FixedZone("CET", 3600))
	for _, at := range []time.Time{t0, t0.Add(50 * time.Millisecond), t0.Add(100 * time.Millisecond), t0.Add(-time.Hour)} {
		if got, want := d.format(at), at.UTC().Format(http.TimeFormat); got != want {
			t.Errorf("format(%v) = %q; want %q", at, got, want)
		}
	}
	cached := d.last.Load()
	d.format(t0.Add(-time.Hour + 10*time.Millisecond))
	if cached == nil || d.last.Load() != cached {
		t.Error("a second formatted anew; want it formatted once")
	}
}

// A parked poll woken just before the node drains answers with its
// message at once: the drain neither pushes the wake-up's read deadline
// back to the poll's drain moment, nor answers [] when both are due.
// (The drain used to set the deadline to its moment, up to -drain-spread
// later, and was checked before a pending wake-up.)
func TestDrainKeepsAWakeUp(t *testing.T) {
	for _, spread := range []time.Duration{time.Hour, time.Nanosecond} {
		t.Run(spread.String(), func(t *testing.T) {
			_, rdb := redistest.New(t)
			q := queue.New(rdb, queue.Options{})
			var wakeup func(string)
			subscribe := func(_ context.Context, _ string, _ time.Duration, wake func(string)) (func(), string, error) {
				wakeup = wake
				return func() {}, "", nil
			}
			p := poll.New(q, subscribe, nil, poll.Options{DrainSpread: spread})
			h := New(q, p, Config{})
			pk := &parked{h: h}
			_, held, err := p.Hold(context.Background(), "c", message.Cursor{}, pk.wake)
			if err != nil || held == nil {
				t.Fatalf("Hold = %v, %v; want a held poll", held, err)
			}
			nodeSide, browser := tcpPair(t)
			pk.held, pk.conn, pk.raw = held, nodeSide, nodeSide
			answered := make(chan struct{})
			go func() { defer close(answered); pk.run() }()
			waitCount(t, "polls parked", p.Waiting, 1)
			time.Sleep(10 * time.Millisecond) // the parked Read is under way

			b := message.Batch{Messages: []message.Message{{To: "c", Data: []byte(`"hi"`)}}}
			if _, err := q.Publish(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			wakeup("") // the wake-up, then at once the drain
			p.Drain()

			_ = browser.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(browser), nil)
			if err != nil {
				t.Fatalf("no answer after a wake-up and a drain: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			if !strings.Contains(string(body), `"data":"hi"`) {
				t.Errorf("answer %q; want the message that woke the poll", body)
			}
			browser.Close()
			<-answered
		})
	}
}

// tcpPair is the two ends of a loopback TCP connection, closed when the
// test ends: deadlines on a real socket behave as the node's do.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if server, err = ln.Accept(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

func waitCount(t *testing.T, what string, count func() int, want int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); count() != want; {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d; want %d", what, count(), want)
		}
		time.Sleep(time.Millisecond)
	}
}
