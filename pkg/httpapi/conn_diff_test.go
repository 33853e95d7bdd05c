package httpapi_test

// Whole connections, compared: the same bytes sent to a node that parks
// waiting polls (park.go, next.go) and to one that does not (every
// request in net/http) must give the same responses, in the same order,
// with the same statuses and bodies, and leave the connection in the
// same state. The parked path is a second implementation of what
// net/http does with a connection; this is what holds it to the first.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cometbox/cometbox/internal/redistest"
	"github.com/cometbox/cometbox/pkg/httpapi"
	"github.com/cometbox/cometbox/pkg/message"
	"github.com/cometbox/cometbox/pkg/poll"
	"github.com/cometbox/cometbox/pkg/queue"
)

// The timings of the compared nodes: short, so that a held poll ends
// quickly, and far enough apart that no two of them race.
const (
	diffPollTimeout = 200 * time.Millisecond
	diffHeader      = time.Second     // ReadHeaderTimeout
	diffRead        = 2 * time.Second // ReadTimeout: a body that never comes
	diffIdle        = 3 * time.Second
	diffWait        = 6 * time.Second // the client's bound on one exchange
)

// probe ends every exchange that does not half-close: it is answered
// only if the connection is still open and in step, and it asks the
// node to close afterwards.
const probe = "GET /healthz HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n"

// diffNode starts a node over its own miniredis and serves it on a
// loopback listener with the server settings of cmd/cometbox; park
// chooses the path waiting polls take. It returns the address.
func diffNode(tb testing.TB, park bool) string {
	tb.Helper()
	_, rdb := redistest.New(tb)
	cfg := httpapi.Config{
		Park: park, IdleTimeout: diffIdle, ReadHeaderTimeout: diffHeader,
		MaxBodyBytes: 4096, Limits: message.Limits{MaxMessageBytes: 100, MaxMessages: 10},
	}
	n := nodeOn(tb, rdb, queue.Options{}, cfg, poll.Options{Timeout: diffPollTimeout})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	newServer := func() *http.Server {
		return &http.Server{
			Handler: n.h, ReadHeaderTimeout: diffHeader, ReadTimeout: diffRead,
			WriteTimeout: 15 * time.Second, IdleTimeout: diffIdle, MaxHeaderBytes: 16 << 10,
			ErrorLog: log.New(io.Discard, "", 0),
		}
	}
	srv, back := newServer(), newServer()
	go srv.Serve(ln)
	go back.Serve(n.h.Returned())
	tb.Cleanup(func() {
		srv.Close()
		back.Close()
		n.h.Returned().Close()
	})
	return ln.Addr().String()
}

// exchange is what a client sends on one connection.
type exchange struct {
	chunks    []string      // written in order
	pause     time.Duration // between chunks
	halfClose bool          // end with CloseWrite instead of the probe
}

func (ex exchange) input() string {
	s := strings.Join(ex.chunks, "")
	if !ex.halfClose {
		s += probe
	}
	return s
}

// transcript runs ex on a new connection to addr and describes what came
// back: each response's status, Connection header and body, then how the
// connection ended.
func transcript(tb testing.TB, addr string, ex exchange) string {
	tb.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(diffWait))
	for i, c := range ex.chunks {
		if i > 0 {
			time.Sleep(ex.pause)
		}
		if _, err := io.WriteString(conn, c); err != nil {
			break // the node closed the connection; what it said is read below
		}
	}
	if ex.halfClose {
		_ = conn.(*net.TCPConn).CloseWrite()
	} else {
		_, _ = io.WriteString(conn, probe)
	}
	raw, err := io.ReadAll(conn)
	end := "closed"
	if errors.Is(err, os.ErrDeadlineExceeded) {
		end = "left open"
	}
	return describe(raw, requestMethods(ex.input())) + end
}

// requestMethods lists the methods of the requests net/http reads from
// input, in order, for reading their responses (a HEAD's has no body).
func requestMethods(input string) []string {
	var methods []string
	br := bufio.NewReader(strings.NewReader(input))
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return methods
		}
		methods = append(methods, req.Method)
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return methods
		}
	}
}

// describe reads the responses in raw, the i-th one answering a request
// of methods[i], as lines of text that two nodes' transcripts compare by;
// the headers that differ between any two answers (Date, X-Request-Id,
// the cursor's epoch) are left out.
func describe(raw []byte, methods []string) string {
	var b strings.Builder
	br := bufio.NewReader(bytes.NewReader(raw))
	for i := 0; ; {
		if _, err := br.Peek(1); err != nil {
			break
		}
		method := http.MethodGet
		if i < len(methods) {
			method = methods[i]
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			rest, _ := io.ReadAll(br)
			fmt.Fprintf(&b, "unreadable (%v): %q\n", err, rest)
			break
		}
		body, err := io.ReadAll(resp.Body)
		fmt.Fprintf(&b, "%d close=%v body=%q", resp.StatusCode, resp.Close, body)
		if err != nil {
			fmt.Fprintf(&b, " (body cut: %v)", err)
		}
		b.WriteString("\n")
		if resp.StatusCode >= 200 { // an interim 100 Continue answers nothing yet
			i++
		}
	}
	return b.String()
}

// diffPair is a parking and a non-parking node, each over a Redis of
// its own.
type diffPair struct{ parked, plain string }

func newDiffPair(tb testing.TB) diffPair {
	return diffPair{parked: diffNode(tb, true), plain: diffNode(tb, false)}
}

// compare runs ex on both nodes at once and fails tb if they differ. It
// returns the plain node's transcript.
func (p diffPair) compare(tb testing.TB, ex exchange) string {
	tb.Helper()
	var parked, plain string
	var wg sync.WaitGroup
	wg.Go(func() { parked = transcript(tb, p.parked, ex) })
	wg.Go(func() { plain = transcript(tb, p.plain, ex) })
	wg.Wait()
	if parked != plain {
		tb.Errorf("sent %q\nparking node answered:\n%s\nnet/http alone answered:\n%s", ex.input(), parked, plain)
	}
	return plain
}

// get is a bodiless request head.
func get(target string, headers ...string) string {
	return "GET " + target + " HTTP/1.1\r\nHost: x\r\n" + strings.Join(headers, "") + "\r\n"
}

// withBody is a request with a Content-Length body.
func withBody(method, target, body string, headers ...string) string {
	return fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n%s",
		method, target, strings.Join(headers, ""), len(body), body)
}

// chunked is a request with a chunked body of one chunk.
func chunked(method, target, body string, headers ...string) string {
	return fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\n%sTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n",
		method, target, strings.Join(headers, ""), len(body), body)
}

const xmlType = "Content-Type: application/xml\r\n"

// connCases are the exchanges both nodes must answer alike: the
// smuggling report, bodies on every method, both framings, pipelining,
// heads and bodies in pieces, half-closed connections.
func connCases() map[string]exchange {
	smuggled := get("/healthz")
	publishBob := `<message to="bob">smuggled</message>`
	smuggledPublish := withBody("POST", "/publish", publishBob, xmlType)
	one := func(s ...string) exchange { return exchange{chunks: []string{strings.Join(s, "")}} }
	later := func(s ...string) exchange { return exchange{chunks: s, pause: 50 * time.Millisecond} }
	cases := map[string]exchange{
		// The report: a waiting poll's body read as a request of its own.
		"poll with a request in its body":          one(withBody("GET", "/poll?client=bob", smuggled)),
		"poll with a publish in its body":          one(withBody("GET", "/poll?client=bob", smuggledPublish), get("/poll?client=bob")),
		"poll with a chunked body":                 one(chunked("GET", "/poll?client=bob", smuggled)),
		"poll with a chunked publish":              one(chunked("GET", "/poll?client=bob", smuggledPublish), get("/poll?client=bob")),
		"poll whose body comes later":              later(withBody("GET", "/poll?client=bob", smuggled)[:60], withBody("GET", "/poll?client=bob", smuggled)[60:]),
		"poll head, then its body":                 later(strings.TrimSuffix(withBody("GET", "/poll?client=bob", smuggled), smuggled), smuggled),
		"poll head, then its chunked body":         later(strings.TrimSuffix(chunked("GET", "/poll?client=bob", smuggled), "0\r\n\r\n"), "0\r\n\r\n"),
		"poll with an empty body":                  one(withBody("GET", "/poll?client=bob", "")),
		"poll with an empty chunked body":          one("GET /poll?client=bob HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
		"poll with both framings":                  one("GET /poll?client=bob HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
		"poll with two lengths":                    one("GET /poll?client=bob HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\nhello"),
		"poll with a signed length":                one("GET /poll?client=bob HTTP/1.1\r\nHost: x\r\nContent-Length: +0\r\n\r\n"),
		"poll with a length then a re-poll":        one(get("/poll?client=bob"), withBody("GET", "/poll?client=bob", smuggled)),
		"re-poll with a body on a parked conn":     later(get("/poll?client=bob"), withBody("GET", "/poll?client=bob", smuggledPublish), get("/poll?client=bob")),
		"re-poll with a chunked body":              later(get("/poll?client=bob"), chunked("GET", "/poll?client=bob", smuggledPublish), get("/poll?client=bob")),
		"re-poll whose body comes later":           later(get("/poll?client=bob"), strings.TrimSuffix(withBody("GET", "/poll?client=bob", smuggled), smuggled), smuggled),
		"head poll with a body":                    one(withBody("HEAD", "/poll?client=bob", smuggled)),
		"expect continue on a poll":                one("GET /poll?client=bob HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nabcd"),
		"pipelined polls":                          one(get("/poll?client=bob"), get("/poll?client=bob"), get("/healthz")),
		"pipelined polls in pieces":                later(get("/poll?client=bob"), get("/poll?client=bob")[:10], get("/poll?client=bob")[10:]),
		"publish then poll":                        one(withBody("POST", "/publish", `<message to="carl">hi</message>`, xmlType), get("/poll?client=carl"), get("/poll?client=carl&since=1")),
		"poll, publish on another conn":            later(get("/poll?client=dora"), withBody("POST", "/publish", `<message to="dora">x</message>`, xmlType)),
		"publish with a chunked body":              one(chunked("POST", "/publish", `<message to="erin">x</message>`, xmlType), get("/poll?client=erin")),
		"ack with a body":                          one(withBody("POST", "/ack?client=bob&cursor=0", smuggled)),
		"options with a body":                      one(withBody("OPTIONS", "/poll?client=bob", smuggled, "Origin: https://o.example\r\n")),
		"delete with a body":                       one(withBody("DELETE", "/poll?client=bob", smuggled)),
		"healthz with a body":                      one(withBody("GET", "/healthz", smuggled)),
		"unknown route with a body":                one(withBody("GET", "/nowhere", smuggled)),
		"poll, then connection close":              one(get("/poll?client=bob", "Connection: close\r\n"), get("/healthz")),
		"re-poll asks to close":                    later(get("/poll?client=bob"), get("/poll?client=bob", "Connection: close\r\n")),
		"http/1.0 poll":                            one("GET /poll?client=bob HTTP/1.0\r\nHost: x\r\n\r\n"),
		"http/1.0 keep-alive poll":                 one("GET /poll?client=bob HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"),
		"bare line feeds":                          one("GET /poll?client=bob HTTP/1.1\nHost: x\n\n"),
		"re-poll with bare line feeds":             later(get("/poll?client=bob"), "GET /poll?client=bob HTTP/1.1\nHost: x\n\n"),
		"folded header":                            one("GET /poll?client=bob HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n"),
		"re-poll with a folded header":             later(get("/poll?client=bob"), "GET /poll?client=bob HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n"),
		"re-poll with two hosts":                   later(get("/poll?client=bob"), "GET /poll?client=bob HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"),
		"re-poll without a host":                   later(get("/poll?client=bob"), "GET /poll?client=bob HTTP/1.1\r\n\r\n"),
		"re-poll with a space before the colon":    later(get("/poll?client=bob"), "GET /poll?client=bob HTTP/1.1\r\nHost : x\r\n\r\n"),
		"re-poll with a bad client":                later(get("/poll?client=bob"), get("/poll?client=b%20b")),
		"re-poll with a bad cursor":                later(get("/poll?client=bob"), get("/poll?client=bob&since=x")),
		"re-poll, absolute form":                   later(get("/poll?client=bob"), get("http://x/poll?client=bob")),
		"re-poll head in pieces":                   later(get("/poll?client=bob"), "GET /poll?cli", "ent=bob HTTP/1.1\r\nHo", "st: x\r\n\r\n"),
		"re-poll with a huge header":               later(get("/poll?client=bob"), get("/poll?client=bob", "X-Big: "+strings.Repeat("a", 5000)+"\r\n")),
		"re-poll with an oversized header":         later(get("/poll?client=bob"), get("/poll?client=bob", "X-Big: "+strings.Repeat("a", 20000)+"\r\n")),
		"re-poll upgrade":                          later(get("/poll?client=bob"), get("/poll?client=bob", "Connection: Upgrade\r\nUpgrade: h2c\r\n")),
		"garbage after a poll":                     later(get("/poll?client=bob"), "\x00\x01garbage\r\n\r\n"),
		"garbage":                                  one("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"),
		"poll then half-close":                     {chunks: []string{get("/poll?client=bob")}, halfClose: true},
		"poll with a body then half-close":         {chunks: []string{withBody("GET", "/poll?client=bob", smuggled)}, halfClose: true},
		"two polls then half-close":                {chunks: []string{get("/poll?client=bob"), get("/poll?client=bob")}, pause: 50 * time.Millisecond, halfClose: true},
		"publish then poll then half-close":        {chunks: []string{withBody("POST", "/publish", `<message to="finn">x</message>`, xmlType), get("/poll?client=finn")}, halfClose: true},
		"an unfinished head then half-close":       {chunks: []string{"GET /poll?client=bob HTTP/1.1\r\nHost: x\r\n"}, halfClose: true},
		"a poll whose body never ends, half-close": {chunks: []string{strings.TrimSuffix(withBody("GET", "/poll?client=bob", smuggled), smuggled)}, halfClose: true},
	}
	return cases
}

// TestConnectionsParkedAsInNetHTTP sends every case to a pair of nodes
// of its own.
func TestConnectionsParkedAsInNetHTTP(t *testing.T) {
	for name, ex := range connCases() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			newDiffPair(t).compare(t, ex)
		})
	}
}

// TestPollBodyIsNotARequest is the smuggling report itself: a poll that
// waits, whose body holds a request, gets one answer, and the body's
// request never runs.
func TestPollBodyIsNotARequest(t *testing.T) {
	publish := withBody("POST", "/publish", `<message to="bob">smuggled</message>`, xmlType)
	for _, framing := range []string{"length", "chunked"} {
		t.Run(framing, func(t *testing.T) {
			p := newDiffPair(t)
			poll := withBody("GET", "/poll?client=bob", publish)
			if framing == "chunked" {
				poll = chunked("GET", "/poll?client=bob", publish)
			}
			for _, addr := range []string{p.parked, p.plain} {
				got := transcript(t, addr, exchange{chunks: []string{poll, get("/poll?client=bob")}})
				want := "200 close=false body=\"[]\"\n" + // the poll, after its timeout
					"200 close=false body=\"[]\"\n" + // the second poll: nothing was published
					"200 close=true body=\"ok\\n\"\n" + // the probe
					"closed"
				if got != want {
					t.Errorf("%s node answered:\n%s\nwant:\n%s", map[bool]string{true: "parking", false: "plain"}[addr == p.parked], got, want)
				}
			}
		})
	}
}

// FuzzConnections sends arbitrary bytes, in one write, to both nodes.
func FuzzConnections(f *testing.F) {
	for _, ex := range connCases() {
		if !ex.halfClose {
			f.Add([]byte(strings.Join(ex.chunks, "")))
		}
	}
	p := newDiffPair(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 8<<10 {
			return
		}
		p.compare(t, exchange{chunks: []string{string(in)}})
	})
}
