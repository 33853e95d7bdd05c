package message

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"unicode"
	"unicode/utf8"
)

// The raw text of the full parser's tokens.
//
// encoding/xml decodes a character reference to a surrogate (&#xD800; to
// &#xDFFF;, which XML forbids like &#1;) as U+FFFD instead of refusing
// it: its own check of forbidden characters comes after the decoding and
// sees a legal character. A token's decoded text cannot tell that U+FFFD
// from a literal one or from &#xFFFD;, so the parser looks at the bytes
// the token was decoded from. The decoder reads through a tokenReader,
// which keeps the bytes of the token being read; only a text token
// holding U+FFFD is looked at, and then its U+FFFD are counted against
// those its bytes account for. In a CDATA section &#xD800; is literal text
// and adds no U+FFFD, so no CDATA token is ever refused.

// tokenReader is the buffered reader the full parser's decoder reads
// through, a bufio.Reader that also keeps every byte read since the last
// mark, so that the raw text of the token just decoded can be looked at.
type tokenReader struct {
	src  io.Reader
	buf  []byte
	mark int // buf[mark:r] were read since the last call of startToken
	r, w int // buf[r:w] are yet to be read
	err  error
}

// tokenReaders are the readers of the publishes being parsed, kept for
// the next ones; one whose buffer grew past bodyBufKeep is dropped.
var tokenReaders = sync.Pool{New: func() any { return &tokenReader{buf: make([]byte, 4096)} }}

func newTokenReader(src io.Reader) *tokenReader {
	t := tokenReaders.Get().(*tokenReader)
	t.src, t.mark, t.r, t.w, t.err = src, 0, 0, 0, nil
	return t
}

func (t *tokenReader) free() {
	t.src = nil
	if len(t.buf) <= bodyBufKeep {
		tokenReaders.Put(t)
	}
}

// startToken forgets the bytes read so far: raw then returns those of
// the next token.
func (t *tokenReader) startToken() { t.mark = t.r }

// raw returns the bytes read since startToken. They stay valid until the
// next read.
func (t *tokenReader) raw() []byte { return t.buf[t.mark:t.r] }

// skipBOM drops a leading UTF-8 byte order mark, which some editors and
// XML writers emit.
func (t *tokenReader) skipBOM() {
	for t.w-t.r < len(bom) && t.fill() {
	}
	if bytes.HasPrefix(t.buf[t.r:t.w], bom) {
		t.r += len(bom)
		t.mark = t.r
	}
}

func (t *tokenReader) ReadByte() (byte, error) {
	if t.r == t.w && !t.fill() {
		return 0, t.err
	}
	c := t.buf[t.r]
	t.r++
	return c, nil
}

func (t *tokenReader) Read(p []byte) (int, error) {
	if t.r == t.w && !t.fill() {
		return 0, t.err
	}
	n := copy(p, t.buf[t.r:t.w])
	t.r += n
	return n, nil
}

// fill reads more of src into buf, keeping the bytes from mark on. It
// reports whether there are bytes to read; when not, err says why.
func (t *tokenReader) fill() bool {
	if t.err != nil {
		return false
	}
	if t.mark > 0 {
		t.w = copy(t.buf, t.buf[t.mark:t.w])
		t.r -= t.mark
		t.mark = 0
	}
	if t.w == len(t.buf) { // one token fills the buffer
		grown := make([]byte, 2*len(t.buf))
		copy(grown, t.buf[:t.w])
		t.buf = grown
	}
	for range 100 { // as bufio.Reader, give up on a reader that makes no progress
		n, err := t.src.Read(t.buf[t.w:])
		t.w += n
		t.err = err
		if n > 0 {
			return true
		}
		if err != nil {
			return false
		}
	}
	t.err = io.ErrNoProgress
	return false
}

// replacementChar is U+FFFD in UTF-8.
var replacementChar = []byte(string(utf8.RuneError))

// checkSurrogates refuses a text token (as decoded) whose raw bytes
// (raw, from line on) hold a character reference to a surrogate.
func checkSurrogates(text, raw []byte, line int) error {
	if !bytes.Contains(text, replacementChar) {
		return nil // the common case: no U+FFFD, no surrogate
	}
	// raw accounts for its literal U+FFFD and its references to U+FFFD;
	// a surrogate reference makes one more. In CDATA, raw is the text.
	want := bytes.Count(raw, replacementChar)
	var surrogate []byte
	for rest := raw; ; {
		i := bytes.Index(rest, []byte("&#"))
		if i < 0 {
			break
		}
		n, r := charRef(rest[i:])
		switch {
		case n == 0:
			n = 2
		case r == utf8.RuneError:
			want++
		case 0xD800 <= r && r <= 0xDFFF && surrogate == nil:
			surrogate = rest[i : i+n]
			line += bytes.Count(raw[:len(raw)-len(rest)+i], []byte("\n"))
		}
		rest = rest[i+n:]
	}
	if bytes.Count(text, replacementChar) <= want {
		return nil
	}
	if surrogate == nil { // cannot be: only a surrogate reference adds U+FFFD
		return fmt.Errorf("line %d: character reference to a surrogate: not a character: %w", line, ErrMalformed)
	}
	return fmt.Errorf("line %d: character reference %s is a surrogate, not a character: %w",
		line, quoteShort(string(surrogate)), ErrMalformed)
}

// charRef reads the character reference at the start of b, &#N; or
// &#xH;, and returns its length and the character it names (beyond
// unicode.MaxRune: unicode.MaxRune+1); n is 0 when b does not start with
// one.
func charRef(b []byte) (n int, r rune) {
	base, i := uint64(10), 2
	if len(b) > i && b[i] == 'x' {
		base, i = 16, 3
	}
	start := i
	var v uint64
	for ; i < len(b); i++ {
		d := uint64(hexDigit(b[i]))
		if d >= base {
			break
		}
		v = min(v*base+d, unicode.MaxRune+1) // never overflows
	}
	if i == start || i == len(b) || b[i] != ';' {
		return 0, 0
	}
	return i + 1, rune(v)
}

// hexDigit returns the value of a hexadecimal digit, or 16 for any other
// byte.
func hexDigit(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10
	}
	return 16
}
