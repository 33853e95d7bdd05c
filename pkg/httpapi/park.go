package httpapi

// Parking: a long-poll that has to wait gives its HTTP handler back.
//
// A held poll spends nearly all its life waiting. Kept in its net/http
// handler, each one costs a goroutine whose stack the router, middleware
// and Redis client have grown, plus the connection's read and write
// buffers: about 30 kB. Parked, it is a small struct and a goroutine
// blocked in a one-byte Read on the hijacked connection: a new one (2 to
// 4 kB of stack) for a poll that came through net/http; for a re-poll
// served on a parked connection, the goroutine that served it, whose
// stack has grown already (growing one per message cost 8 % of a loaded
// node's CPU), until a quiet node's collections shrink it
// (cmd/cometbox/memory.go).
// That Read also notices a browser that hangs up. A wake-up, the poll
// timeout and the drain all reach it the same way: by moving the
// connection's read deadline, which makes the Read return.
//
// Once the answer is written, the parked goroutine waits (as cheaply) for
// the browser's next request on the same connection. A plain re-poll it
// serves itself (next.go); anything else it hands, with the connection, to
// Returned, a listener that a second http.Server serves with the same
// handler: keep-alive goes on as if nothing happened.

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cometbox/cometbox/pkg/message"
	"github.com/cometbox/cometbox/pkg/metrics"
	"github.com/cometbox/cometbox/pkg/poll"
)

// canPark reports whether a request's connection can be parked: a GET
// (a parked answer always has its body; HEAD is net/http's to answer)
// without a body, over plain HTTP/1.1 that the client keeps alive.
//
// A parked connection's next bytes are read as its next request, so a
// request whose body net/http has not read (either framing, even an
// empty chunked one) must never park: its body would run as a request of
// its own. net/http answers it in the handler and reads past the body.
func canPark(r *http.Request) bool {
	return r.Method == http.MethodGet && r.ProtoMajor == 1 && r.ProtoMinor == 1 && !r.Close && r.TLS == nil &&
		r.ContentLength == 0 && len(r.TransferEncoding) == 0
}

// parked is one poll waiting on a hijacked connection.
type parked struct {
	h    *Handler
	held *poll.Held
	conn net.Conn // what the answer is written on (with replayed bytes, if any)
	raw  net.Conn // the hijacked connection, set once: wake-ups move its deadline

	// The per-request headers of the answer, captured at the hijack.
	reqID, allowOrigin string

	woken   atomic.Bool
	payload atomic.Pointer[string]       // the newest wake-up's payload
	drainAt atomic.Int64                 // unix nanos; 0: not draining
	ready   atomic.Bool                  // raw is set: wake-ups may move its deadline
	wokenCh atomic.Pointer[poll.Wakeups] // for a poll waiting in its handler
}

// pollParked answers a poll, parking it when it has to wait; ctx is the
// request's, with its check (see subscriber).
func (h *Handler) pollParked(ctx context.Context, w http.ResponseWriter, r *http.Request, client string, since message.Cursor) {
	pk := &parked{h: h}
	res, held, err := h.poller.Hold(ctx, client, since, pk.wake)
	if err != nil {
		h.pollFailed(w, r, err)
		return
	}
	if held == nil {
		h.writePage(w, res.Page)
		return
	}
	pk.held = held
	pk.reqID = w.Header().Get("X-Request-Id")
	pk.allowOrigin = w.Header().Get("Access-Control-Allow-Origin")
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		pk.waitHere(w, r) // not hijackable (a test recorder, HTTP/2): wait in the handler
		return
	}
	if n := rw.Reader.Buffered(); n > 0 {
		// The client sent more after its request: answer now, and serve
		// what it sent next.
		extra, _ := rw.Reader.Peek(n)
		pk.conn = prefixed(conn, bytes.Clone(extra))
		if next := pk.finish(held.Empty(metrics.OutcomeTimeout), false); next != nil {
			startParked(w, next)
		}
		return
	}
	pk.conn, pk.raw = conn, conn
	startParked(w, pk)
}

// startParked gives a parked poll a goroutine to wait in: the one serving
// the request when it is a re-poll on a parked connection (its stack has
// grown already), otherwise a new one.
func startParked(w http.ResponseWriter, pk *parked) {
	for {
		switch t := w.(type) {
		case *nextWriter:
			t.parked = pk
			return
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			go pk.run()
			return
		}
	}
}

// wake is called by the notifier (with its lock held) after each change
// to the client's queue.
func (pk *parked) wake(payload string) {
	pk.payload.Store(&payload)
	pk.woken.Store(true)
	if pk.ready.Load() {
		_ = pk.raw.SetReadDeadline(time.Unix(1, 0)) // the Read returns at once
	} else if ch := pk.wokenCh.Load(); ch != nil {
		ch.Send(payload)
	}
}

// drain is called once when the node drains, with the moment to answer.
func (pk *parked) drain(at time.Time) {
	pk.drainAt.Store(at.UnixNano())
	if pk.ready.Load() {
		pk.arm() // never push back a wake-up's deadline
	}
}

// run is the goroutine of a parked connection: it waits for the poll's
// answer, then serves the browser's next requests on the connection, and
// waits for each next poll that parks on it, until the connection is
// handed over or closed. Serving a re-poll takes a deep stack (the
// handler chain, the Redis call), so one goroutine serving them all
// grows its stack once, not once per message.
func (pk *parked) run() {
	for pk != nil {
		pk = pk.wait()
	}
}

// wait waits on the parked connection until the poll is answered, then
// keeps the connection for the browser's next request. It returns the
// next poll parked on the connection, if any, for the caller to wait for.
func (pk *parked) wait() *parked {
	pk.ready.Store(true)
	pk.held.OnDrain(pk.drain)
	var b [1]byte
	for {
		pk.arm()
		n, err := pk.conn.Read(b[:])
		if n > 0 { // a request before our answer: answer now, then serve it
			pk.conn = prefixed(pk.conn, []byte{b[0]})
			return pk.finish(pk.held.Empty(metrics.OutcomeTimeout), false)
		}
		if err != nil && !isTimeout(err) {
			pk.held.Finish(metrics.OutcomeGone) // the browser hung up
			_ = pk.conn.Close()
			return nil
		}
		now := time.Now()
		if pk.woken.Swap(false) {
			if p := pk.payload.Swap(nil); p != nil {
				if res, ok := pk.held.FromWake(*p); ok {
					return pk.finish(res, false)
				}
			}
			res, settled, err := pk.held.Recheck(context.Background())
			if err != nil {
				return pk.finishError(err)
			}
			if settled {
				return pk.finish(res, false)
			}
		}
		if at := pk.drainAt.Load(); at != 0 && now.UnixNano() >= at {
			return pk.finish(pk.held.Empty(metrics.OutcomeDrained), true)
		}
		if !now.Before(pk.held.Deadline()) {
			return pk.finish(pk.held.Empty(metrics.OutcomeTimeout), false)
		}
	}
}

// arm sets the read deadline to the earliest of the poll's deadline and
// its drain moment, then makes sure no wake-up slipped in while it did.
func (pk *parked) arm() {
	next := pk.held.Deadline()
	if at := pk.drainAt.Load(); at != 0 && time.Unix(0, at).Before(next) {
		next = time.Unix(0, at)
	}
	_ = pk.raw.SetReadDeadline(next)
	if pk.woken.Load() {
		_ = pk.raw.SetReadDeadline(time.Unix(1, 0))
	}
}

// waitHere waits inside the handler, for connections that cannot be
// hijacked.
func (pk *parked) waitHere(w http.ResponseWriter, r *http.Request) {
	woken := poll.NewWakeups()
	pk.wokenCh.Store(&woken)
	if pk.woken.Load() { // a wake-up came before the channel did
		woken.Send("")
	}
	res, err := pk.held.Wait(r.Context(), woken)
	if err != nil {
		pk.h.pollFailed(w, r, err)
		return
	}
	pk.h.writePage(w, res.Page)
}

// finish writes res on the connection and ends the poll. closeAfter (or
// the node draining) closes the connection; otherwise it serves the
// browser's next requests, and returns the next poll that parks on the
// connection, if one does.
func (pk *parked) finish(res poll.Result, closeAfter bool) *parked {
	rec := pk.recorder()
	pk.h.writePage(rec, res.Page)
	pk.held.Finish(res.Outcome)
	return pk.send(rec, closeAfter)
}

// finishError answers a parked poll whose re-read failed.
func (pk *parked) finishError(err error) *parked {
	rec := pk.recorder()
	pk.h.renderError(rec, pk.h.log.With("req", pk.reqID, "method", "GET", "path", "/poll"), "/poll", jsonFormat, err)
	pk.held.Finish(metrics.OutcomeError)
	return pk.send(rec, false)
}

func (pk *parked) recorder() *recorder {
	rec := newRecorder()
	hdr := rec.header
	setSecureHeaders(hdr)
	hdr["X-Request-Id"] = []string{pk.reqID}
	if pk.allowOrigin != "" {
		hdr["Access-Control-Allow-Origin"] = []string{pk.allowOrigin}
		hdr["Access-Control-Expose-Headers"] = exposedNames
		hdr["Vary"] = varyOrigin
	}
	return rec
}

// send writes the recorded answer and then keeps or closes the
// connection; it returns the next poll parked on it, if any.
func (pk *parked) send(rec *recorder, closeAfter bool) *parked {
	closeAfter = closeAfter || pk.h.closing()
	err := pk.h.writeResponse(pk.conn, rec, closeAfter)
	rec.free()
	if err != nil || closeAfter {
		_ = pk.conn.Close()
		return nil
	}
	return pk.h.serveNext(pk.conn)
}

// recorder is the ResponseWriter that answers of parked polls are
// rendered into, by the same code as every other answer.
type recorder struct {
	header http.Header
	status int
	wrote  bool // the status is fixed
	body   bytes.Buffer
}

// Recorders are reused: one answer per delivered message would otherwise
// allocate a header map and a body each, and a node's garbage collection
// cost grows with what it allocates.
var recorders = sync.Pool{New: func() any { return &recorder{header: make(http.Header, 10)} }}

// recorderKeep is the largest body a recorder keeps for reuse.
const recorderKeep = 16 << 10

// newRecorder returns an empty recorder with status 200; free it once its
// answer is written.
func newRecorder() *recorder {
	r := recorders.Get().(*recorder)
	r.status = http.StatusOK
	return r
}

// free empties the recorder and returns it for reuse; it must not be used
// after.
func (r *recorder) free() {
	clear(r.header)
	r.wrote = false
	if r.body.Cap() > recorderKeep {
		return
	}
	r.body.Reset()
	recorders.Put(r)
}

func (r *recorder) Header() http.Header { return r.header }

// Write implements http.ResponseWriter; the status is fixed from then on.
func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.body.Write(b)
}

// WriteHeader implements http.ResponseWriter: like net/http, the first
// status counts and one after the body is ignored.
func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
}

// returnedConns is the listener that yields parked connections back for
// their next request.
type returnedConns struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newReturnedConns() *returnedConns {
	return &returnedConns{conns: make(chan net.Conn, 256), done: make(chan struct{})}
}

// Returned is the listener of connections whose parked poll was answered
// and whose browser sent its next request. Serve it with a second
// http.Server with the same handler and settings (cmd/cometbox does), or
// parked connections are closed after their answer.
func (h *Handler) Returned() net.Listener { return h.returned }

// Accept implements net.Listener.
func (l *returnedConns) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener: connections handed over but not yet
// accepted, and those handed over later, are closed.
func (l *returnedConns) Close() error {
	l.once.Do(func() { close(l.done) })
	l.closeQueued()
	return nil
}

// closeQueued closes the connections waiting to be accepted.
func (l *returnedConns) closeQueued() {
	for {
		select {
		case c := <-l.conns:
			_ = c.Close()
		default:
			return
		}
	}
}

// Addr implements net.Listener.
func (l *returnedConns) Addr() net.Addr { return returnedAddr{} }

type returnedAddr struct{}

func (returnedAddr) Network() string { return "parked" }
func (returnedAddr) String() string  { return "parked-connections" }

// hand gives a connection to the listener, or closes it once the
// listener is closed.
func (l *returnedConns) hand(c net.Conn) {
	if l.closed() {
		_ = c.Close()
		return
	}
	select {
	case l.conns <- c:
		if l.closed() { // closed meanwhile: nobody may accept it now
			l.closeQueued()
		}
	case <-l.done:
		_ = c.Close()
	}
}

// closed reports whether the listener was closed.
func (l *returnedConns) closed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// prefixedConn replays bytes already read from a connection.
type prefixedConn struct {
	net.Conn
	prefix []byte
}

func prefixed(c net.Conn, prefix []byte) net.Conn {
	if len(prefix) == 0 {
		return c
	}
	if p, ok := c.(*prefixedConn); ok { // what was read came before what is left
		p.prefix = append(prefix[:len(prefix):len(prefix)], p.prefix...)
		return p
	}
	return &prefixedConn{Conn: c, prefix: prefix}
}

// headDueConn is a connection handed to Returned with a request head
// begun: the first read deadline net/http sets on it, the one for that
// head, is held to when the head was due on the parked connection, so
// that a slow head gets one read-header timeout in all, not two.
type headDueConn struct {
	net.Conn
	headBy  time.Time
	applied bool
}

// handedBack is the connection Returned gets: c with the bytes already
// read replayed, and headBy bounding the head they begin.
func handedBack(c net.Conn, replay []byte, headBy time.Time) net.Conn {
	return &headDueConn{Conn: prefixed(c, replay), headBy: headBy}
}

func (c *headDueConn) SetReadDeadline(t time.Time) error {
	if !c.applied {
		c.applied = true
		if t.IsZero() || t.After(c.headBy) {
			t = c.headBy
		}
	}
	return c.Conn.SetReadDeadline(t)
}

// CloseWrite lets net/http half-close a handed-back connection before it
// closes it, as it does its own, so that a client's unread request
// does not turn the close into a reset that loses the last answer.
func (c *headDueConn) CloseWrite() error { return closeWrite(c.Conn) }

func (c *prefixedConn) CloseWrite() error { return closeWrite(c.Conn) }

func closeWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *prefixedConn) Read(b []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
