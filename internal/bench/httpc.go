package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// Conn is a minimal HTTP/1.1 keep-alive client over one TCP connection:
// it writes a request built by the caller and reads one response with a
// Content-Length, chunked or close-delimited body. It keeps reusable
// buffers, so a held poll costs one goroutine, one socket and a few KiB;
// net/http's per-request machinery would dominate the generator's CPU.
// A Conn is used by one goroutine at a time.
type Conn struct {
	nc   net.Conn
	br   *bufio.Reader
	wbuf []byte
	resp Response
	// Want lists the response headers (canonical case-insensitive names)
	// the caller needs; their values land in Response.Header.
	want []string
}

// Response is one parsed response. Its Body and Header values are valid
// until the next Do on the same Conn.
type Response struct {
	Status int
	Body   []byte
	// Header holds the values of the wanted headers, in Want's order
	// ("" when absent).
	Header []string
	// Close is true when the server will close the connection after this
	// response (Connection: close, HTTP/1.0, close-delimited body).
	Close bool
	// RetryAfter is the Retry-After header in seconds, 0 when absent.
	RetryAfter int
}

// ErrMalformed is returned for a response this client cannot parse.
var ErrMalformed = errors.New("malformed HTTP response")

// Dial opens a connection to addr (host:port) from local (nil: any) with
// the given timeout; want names the headers the caller will read.
func Dial(addr string, local *net.TCPAddr, timeout time.Duration, want ...string) (*Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if local != nil {
		d.LocalAddr = local
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	return NewConn(nc, want...), nil
}

// NewConn wraps an open connection.
func NewConn(nc net.Conn, want ...string) *Conn {
	c := &Conn{nc: nc, br: bufio.NewReaderSize(nc, 2048), want: want}
	c.resp.Header = make([]string, len(want))
	return c
}

// Close closes the connection.
func (c *Conn) Close() error { return c.nc.Close() }

// Buf returns the connection's request buffer, emptied, for building the
// next request with append.
func (c *Conn) Buf() []byte { return c.wbuf[:0] }

// Do writes req (a complete HTTP/1.1 request) and reads the response,
// giving up at deadline (zero: none). A Response with Close set means
// the connection must not be reused.
func (c *Conn) Do(req []byte, deadline time.Time) (*Response, error) {
	if err := c.Send(req, deadline); err != nil {
		return nil, err
	}
	return c.ReadResponse()
}

// Send writes req and sets deadline for it and for reading its answer.
func (c *Conn) Send(req []byte, deadline time.Time) error {
	c.wbuf = req[:0] // keep the buffer for the next request
	_ = c.nc.SetDeadline(deadline)
	_, err := c.nc.Write(req)
	return err
}

// ReadResponse reads one response from the connection.
func (c *Conn) ReadResponse() (*Response, error) {
	r, contentLength, chunked, err := c.ReadHead()
	if err != nil {
		return nil, err
	}
	switch {
	case r.Status == 204 || r.Status == 304 || r.Status < 200:
	case chunked:
		if err := c.readChunked(); err != nil {
			return nil, err
		}
	case contentLength >= 0:
		if contentLength > 16<<20 {
			return nil, fmt.Errorf("%w: body of %d bytes", ErrMalformed, contentLength)
		}
		r.Body = grow(r.Body, contentLength)
		if _, err := io.ReadFull(c.br, r.Body); err != nil {
			return nil, err
		}
	default: // close-delimited
		r.Close = true
		b, err := io.ReadAll(io.LimitReader(c.br, 16<<20))
		if err != nil {
			return nil, err
		}
		r.Body = append(r.Body, b...)
	}
	return r, nil
}

// ReadHead reads a response's status line and headers, and says how its
// body is framed: contentLength (-1 when not given) or chunked. The
// caller reads the body (ReadResponse does, whole; a stream reads it as
// it comes, with Body).
func (c *Conn) ReadHead() (r *Response, contentLength int, chunked bool, err error) {
	r = &c.resp
	r.Status, r.Close, r.RetryAfter = 0, false, 0
	r.Body = r.Body[:0]
	for i := range r.Header {
		r.Header[i] = ""
	}
	line, err := c.line()
	if err != nil {
		return nil, 0, false, err
	}
	// HTTP/1.1 200 OK
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return nil, 0, false, fmt.Errorf("%w: status line %q", ErrMalformed, trunc(line))
	}
	if line[7] == '0' {
		r.Close = true
	}
	st, ok := parseFixed(line[9:12])
	if !ok {
		return nil, 0, false, fmt.Errorf("%w: status line %q", ErrMalformed, trunc(line))
	}
	r.Status = int(st)
	contentLength = -1
	for range 200 { // at most 200 header lines
		line, err = c.line()
		if err != nil {
			return nil, 0, false, err
		}
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return nil, 0, false, fmt.Errorf("%w: header %q", ErrMalformed, trunc(line))
		}
		name, val := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch {
		case asciiEqualFold(name, "Content-Length"):
			n, ok := parseFixed(val)
			if !ok || len(val) == 0 {
				return nil, 0, false, fmt.Errorf("%w: Content-Length %q", ErrMalformed, val)
			}
			contentLength = int(n)
		case asciiEqualFold(name, "Transfer-Encoding"):
			chunked = asciiEqualFold(val, "chunked")
		case asciiEqualFold(name, "Connection"):
			if asciiEqualFold(val, "close") {
				r.Close = true
			}
		case asciiEqualFold(name, "Retry-After"):
			if n, ok := parseFixed(val); ok {
				r.RetryAfter = int(n)
			}
		}
		for i, w := range c.want {
			if asciiEqualFold(name, w) {
				r.Header[i] = string(val)
			}
		}
	}
	return r, contentLength, chunked, nil
}

// Body returns a reader of the body of the response whose head ReadHead
// just read, as it comes: chunked, or up to the connection's end.
func (c *Conn) Body(chunked bool) io.Reader {
	if chunked {
		return &chunkReader{c: c}
	}
	return c.br
}

// chunkReader reads a chunked body chunk by chunk, as it arrives.
type chunkReader struct {
	c    *Conn
	left int // of the current chunk
	done bool
}

func (cr *chunkReader) Read(p []byte) (int, error) {
	if cr.done {
		return 0, io.EOF
	}
	if cr.left == 0 {
		line, err := cr.c.line()
		if err != nil {
			return 0, err
		}
		if len(line) == 0 { // the CRLF after the previous chunk
			if line, err = cr.c.line(); err != nil {
				return 0, err
			}
		}
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(line)), 16, 32)
		if err != nil {
			return 0, fmt.Errorf("%w: chunk size %q", ErrMalformed, trunc(line))
		}
		if n == 0 {
			cr.done = true
			return 0, io.EOF
		}
		cr.left = int(n)
	}
	n, err := cr.c.br.Read(p[:min(len(p), cr.left)])
	cr.left -= n
	return n, err
}

func (c *Conn) readChunked() error {
	r := &c.resp
	for range 1 << 20 {
		line, err := c.line()
		if err != nil {
			return err
		}
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(line)), 16, 32)
		if err != nil {
			return fmt.Errorf("%w: chunk size %q", ErrMalformed, trunc(line))
		}
		if n == 0 {
			for range 100 { // trailers
				if line, err = c.line(); err != nil || len(line) == 0 {
					return err
				}
			}
			return fmt.Errorf("%w: too many trailers", ErrMalformed)
		}
		if len(r.Body)+int(n) > 16<<20 {
			return fmt.Errorf("%w: chunked body over 16 MiB", ErrMalformed)
		}
		old := len(r.Body)
		r.Body = grow(r.Body, old+int(n))
		if _, err := io.ReadFull(c.br, r.Body[old:]); err != nil {
			return err
		}
		if line, err = c.line(); err != nil {
			return err
		} else if len(line) != 0 {
			return fmt.Errorf("%w: no CRLF after chunk", ErrMalformed)
		}
	}
	return fmt.Errorf("%w: too many chunks", ErrMalformed)
}

// line reads one CRLF- (or LF-) terminated line without its terminator.
// The slice is valid until the next read.
func (c *Conn) line() ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return nil, fmt.Errorf("%w: line longer than %d bytes", ErrMalformed, c.br.Size())
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

func grow(b []byte, n int) []byte {
	if cap(b) >= n {
		return b[:n]
	}
	nb := make([]byte, n, max(n, 2*cap(b)))
	copy(nb, b)
	return nb
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func trunc(b []byte) string {
	if len(b) > 80 {
		b = b[:80]
	}
	return string(b)
}

// AppendQueryEscape appends s escaped for a URL query value. Client ids
// and cursors are already URL-safe except ':' and '@', kept as is.
func AppendQueryEscape(b []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	for i := range len(s) {
		ch := s[i]
		switch {
		case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9',
			ch == '-', ch == '_', ch == '.', ch == '~', ch == ':', ch == '@':
			b = append(b, ch)
		default:
			b = append(b, '%', hex[ch>>4], hex[ch&15])
		}
	}
	return b
}
