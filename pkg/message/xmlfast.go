package message

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// The fast path of ParseXML.
//
// Nearly every publish body has one shape: an optional XML declaration,
// <messages> (perhaps with an id), and <message to="..."> or <message
// group="..."> elements (perhaps with except="..." and type="json")
// holding plain text with the five predefined entities.
// parseXMLFast reads that shape in one pass over the body, with a few
// allocations per message instead of encoding/xml's token stream (four
// to six times faster). Anything else, and every error, makes it give up: the
// full parser then reads the same bytes and gives the answer, or the error
// with its line. So the fast path may decline anything but must never
// accept a body differently from the full parser; FuzzParseXMLFast holds
// it to that.

// parseXMLFast parses body when it has the common shape and is valid; ok
// is false otherwise, and the caller must parse body with the full parser.
func parseXMLFast(body []byte, lim Limits) (batch Batch, ok bool) {
	s := scanner{b: body}
	s.skipBOM()
	if s.has("<?xml") && !s.declaration() {
		return Batch{}, false
	}
	s.skipSpace()
	name, attrs, ok := s.startTag()
	if !ok {
		return Batch{}, false
	}
	switch name {
	case "messages":
		for _, a := range attrs {
			if a.name != "id" || !validToken(string(a.value), MaxIdempotencyKeyLen) {
				return Batch{}, false
			}
			batch.IdempotencyKey = string(a.value)
		}
		for {
			s.skipSpace()
			if s.endTag("messages") {
				break
			}
			name, attrs, ok := s.startTag()
			if !ok || name != "message" || len(batch.Messages) == lim.MaxMessages {
				return Batch{}, false
			}
			m, ok := s.message(attrs, lim)
			if !ok {
				return Batch{}, false
			}
			batch.Messages = append(batch.Messages, m)
		}
	case "message":
		m, ok := s.message(attrs, lim)
		if !ok {
			return Batch{}, false
		}
		batch.Messages = []Message{m}
	default:
		return Batch{}, false
	}
	s.skipSpace()
	if !s.done() || len(batch.Messages) == 0 {
		return Batch{}, false
	}
	return batch, true
}

// scanner walks a body; every method that fails leaves the body to the
// full parser, so none reports why.
type scanner struct {
	b       []byte
	i       int
	text    []byte  // one message's decoded text, reused
	attrBuf [3]attr // one tag's attributes, reused
}

// attr is an attribute of a tag; value points into the body.
type attr struct {
	name  string
	value []byte
}

func (s *scanner) done() bool { return s.i == len(s.b) }

func (s *scanner) has(prefix string) bool {
	return bytes.HasPrefix(s.b[s.i:], []byte(prefix))
}

func (s *scanner) skipBOM() {
	if bytes.HasPrefix(s.b[s.i:], bom) {
		s.i += len(bom)
	}
}

func (s *scanner) skipSpace() {
	for s.i < len(s.b) && isSpaceByte(s.b[s.i]) {
		s.i++
	}
}

func isSpaceByte(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// declaration reads <?xml version="1.0" encoding="UTF-8"?>, the encoding
// optional (any case of UTF-8), at the start of the body.
func (s *scanner) declaration() bool {
	s.i += len("<?xml")
	attrs, ok := s.attrs()
	if !ok || !s.has("?>") {
		return false
	}
	s.i += len("?>")
	for i, a := range attrs {
		switch v := string(a.value); {
		case i == 0 && a.name == "version" && v == "1.0":
		case i == 1 && a.name == "encoding" && (v == "UTF-8" || v == "utf-8"):
		default:
			return false
		}
	}
	return len(attrs) > 0
}

// startTag reads <name attr="value" ...>.
func (s *scanner) startTag() (name string, attrs []attr, ok bool) {
	if !s.has("<") {
		return "", nil, false
	}
	s.i++
	switch {
	case s.has("messages"):
		name = "messages"
	case s.has("message"):
		name = "message"
	default:
		return "", nil, false
	}
	s.i += len(name)
	if attrs, ok = s.attrs(); !ok || !s.has(">") {
		return "", nil, false
	}
	s.i++
	return name, attrs, true
}

// attrs reads the attributes of a tag, up to its closing '>' or '?>',
// each preceded by white space. It declines names other than those of the
// format, values with anything but client-id characters, repeated names,
// and more than three attributes. The slice is valid until the next call.
func (s *scanner) attrs() ([]attr, bool) {
	attrs := s.attrBuf[:0]
	for {
		start := s.i
		s.skipSpace()
		if s.i == len(s.b) {
			return nil, false
		}
		if c := s.b[s.i]; c == '>' || c == '?' {
			return attrs, true
		}
		if s.i == start { // a name must follow white space
			return nil, false
		}
		nameStart := s.i
		for s.i < len(s.b) && isNameByte(s.b[s.i]) {
			s.i++
		}
		name := s.b[nameStart:s.i]
		s.skipSpace()
		if len(name) == 0 || !s.has("=") {
			return nil, false
		}
		s.i++
		s.skipSpace()
		if s.i == len(s.b) || (s.b[s.i] != '"' && s.b[s.i] != '\'') {
			return nil, false
		}
		quote := s.b[s.i]
		s.i++
		valueStart := s.i
		for s.i < len(s.b) && s.b[s.i] != quote && isTokenByte(s.b[s.i]) {
			s.i++
		}
		if s.i == len(s.b) || s.b[s.i] != quote {
			return nil, false
		}
		a := attr{name: knownName(name), value: s.b[valueStart:s.i]}
		s.i++
		if a.name == "" || len(attrs) == len(s.attrBuf) {
			return nil, false
		}
		for _, prev := range attrs {
			if prev.name == a.name {
				return nil, false
			}
		}
		attrs = append(attrs, a)
	}
}

// knownName returns the attribute name the format uses that name is, or
// "" for any other.
func knownName(name []byte) string {
	switch string(name) {
	case "to":
		return "to"
	case "type":
		return "type"
	case "group":
		return "group"
	case "except":
		return "except"
	case "id":
		return "id"
	case "version":
		return "version"
	case "encoding":
		return "encoding"
	}
	return ""
}

func isNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.'
}

// isTokenByte reports a character of client ids and idempotency keys.
func isTokenByte(c byte) bool {
	return isNameByte(c) || c == ':' || c == '@'
}

// endTag reads </name>.
func (s *scanner) endTag(name string) bool {
	if !s.has("</") || !bytes.HasPrefix(s.b[s.i+2:], []byte(name)) {
		return false
	}
	i := s.i + 2 + len(name)
	for i < len(s.b) && isSpaceByte(s.b[i]) {
		i++
	}
	if i == len(s.b) || s.b[i] != '>' {
		return false
	}
	s.i = i + 1
	return true
}

// message reads the text and end tag of a <message> whose attributes are
// attrs.
func (s *scanner) message(attrs []attr, lim Limits) (Message, bool) {
	var m Message
	isJSON := false
	for _, a := range attrs {
		switch v := string(a.value); {
		case a.name == "to" && validToken(v, MaxClientLen):
			m.To = string(a.value)
		case a.name == "group" && validToken(v, MaxGroupLen):
			m.Group = string(a.value)
		case a.name == "except" && validToken(v, MaxClientLen):
			m.Except = string(a.value)
		case a.name == "type" && v == "text":
		case a.name == "type" && v == "json":
			isJSON = true
		default:
			return Message{}, false
		}
	}
	if (m.To == "") == (m.Group == "") || m.Except != "" && m.Group == "" ||
		!s.readText(lim.MaxMessageBytes) || !s.endTag("message") {
		return Message{}, false
	}
	if isJSON {
		var out bytes.Buffer
		if json.Compact(&out, s.text) != nil {
			return Message{}, false
		}
		m.Data = out.Bytes()
	} else {
		m.Data = appendJSONString(make([]byte, 0, len(s.text)+2), s.text)
	}
	return m, true
}

// entities are the five XML predefines, the only references the fast path
// reads.
var entities = [...]struct {
	ref string
	c   byte
}{{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}}

// readText decodes character data up to the next '<' into s.text. It
// declines other references, carriage returns (which XML turns into line
// feeds), "]]>", characters XML forbids, invalid UTF-8, and text longer
// than max.
func (s *scanner) readText(max int) bool {
	s.text = s.text[:0]
	for s.i < len(s.b) {
		start := s.i
		for s.i < len(s.b) && plainText[s.b[s.i]] {
			s.i++
		}
		s.text = append(s.text, s.b[start:s.i]...)
		if s.i == len(s.b) {
			break
		}
		switch c := s.b[s.i]; {
		case c == '<':
			return len(s.text) <= max
		case c == '&':
			if !s.reference() {
				return false
			}
		case c == ']':
			if s.has("]]>") {
				return false
			}
			s.text = append(s.text, c)
			s.i++
		case c < utf8.RuneSelf: // a control character
			return false
		default:
			r, size := utf8.DecodeRune(s.b[s.i:])
			if r == utf8.RuneError && size == 1 || !isXMLChar(r) {
				return false
			}
			s.text = append(s.text, s.b[s.i:s.i+size]...)
			s.i += size
		}
	}
	return false // no end tag
}

// plainText marks the bytes that stand for themselves in character data:
// printable ASCII but for '<', '&' and ']', and tab and line feed.
var plainText = func() (t [256]bool) {
	for c := ' '; c < utf8.RuneSelf-1; c++ {
		t[c] = true
	}
	t['<'], t['&'], t[']'] = false, false, false
	t['\t'], t['\n'], t[0x7F] = true, true, true
	return t
}()

// reference reads one of the five predefined entities into s.text.
func (s *scanner) reference() bool {
	for _, e := range entities {
		if s.has(e.ref) {
			s.text = append(s.text, e.c)
			s.i += len(e.ref)
			return true
		}
	}
	return false
}

// isXMLChar reports a non-ASCII character XML allows.
func isXMLChar(r rune) bool {
	return r <= 0xD7FF || 0xE000 <= r && r <= 0xFFFD || 0x10000 <= r && r <= utf8.MaxRune
}

// appendJSONString appends text, valid UTF-8 without control characters
// other than tab and line feed, as a JSON string, exactly as EncodeText
// writes it.
func appendJSONString(dst, text []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(text); {
		c := text[i]
		if !jsonSpecial[c] {
			i++
			continue
		}
		var esc string
		size := 1
		switch {
		case c == '"':
			esc = `\"`
		case c == '\\':
			esc = `\\`
		case c == '\n':
			esc = `\n`
		case c == '\t':
			esc = `\t`
		case i+2 < len(text) && text[i+1] == 0x80 && (text[i+2] == 0xA8 || text[i+2] == 0xA9):
			esc, size = `\u2028`, 3 // line and paragraph separators: invalid in JavaScript strings
			if text[i+2] == 0xA9 {
				esc = `\u2029`
			}
		default: // another character starting with 0xE2
			i++
			continue
		}
		dst = append(dst, text[start:i]...)
		dst = append(dst, esc...)
		i += size
		start = i
	}
	dst = append(dst, text[start:]...)
	return append(dst, '"')
}

// jsonSpecial marks the bytes appendJSONString looks at: those it escapes
// and the first byte of U+2028 and U+2029.
var jsonSpecial = func() (t [256]bool) {
	t['"'], t['\\'], t['\n'], t['\t'], t[0xE2] = true, true, true, true, true
	return t
}()
