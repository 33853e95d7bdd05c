package message

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"unicode/utf8"
)

// ParseXML reads a publish body in the XML format:
//
//	<messages id="optional-idempotency-key">
//	  <message to="alice">Hello &amp; welcome</message>
//	  <message to="carol" type="json">{"score": 3}</message>
//	  <message group="room:42" except="alice">Hi, room</message>
//	</messages>
//
// A message names one client (to) or one group (group, optionally with a
// member that gets no copy, except). A lone <message> as the root is
// accepted too. The whole body is
// validated before ParseXML returns: on error the Batch is empty, and the
// error wraps a sentinel (ErrMalformed, ErrInvalid, ErrInvalidClient,
// ErrInvalidJSON, ErrMessageTooLarge, ErrTooManyMessages, ErrEmpty) and
// names the message (1-based) and line.
//
// Hostile input is refused rather than interpreted: DOCTYPE and other
// directives (so no entity expansion), processing instructions other than
// the XML declaration, a declaration that is not well formed or not at the
// start, encodings other than UTF-8, invalid UTF-8, characters XML forbids
// (surrogate references included), repeated attributes, elements inside
// <message>, anything after the root.
//
// Bodies up to 128 KiB are read whole and, when they have the common
// shape (see parseXMLFast), parsed in one pass without encoding/xml;
// everything else streams through encoding/xml. Both give the same Batch.
func ParseXML(r io.Reader, lim Limits) (Batch, error) {
	lim = lim.withDefaults()
	buf := bodyBufs.Get().(*bytes.Buffer)
	defer freeBodyBuf(buf)
	buf.Reset()
	_, err := buf.ReadFrom(io.LimitReader(r, fastBodyMax+1))
	if err == nil && buf.Len() <= fastBodyMax {
		if batch, ok := parseXMLFast(buf.Bytes(), lim); ok {
			return batch, nil
		}
	}
	// The full parser reads what the fast path saw, then the rest of the
	// body, then the read's error, as if it had read r itself.
	rest := r
	if err != nil {
		rest = errReader{err}
	}
	return parseXMLFull(io.MultiReader(bytes.NewReader(buf.Bytes()), rest), lim)
}

// fastBodyMax is the longest body the fast path reads: a batch of a
// thousand short messages. Longer ones stream through the full parser.
const fastBodyMax = 128 << 10

// bodyBufs hold the bodies read for the fast path; one grown past
// bodyBufKeep is dropped rather than kept in the pool.
var bodyBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const bodyBufKeep = 64 << 10

func freeBodyBuf(buf *bytes.Buffer) {
	if buf.Cap() <= bodyBufKeep {
		bodyBufs.Put(buf)
	}
}

// errReader fails every read with err.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// parseXMLFull is ParseXML through encoding/xml: every body, every error.
func parseXMLFull(r io.Reader, lim Limits) (Batch, error) {
	in := newTokenReader(r)
	defer in.free()
	in.skipBOM()
	p := &xmlParser{lim: lim, in: in}
	p.dec = xml.NewDecoder(in) // a ByteReader: the decoder reads it as is
	p.dec.Strict = true
	batch, err := p.parse()
	if err != nil {
		return Batch{}, err
	}
	return batch, nil
}

type xmlParser struct {
	dec *xml.Decoder
	in  *tokenReader // what dec reads, with the raw text of its last token
	lim Limits
	buf bytes.Buffer // one message's text, reused
}

func (p *xmlParser) parse() (Batch, error) {
	root, err := p.prolog()
	if err != nil {
		return Batch{}, err
	}
	var batch Batch
	switch root.Name.Local {
	case "messages":
		if err := p.checkNamespace(root); err != nil {
			return Batch{}, err
		}
		batch.IdempotencyKey, err = p.rootAttrs(root)
		if err != nil {
			return Batch{}, err
		}
		if batch.Messages, err = p.messages(); err != nil {
			return Batch{}, err
		}
	case "message":
		if err := p.checkNamespace(root); err != nil {
			return Batch{}, err
		}
		m, err := p.message(root, 1)
		if err != nil {
			return Batch{}, err
		}
		batch.Messages = []Message{m}
	default:
		return Batch{}, fmt.Errorf("line %d: root element <%s>: want <messages> or <message>: %w",
			p.line(), root.Name.Local, ErrInvalid)
	}
	if err := p.epilog(); err != nil {
		return Batch{}, err
	}
	if len(batch.Messages) == 0 {
		return Batch{}, fmt.Errorf("<messages> holds no <message>: %w", ErrEmpty)
	}
	return batch, nil
}

// prolog skips the XML declaration, comments and white space, and returns
// the root element.
func (p *xmlParser) prolog() (xml.StartElement, error) {
	for first := true; ; first = false {
		tok, err := p.token()
		if err == io.EOF {
			return xml.StartElement{}, fmt.Errorf("empty document: %w", ErrMalformed)
		}
		if err != nil {
			return xml.StartElement{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, nil
		case xml.ProcInst:
			if first && t.Target == "xml" {
				if !wellFormedDeclaration(string(t.Inst)) {
					return xml.StartElement{}, fmt.Errorf("line %d: XML declaration <?xml %s?> is not well formed: want version=\"1.0\", then encoding and standalone if any, each once: %w",
						p.line(), quoteDeclaration(t.Inst), ErrMalformed)
				}
				continue
			}
			if err := p.ignorable(tok); err != nil {
				return xml.StartElement{}, err
			}
		case xml.CharData:
			if !isSpace(t) {
				return xml.StartElement{}, fmt.Errorf("line %d: text before the root element: %w", p.line(), ErrInvalid)
			}
		default:
			if err := p.ignorable(tok); err != nil {
				return xml.StartElement{}, err
			}
		}
	}
}

// epilog accepts only white space and comments after the root.
func (p *xmlParser) epilog() error {
	for {
		tok, err := p.token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if cd, ok := tok.(xml.CharData); ok && isSpace(cd) {
			continue
		}
		if _, ok := tok.(xml.Comment); ok {
			continue
		}
		return fmt.Errorf("line %d: data after the root element: %w", p.line(), ErrInvalid)
	}
}

// ignorable accepts comments, refuses directives and processing
// instructions (prolog takes the XML declaration at the start).
func (p *xmlParser) ignorable(tok xml.Token) error {
	switch t := tok.(type) {
	case xml.Comment:
		return nil
	case xml.ProcInst:
		if t.Target == "xml" {
			return fmt.Errorf("line %d: XML declaration only at the start of the document: %w", p.line(), ErrMalformed)
		}
		return fmt.Errorf("line %d: processing instruction <?%s?> not allowed: %w", p.line(), t.Target, ErrInvalid)
	case xml.Directive:
		return fmt.Errorf("line %d: <!%s> not allowed (no DOCTYPE or entities): %w",
			p.line(), firstWord(t), ErrInvalid)
	}
	return fmt.Errorf("line %d: unexpected %T: %w", p.line(), tok, ErrInvalid)
}

// wellFormedDeclaration reports whether inst, what follows "<?xml" in an
// XML declaration, is version="1.0", then encoding and standalone if
// any, each once and in that order, as XML requires. encoding/xml reads
// the first version and encoding it finds anywhere in it, so that
// <?xml version="1.0" encoding="UTF-8" encoding="ISO-8859-1"?> passed as
// UTF-8 while other parsers refuse it or read Latin-1. The decoder
// itself refuses versions and encodings it cannot read.
func wellFormedDeclaration(inst string) bool {
	names := [...]string{"version", "encoding", "standalone"}
	next := 0 // names[next:] may still follow
	for {
		rest := strings.TrimLeft(inst, " \t\r\n")
		if rest == "" {
			return next > 0
		}
		if next > 0 && len(rest) == len(inst) {
			return false // no white space before a name
		}
		name, value, ok := strings.Cut(rest, "=")
		name = strings.TrimRight(name, " \t\r\n")
		value = strings.TrimLeft(value, " \t\r\n")
		if !ok || value == "" || value[0] != '"' && value[0] != '\'' {
			return false
		}
		end := strings.IndexByte(value[1:], value[0])
		if end < 0 {
			return false
		}
		value, inst = value[1:1+end], value[2+end:]
		i := next
		for i < len(names) && names[i] != name {
			i++
		}
		if i == len(names) || next == 0 && i != 0 {
			return false
		}
		next = i + 1
		switch name {
		case "version":
			ok = value == "1.0"
		case "encoding":
			ok = strings.EqualFold(value, "utf-8")
		case "standalone":
			ok = value == "yes" || value == "no"
		}
		if !ok {
			return false
		}
	}
}

// quoteDeclaration cuts an XML declaration's content to a readable length
// for an error message.
func quoteDeclaration(inst []byte) string {
	const max = 80
	s := strings.ToValidUTF8(string(inst), "\uFFFD")
	if len(s) > max {
		i := max
		for !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i] + "…"
	}
	return s
}

// rootAttrs reads the attributes of <messages>. encoding/xml hands over a
// repeated attribute as two, where XML says the document is not well
// formed; it is refused, or the node and a parser that keeps the first
// would disagree.
func (p *xmlParser) rootAttrs(root xml.StartElement) (key string, err error) {
	haveID := false
	for _, a := range root.Attr {
		if a.Name.Space != "" || a.Name.Local != "id" {
			return "", fmt.Errorf("line %d: <messages>: unknown attribute %q: %w", p.line(), attrName(a.Name), ErrInvalid)
		}
		if haveID {
			return "", fmt.Errorf("line %d: <messages>: attribute \"id\" repeated: %w", p.line(), ErrMalformed)
		}
		if err := CheckIdempotencyKey(a.Value); err != nil {
			return "", fmt.Errorf("line %d: <messages> attribute \"id\": %w", p.line(), err)
		}
		key, haveID = a.Value, true
	}
	return key, nil
}

func (p *xmlParser) messages() ([]Message, error) {
	var msgs []Message
	for {
		tok, err := p.token()
		if err == io.EOF {
			return nil, fmt.Errorf("unexpected end of document inside <messages>: %w", ErrMalformed)
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			n := len(msgs) + 1
			if t.Name.Local != "message" {
				return nil, fmt.Errorf("message %d on line %d: element <%s>: want <message>: %w",
					n, p.line(), t.Name.Local, ErrInvalid)
			}
			if err := p.checkNamespace(t); err != nil {
				return nil, err
			}
			if n > p.lim.MaxMessages {
				return nil, fmt.Errorf("more than %d messages: %w", p.lim.MaxMessages, ErrTooManyMessages)
			}
			m, err := p.message(t, n)
			if err != nil {
				return nil, err
			}
			msgs = append(msgs, m)
		case xml.EndElement:
			return msgs, nil
		case xml.CharData:
			if !isSpace(t) {
				return nil, fmt.Errorf("line %d: text directly inside <messages>: %w", p.line(), ErrInvalid)
			}
		default:
			if err := p.ignorable(tok); err != nil {
				return nil, err
			}
		}
	}
}

// message reads one <message> whose start tag is start; n is its 1-based
// position, used in errors.
func (p *xmlParser) message(start xml.StartElement, n int) (Message, error) {
	line := p.line()
	where := func(format string, args ...any) error {
		return fmt.Errorf("message %d on line %d: "+format, append([]any{n, line}, args...)...)
	}
	var m Message
	isJSON, haveTo, haveGroup, haveExcept, haveType := false, false, false, false, false
	for _, a := range start.Attr { // a repeated attribute: see rootAttrs
		switch {
		case a.Name.Space == "" && a.Name.Local == "to":
			if haveTo {
				return Message{}, where("attribute \"to\" repeated: %w", ErrMalformed)
			}
			if err := CheckClient(a.Value); err != nil {
				return Message{}, where("attribute \"to\": %w", err)
			}
			m.To, haveTo = a.Value, true
		case a.Name.Space == "" && a.Name.Local == "group":
			if haveGroup {
				return Message{}, where("attribute \"group\" repeated: %w", ErrMalformed)
			}
			if err := CheckGroup(a.Value); err != nil {
				return Message{}, where("attribute \"group\": %w", err)
			}
			m.Group, haveGroup = a.Value, true
		case a.Name.Space == "" && a.Name.Local == "except":
			if haveExcept {
				return Message{}, where("attribute \"except\" repeated: %w", ErrMalformed)
			}
			if err := CheckClient(a.Value); err != nil {
				return Message{}, where("attribute \"except\": %w", err)
			}
			m.Except, haveExcept = a.Value, true
		case a.Name.Space == "" && a.Name.Local == "type":
			if haveType {
				return Message{}, where("attribute \"type\" repeated: %w", ErrMalformed)
			}
			haveType = true
			switch a.Value {
			case "text":
			case "json":
				isJSON = true
			default:
				return Message{}, where("attribute \"type\" is %s: want \"text\" or \"json\": %w", quoteShort(a.Value), ErrInvalid)
			}
		default:
			return Message{}, where("unknown attribute %q: %w", attrName(a.Name), ErrInvalid)
		}
	}
	switch {
	case haveTo && haveGroup:
		return Message{}, where("attributes \"to\" and \"group\": give one, not both: %w", ErrInvalid)
	case !haveTo && !haveGroup:
		return Message{}, where("missing attribute \"to\" (or \"group\"): %w", ErrInvalid)
	case haveExcept && !haveGroup:
		return Message{}, where("attribute \"except\" without \"group\": %w", ErrInvalid)
	}

	p.buf.Reset()
	for done := false; !done; {
		tok, err := p.token()
		if err == io.EOF {
			return Message{}, where("unexpected end of document: %w", ErrMalformed)
		}
		if err != nil {
			return Message{}, err
		}
		switch t := tok.(type) {
		case xml.CharData:
			if p.buf.Len()+len(t) > p.lim.MaxMessageBytes {
				return Message{}, where("payload over %d bytes: %w", p.lim.MaxMessageBytes, ErrMessageTooLarge)
			}
			p.buf.Write(t)
		case xml.EndElement:
			done = true
		case xml.StartElement:
			return Message{}, where("element <%s> inside <message>: escape markup as text or wrap it in CDATA: %w",
				t.Name.Local, ErrInvalid)
		case xml.Comment:
		default:
			if err := p.ignorable(tok); err != nil {
				return Message{}, err
			}
		}
	}

	if isJSON {
		var out bytes.Buffer
		if err := json.Compact(&out, p.buf.Bytes()); err != nil {
			return Message{}, where("type=\"json\": %v: %w", err, ErrInvalidJSON)
		}
		m.Data = out.Bytes()
	} else {
		m.Data = EncodeText(p.buf.String())
	}
	return m, nil
}

func (p *xmlParser) checkNamespace(el xml.StartElement) error {
	if el.Name.Space != "" {
		return fmt.Errorf("line %d: element <%s> in namespace %q: use no namespace: %w",
			p.line(), el.Name.Local, el.Name.Space, ErrInvalid)
	}
	return nil
}

// token reads the next token, turning decoder errors into ErrMalformed,
// and refuses text holding a character reference to a surrogate (see
// checkSurrogates).
func (p *xmlParser) token() (xml.Token, error) {
	line := p.line()
	p.in.startToken()
	tok, err := p.dec.Token()
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		var syn *xml.SyntaxError
		if errors.As(err, &syn) {
			return nil, fmt.Errorf("line %d: %s: %w", syn.Line, syn.Msg, ErrMalformed)
		}
		return nil, fmt.Errorf("line %d: %w: %w", p.line(), err, ErrMalformed) // keeps *http.MaxBytesError visible
	}
	if text, ok := tok.(xml.CharData); ok {
		if err := checkSurrogates(text, p.in.raw(), line); err != nil {
			return nil, err
		}
	}
	return tok, nil
}

func (p *xmlParser) line() int {
	line, _ := p.dec.InputPos()
	return line
}

// EncodeText returns s as a JSON string, without the HTML escaping that
// encoding/json applies by default (the payload goes to a JSON API, not
// into an HTML page).
func EncodeText(s string) json.RawMessage {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func isSpace(b []byte) bool {
	for _, c := range b {
		if !isSpaceByte(c) {
			return false
		}
	}
	return true
}

func attrName(n xml.Name) string {
	if n.Space != "" {
		return n.Space + ":" + n.Local
	}
	return n.Local
}

func firstWord(d xml.Directive) string {
	s := strings.TrimSpace(string(d))
	if i := strings.IndexAny(s, " \t\r\n["); i >= 0 {
		s = s[:i]
	}
	if len(s) > 20 {
		s = s[:20]
	}
	return s
}

// bom is the UTF-8 byte order mark.
var bom = []byte{0xEF, 0xBB, 0xBF}
