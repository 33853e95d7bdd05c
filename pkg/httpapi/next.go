package httpapi

// The next request on a parked connection.
//
// Once a parked poll is answered, its browser sends the next poll on the
// same connection at once: under load, that is one request per delivered
// message. Handing every such connection back to net/http (Returned) costs
// a new server connection, its buffers, its request parsing, the
// background read net/http starts for every request and the hijack that
// stops it, for a request that is nearly always the same: GET /poll with
// a handful of headers and no body.
//
// So the parked goroutine reads that request itself and, when it is such a
// plain re-poll, serves it through the same handler as the router's GET
// /poll (middleware, CORS, token, limits) with a ResponseWriter of its
// own that can hijack;
// a poll that has to wait parks again, one that can answer at once is
// written here. Anything else (another path, a body, Expect, Upgrade,
// "Connection: close", a head that does not fit one small buffer, bytes
// after the head) goes to Returned untouched, with the bytes already read
// replayed, and net/http serves it with its full rules and limits.

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cometbox/cometbox/pkg/metrics"
)

// nextHeadBytes is the most of a request head served here; longer heads
// go to Returned (whose server applies MaxHeaderBytes).
const nextHeadBytes = 4096

var headBufs = sync.Pool{New: func() any { b := make([]byte, nextHeadBytes); return &b }}

// serveNext waits for the browser's next request on an answered
// connection and serves it; it returns once the connection is handed to
// Returned or closed (nil), or parked again: then it returns the parked
// poll for the caller's goroutine to wait for, or nil when the poll has a
// goroutine of its own.
func (h *Handler) serveNext(conn net.Conn) (parkedAgain *parked) {
	var w *nextWriter
	defer func() {
		if v := recover(); v != nil {
			_ = conn.Close()
			if w != nil && w.parked != nil { // parked, then the chain panicked: nobody waits for it
				w.parked.held.Finish(metrics.OutcomeGone)
			}
			parkedAgain = nil
			if v != http.ErrAbortHandler {
				h.log.Error("panic serving a request on a parked connection", "panic", v)
			}
		}
	}()
	for {
		req, replay, headBy, err := h.readNext(conn)
		switch {
		case err != nil:
			_ = conn.Close()
			return nil
		case req == nil:
			h.returned.hand(handedBack(conn, replay, headBy))
			return nil
		}
		w = &nextWriter{conn: conn, rec: newRecorder()}
		h.rePoll.ServeHTTP(w, req)
		freeHeader(req.Header) // nothing keeps a request once served
		if w.hijacked {
			w.rec.free()
			return w.parked // parked again; nil if a writer in the chain hid w and the poll got a goroutine of its own
		}
		if !w.rec.wrote && req.Context().Err() != nil {
			w.rec.free()
			_ = conn.Close() // the node is shutting down; the handler gave no answer
			return nil
		}
		closeAfter := h.closing() || w.rec.header.Get("Connection") == "close"
		err = h.writeResponse(conn, w.rec, closeAfter)
		w.rec.free()
		if err != nil || closeAfter {
			_ = conn.Close()
			return nil
		}
	}
}

// readNext waits for the next request and reads its head within the
// read header timeout. It returns the request when it is a plain re-poll,
// or nil, the bytes read and when the head is due when Returned should
// serve it; an error when the connection idled out, broke or was too
// slow.
//
// It waits in a read into a pooled head buffer, not in a one-byte read
// like a parked poll: the connection was just answered and the browser's
// next request is on its way, so the buffer is held briefly (an idle
// keep-alive connection holds one as long as net/http's hold theirs), and
// the head arrives in one read instead of two.
func (h *Handler) readNext(conn net.Conn) (req *http.Request, replay []byte, headBy time.Time, err error) {
	if err := conn.SetReadDeadline(time.Now().Add(h.cfg.IdleTimeout)); err != nil {
		return nil, nil, time.Time{}, err
	}
	bp := headBufs.Get().(*[]byte)
	defer headBufs.Put(bp)
	buf := *bp
	n, err := conn.Read(buf)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	if h.returned.closed() {
		return nil, nil, time.Time{}, net.ErrClosed
	}
	headBy = time.Now().Add(h.cfg.ReadHeaderTimeout)
	_ = conn.SetReadDeadline(headBy)
	defer func() { _ = conn.SetReadDeadline(time.Time{}) }()
	for scanned := 0; ; {
		for i := scanned; i < n; i++ {
			if buf[i] != '\n' {
				continue
			}
			if i == 0 || buf[i-1] != '\r' {
				return nil, bytes.Clone(buf[:n]), headBy, nil // a bare line feed: net/http's to judge
			}
			if i >= 3 && buf[i-3] == '\r' && buf[i-2] == '\n' { // the blank line ending the head
				if i+1 == n {
					if req := parseRePoll(h.cfg.BaseContext, buf[:i-1], conn); req != nil {
						return req, nil, headBy, nil
					}
				}
				return nil, bytes.Clone(buf[:n]), headBy, nil // not a plain re-poll, or more behind it
			}
		}
		scanned = n
		if n == len(buf) {
			return nil, bytes.Clone(buf[:n]), headBy, nil // long: net/http applies its own limit
		}
		m, err := conn.Read(buf[n:])
		n += m
		if err != nil {
			return nil, nil, time.Time{}, err
		}
	}
}

// parseRePoll parses a request head (request line and header lines, each
// ending in CRLF) when it is a plain re-poll: GET /poll over HTTP/1.1,
// kept alive, with a Host and no body. Anything else, or anything
// malformed, gives nil.
func parseRePoll(ctx context.Context, head []byte, conn net.Conn) *http.Request {
	s := string(head) // one copy; every string below is a slice of it
	line, rest, _ := strings.Cut(s, "\r\n")
	target, ok := strings.CutPrefix(line, "GET ")
	if !ok {
		return nil
	}
	target, ok = strings.CutSuffix(target, " HTTP/1.1")
	if !ok || (target != "/poll" && !strings.HasPrefix(target, "/poll?")) || strings.ContainsAny(target, " \t#") {
		return nil
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil
	}
	hdr := headerMaps.Get().(http.Header)
	host, ok := readRePollHeader(rest, hdr)
	if !ok {
		freeHeader(hdr)
		return nil
	}
	req := http.Request{
		Method: http.MethodGet, URL: u, RequestURI: target, Host: host,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: hdr, Body: http.NoBody, RemoteAddr: conn.RemoteAddr().String(),
	}
	return req.WithContext(ctx) // the one copy that escapes
}

// readRePollHeader reads the header lines of a plain re-poll into hdr and
// returns its Host; ok is false for anything else.
func readRePollHeader(lines string, hdr http.Header) (host string, ok bool) {
	for lines != "" {
		var line string
		line, lines, _ = strings.Cut(lines, "\r\n")
		name, value, ok := strings.Cut(line, ":")
		if !ok || !validFieldName(name) || !validFieldValue(value) {
			return "", false
		}
		name = http.CanonicalHeaderKey(name)
		value = strings.Trim(value, " \t")
		switch name {
		case "Content-Length":
			if value != "0" {
				return "", false
			}
		case "Transfer-Encoding", "Expect", "Upgrade", "Http2-Settings":
			return "", false
		case "Connection":
			if !strings.EqualFold(value, "keep-alive") {
				return "", false
			}
		case "Host":
			if len(hdr["Host"]) > 0 || !validHost(value) {
				return "", false
			}
		}
		hdr[name] = append(hdr[name], value)
	}
	host = hdr.Get("Host")
	delete(hdr, "Host") // net/http moves it to Request.Host too
	return host, host != ""
}

// headerMaps are the header maps of re-polls, reused once served: one
// per delivered message otherwise.
var headerMaps = sync.Pool{New: func() any { return make(http.Header, 12) }}

func freeHeader(h http.Header) {
	clear(h)
	headerMaps.Put(h)
}

// validFieldName reports whether s is an HTTP token (RFC 9110 5.1).
func validFieldName(s string) bool { return alnumOr(s, "!#$%&'*+-.^_`|~") }

// validHost accepts host[:port] names and bracketed IPv6 addresses.
func validHost(s string) bool { return alnumOr(s, ".-_:[]") }

// alnumOr reports whether s is not empty and has only ASCII letters,
// digits and bytes of extra.
func alnumOr(s, extra string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(extra, c) >= 0) {
			return false
		}
	}
	return s != ""
}

// validFieldValue rejects control characters other than tab, which
// includes a value folded onto a next line.
func validFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// nextWriter is the ResponseWriter of a request served by serveNext: it
// records the answer, and hands the connection over when the handler
// parks the poll.
type nextWriter struct {
	conn     net.Conn
	rec      *recorder
	hijacked bool
	parked   *parked // the poll parked on the hijacked connection, for serveNext's goroutine
}

func (w *nextWriter) Header() http.Header         { return w.rec.header }
func (w *nextWriter) Write(b []byte) (int, error) { return w.rec.Write(b) }
func (w *nextWriter) WriteHeader(code int)        { w.rec.WriteHeader(code) }

// Hijack implements http.Hijacker. Nothing was read past the request, so
// the reader it returns holds nothing.
func (w *nextWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.hijacked = true
	return w.conn, bufio.NewReadWriter(bufio.NewReaderSize(w.conn, 16), bufio.NewWriterSize(w.conn, 16)), nil
}

// httpDates formats Date headers, once per second: formatting one for
// every answer cost a loaded node 1.4 % of its CPU.
type httpDates struct {
	last atomic.Pointer[httpDate]
}

type httpDate struct {
	unix int64
	text string
}

// format returns t's second in the format of the Date header.
func (d *httpDates) format(t time.Time) string {
	sec := t.Unix()
	if last := d.last.Load(); last != nil && last.unix == sec {
		return last.text
	}
	entry := &httpDate{unix: sec, text: t.UTC().Format(http.TimeFormat)}
	d.last.Store(entry)
	return entry.text
}

// responseBufs hold answers while they are written.
var responseBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// writeResponse writes a recorded answer on a connection as one HTTP/1.1
// response, in one write.
func (h *Handler) writeResponse(conn net.Conn, rec *recorder, closeAfter bool) error {
	hdr := rec.header
	if closeAfter {
		hdr.Set("Connection", "close")
	}
	if hdr.Get("Content-Type") == "" && rec.body.Len() > 0 {
		hdr.Set("Content-Type", http.DetectContentType(rec.body.Bytes()))
	}
	bp := responseBufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= recorderKeep+512 {
			responseBufs.Put(bp)
		}
	}()
	if need := 512 + rec.body.Len(); cap(*bp) < need {
		*bp = make([]byte, 0, need)
	}
	b := (*bp)[:0]
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(rec.status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(rec.status)...)
	b = append(b, "\r\nDate: "...)
	b = append(b, h.dates.format(time.Now())...)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(rec.body.Len()), 10)
	b = append(b, "\r\n"...)
	for name, values := range hdr {
		if name == "Date" || name == "Content-Length" {
			continue
		}
		for _, v := range values {
			if strings.ContainsAny(v, "\r\n") {
				continue // never from this package; never let one split the answer
			}
			b = append(b, name...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	b = append(b, "\r\n"...)
	b = append(b, rec.body.Bytes()...)
	*bp = b
	_ = conn.SetWriteDeadline(time.Now().Add(pollWriteMargin))
	if _, err := conn.Write(b); err != nil {
		return err
	}
	return conn.SetWriteDeadline(time.Time{})
}
